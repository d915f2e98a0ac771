"""The vocabulary's names for a call and a party: one reading of each, for every part."""

from __future__ import annotations

import pytest

from crm_core.schemas import interaction_key
from cti_server.events import (
    CallKey,
    CallQueued,
    CallRangOut,
    CallRouted,
    UnknownEvent,
    event_from_dict,
    extension_of,
)


def test_a_call_key_reads_back_from_its_text_form_the_crm_keys_interactions_by() -> None:
    key = CallKey.of(CallQueued(node="pbx-1", linkedid="1700000000.7", queue="sales", position=1))
    assert key == ("pbx-1", "1700000000.7")
    assert str(key) == "pbx-1:1700000000.7"
    assert CallKey.parse(str(key)) == key
    assert CallKey.parse("pbx-1:odd:id") == CallKey("pbx-1", "odd:id")
    assert str(key) == interaction_key(*key)  # the CRM's key for the call's interaction


@pytest.mark.parametrize("text", ["", "pbx-1", "pbx-1:", ":1700000000.7"])
def test_text_that_names_no_call_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="node:linkedid"):
        CallKey.parse(text)


@pytest.mark.parametrize(
    ("name", "extension"),
    [
        ("PJSIP/1002", "1002"),
        ("Local/8411@cti-sim-agent-long", "8411"),
        ("Local/1001@cti-sim-agent/n", "1001"),
        ("agent-1001", "1001"),
        ("sim-8001", "8001"),
        ("PJSIP/alice", ""),
        ("Local/s@cti-sim-caller", ""),
        ("support", ""),
        ("agent-1", ""),
        ("", ""),
    ],
)
def test_a_party_name_stands_for_its_extension(name: str, extension: str) -> None:
    assert extension_of(name) == extension


def test_a_routing_event_names_the_agents_extension_and_reads_its_earlier_version() -> None:
    """``agent`` is a queue member's name in every event; the router's events say
    ``extension``. A process not yet upgraded sends version 1, with ``agent``."""
    routed = CallRouted(node="pbx-1", linkedid="1.1", extension="3001", rule="r", decision={})
    sent = routed.to_dict()
    assert (sent["version"], sent["data"]["extension"]) == (2, "3001")
    assert event_from_dict(sent) == routed
    earlier = {**sent, "version": 1, "data": {**sent["data"]}}
    earlier["data"]["agent"] = earlier["data"].pop("extension")
    assert event_from_dict(earlier) == routed
    rang = CallRangOut(node="pbx-1", linkedid="1.1", extension="3001", reason="x", no_answer=[])
    old = rang.to_dict() | {"version": 1}
    old["data"] = {("agent" if k == "extension" else k): v for k, v in old["data"].items()}
    assert event_from_dict(old) == rang
    with pytest.raises(UnknownEvent):
        event_from_dict(sent | {"version": 3})
