"""The translator from AMI messages to typed events."""

from __future__ import annotations

import pytest

from cti_server.telephony.ami_events import (
    AgentCalled,
    AgiCommandEnded,
    AgiCommandStarted,
    ChannelCreated,
    QueueMemberChanged,
    UserEventReceived,
    translate,
)
from cti_server.tracker.tracker import Tracker


@pytest.mark.parametrize(
    ("wire", "name"),
    [
        ("O\\'Brien", "O'Brien"),
        ('\\"the boss\\"', '"the boss"'),
        ("C:\\\\temp\\?", "C:\\temp?"),
        ("Eve\\r\\nAction: Command", "Eve\r\nAction: Command"),
        ("<unknown>", ""),
        ("张伟", "张伟"),
    ],
)
def test_caller_names_are_unescaped_as_asterisk_escaped_them(wire: str, name: str) -> None:
    event = translate(
        {
            "Event": "Newchannel",
            "Uniqueid": "1.1",
            "Linkedid": "1.1",
            "Channel": "PJSIP/a-1",
            "CallerIDName": wire,
            "CallerIDNum": "100",
            "Context": "c",
            "Exten": "s",
            "ChannelStateDesc": "Ring",
        },
        "pbx1",
    )
    assert isinstance(event, ChannelCreated)
    assert event.caller_name == name


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            {"Event": "AgentCalled", "Uniqueid": "1.1", "Linkedid": "1.0", "Queue": "support",
             "MemberName": "Alice", "Interface": "PJSIP/1001", "DestUniqueid": "1.2"},
            AgentCalled("pbx1", "1.1", "1.0", "support", "Alice", "PJSIP/1001", "1.2"),
        ),
        (  # older app_queue: Location, no MemberName, no Linkedid; a repeated header
            {"Event": "AgentCalled", "Uniqueid": "1.1", "Queue": ["support", "other"],
             "Location": "PJSIP/1001"},
            AgentCalled("pbx1", "1.1", "1.1", "support", "PJSIP/1001", "PJSIP/1001", ""),
        ),
    ],
)  # fmt: skip
def test_a_queue_ringing_a_member_names_the_call_the_queue_and_the_member(
    message: dict[str, str | list[str]], expected: AgentCalled
) -> None:
    assert translate(message, "pbx1") == expected


@pytest.mark.parametrize(
    "message",
    [
        {"Event": "VarSet", "Uniqueid": "1.1", "Variable": "X", "Value": "1"},
        {"Event": "Newexten", "Uniqueid": "1.1"},
        {"Event": "SomethingFromTheFuture", "Uniqueid": "1.1"},
        {"Event": "Dial", "SubEvent": "Begin", "Uniqueid": "1.1"},  # Asterisk 11
        {"Event": "Newchannel"},  # no Uniqueid
        {"Event": "QueueMemberAdded", "Queue": "support"},  # no interface
        # a transfer that failed leaves the call as it was
        {"Event": "AttendedTransfer", "Result": "Fail", "OrigTransfererUniqueid": "1.2"},
        {"Event": "BlindTransfer", "Result": "Invalid", "TransfererUniqueid": "1.2"},
        {},
    ],
)
def test_what_we_do_not_track_is_dropped_safely(message: dict[str, str]) -> None:
    assert translate(message, "pbx1") is None


def test_repeated_header_keeps_the_first_value() -> None:
    event = translate(
        {
            "Event": "QueueMemberStatus",
            "Queue": "support",
            "Interface": ["PJSIP/1001", "x"],
            "MemberName": "Ann",
            "Paused": "1",
            "PausedReason": "lunch",
            "Status": "1",
        },
        "pbx1",
    )
    assert isinstance(event, QueueMemberChanged)
    assert (event.interface, event.paused, event.pause_reason) == ("PJSIP/1001", True, "lunch")


def test_a_user_event_keeps_its_own_fields_in_order() -> None:
    event = translate(
        {
            "Event": "UserEvent",
            "Privilege": "user,all",
            "Channel": ["SIP/260010001-00000026", "SIP/override"],  # repeated by the dialplan
            "Uniqueid": "1.1",
            "Linkedid": "1.0",
            "UserEvent": "NotifyCallstate",
            "Provider": "webhook",
            "Direction": "outbound",
            "content": "",
        },
        "pbx1",
    )
    assert isinstance(event, UserEventReceived)
    assert (event.name, event.uniqueid, event.linkedid) == ("NotifyCallstate", "1.1", "1.0")
    assert event.fields == (("Provider", "webhook"), ("Direction", "outbound"))


def test_agi_commands_are_typed_and_the_tracker_ignores_them() -> None:
    start = translate(
        {
            "Event": "AGIExecStart",
            "Channel": "PJSIP/trunk-00000001",
            "Uniqueid": "1.1",
            "Command": "GET DATA welcome 5000 4",
            "CommandId": "42",
        },
        "pbx1",
    )
    end = translate(
        {
            "Event": "AGIExecEnd",
            "Channel": "PJSIP/trunk-00000001",
            "Uniqueid": "1.1",
            "Command": "GET DATA welcome 5000 4",
            "CommandId": "42",
            "ResultCode": "200",
            "Result": "Success",
        },
        "pbx1",
    )
    assert isinstance(start, AgiCommandStarted)
    assert (start.command, start.command_id) == ("GET DATA welcome 5000 4", "42")
    assert isinstance(end, AgiCommandEnded)
    assert (end.result_code, end.result) == (200, "Success")
    tracker = Tracker(lambda _e: None)
    for event in (start, end):
        tracker.apply(event)
    assert tracker.applied == 0
    assert not tracker.live_calls()
