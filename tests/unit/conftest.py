"""Fixtures every unit test shares."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CTI_* variable of the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("CTI_"):
            monkeypatch.delenv(key)
