"""The vocabulary's names for a call and a party: one reading of each, for every part."""

from __future__ import annotations

import pytest

from cti_server.events import CallKey, CallQueued, extension_of


def test_a_call_key_reads_back_from_its_text_form_the_crm_keys_interactions_by() -> None:
    key = CallKey.of(CallQueued(node="pbx-1", linkedid="1700000000.7", queue="sales", position=1))
    assert key == ("pbx-1", "1700000000.7")
    assert str(key) == "pbx-1:1700000000.7"
    assert CallKey.parse(str(key)) == key
    assert CallKey.parse("pbx-1:odd:id") == CallKey("pbx-1", "odd:id")


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
