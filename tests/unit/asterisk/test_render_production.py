"""What `cti dialplan render` writes for the production stack: docker-compose.yml's `dialplan`
service renders no simulated callers or agents, the demo and the tests' default does."""

from __future__ import annotations

import os
import re

import pytest

from cti_server.asterisk.render import render_config
from cti_server.config import load_settings
from tests.support.compose import compose_project

SIMULATED = re.compile(r"cti-sim|\bSIM_")


def _rendered_with(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> str:
    """extensions.conf under these CTI_* variables, without its comments; secrets as values
    (no /run/secrets here)."""
    for key in [k for k in os.environ if k.startswith("CTI_")]:
        monkeypatch.delenv(key)
    for key, value in environment.items():
        if not key.endswith("_FILE"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("CTI_AMI__SECRET", "not-a-real-secret")
    monkeypatch.setenv("CTI_DIALPLAN__SIP_SECRET", "not-a-real-one-either")
    text = render_config(load_settings())["extensions.conf"]
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(";"))


def test_the_production_dialplan_has_no_simulated_parties(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = compose_project()["services"]["dialplan"]["environment"]
    text = _rendered_with(monkeypatch, environment)
    assert "[cti-inbound]" in text  # what real callers need is there
    assert "[cti-record]" in text
    assert not SIMULATED.findall(text)


def test_the_demo_and_the_tests_still_get_them(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _rendered_with(monkeypatch, {})
    for context in ("cti-sim-inbound", "cti-sim-caller", "cti-sim-agent", "cti-sim-callee"):
        assert f"[{context}]" in text
    assert re.search(r"^SIM_TALK = \d+$", text, re.MULTILINE)
