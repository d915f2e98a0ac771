"""Fixtures the real-Asterisk tests share (the session's Asterisk and the AMI observer are in
tests/conftest.py; serving the application and placing calls in tests/support/live_calls.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["fastagi", "agi"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every IVR test runs over FastAGI (in the server) and classic AGI (cti-agi, pyst2)."""
    value: str = request.param
    return value
