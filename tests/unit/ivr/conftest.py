"""Fixtures the IVR's tests share."""

from __future__ import annotations

import pytest

from cti_server.asterisk.data import data_dir
from cti_server.ivr.flow import Flow, load_flow


@pytest.fixture(scope="module")
def main_flow() -> Flow:
    """The shipped ``main`` flow with its prompts, as the server loads it."""
    flows = data_dir("ivr_flows")
    return load_flow(flows / "main.yaml", flows / "prompts")
