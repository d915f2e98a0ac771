"""No caller-supplied text can add a header or an action to what we send to Asterisk."""

from __future__ import annotations

import pytest

from cti_server.telephony.ami_actions import (
    MAX_VALUE_BYTES,
    AmiActionError,
    build_action,
    check_value,
    originate_variables,
)

INJECTION = "x\r\n\r\nAction: Command\r\nCommand: core stop now"


@pytest.mark.parametrize(
    "value",
    [INJECTION, "a\rb", "a\nb", "a\r\nb", "a\x00b", "\n", "trailing\r\n"],
)
def test_line_breaks_and_nul_in_values_are_rejected(value: str) -> None:
    with pytest.raises(AmiActionError, match="line breaks and NUL"):
        build_action("Originate", {"CallerID": value})


def test_injection_in_a_list_value_is_rejected() -> None:
    with pytest.raises(AmiActionError, match="'Variable'"):
        build_action("Originate", {"Variable": ["A=1", INJECTION]})


def test_injection_in_the_action_name_is_rejected() -> None:
    with pytest.raises(AmiActionError, match="'Action'"):
        build_action("Ping\r\n\r\nAction: Command")


@pytest.mark.parametrize(
    "name", ["Caller ID", "CallerID:", "Caller:ID", "", "X\r\nY", "Ké", "A=B", "Name\t"]
)
def test_bad_header_names_are_rejected(name: str) -> None:
    with pytest.raises(AmiActionError, match="header name"):
        build_action("Originate", {name: "1"})


@pytest.mark.parametrize("name", ["ActionID", "actionid", "Action", "ACTION"])
def test_client_owned_headers_cannot_be_set(name: str) -> None:
    with pytest.raises(AmiActionError, match="set by the client"):
        build_action("Ping", {name: "x"})


def test_list_values_become_repeated_headers() -> None:
    action = build_action(
        "Originate", {"Channel": "Local/s@cti-sim-caller", "Variable": ["A=1", "B=张伟"]}
    )
    assert action == {
        "Action": "Originate",
        "Channel": "Local/s@cti-sim-caller",
        "Variable": ["A=1", "B=张伟"],
    }


def test_tuple_values_become_a_list() -> None:
    assert build_action("X", {"Variable": ("A=1",)})["Variable"] == ["A=1"]


def test_ints_are_converted_to_strings() -> None:
    action = build_action("QueueAdd", {"Penalty": 3, "Paused": 0, "Timeout": 30000})
    assert action == {"Action": "QueueAdd", "Penalty": "3", "Paused": "0", "Timeout": "30000"}


def test_no_fields() -> None:
    assert build_action("Ping") == {"Action": "Ping"}
    assert build_action("Ping", {}) == {"Action": "Ping"}


def test_value_length_is_counted_in_utf8_bytes() -> None:
    assert check_value("Data", "a" * MAX_VALUE_BYTES) == "a" * MAX_VALUE_BYTES
    with pytest.raises(AmiActionError, match="longer than 1000 bytes"):
        build_action("Originate", {"Data": "a" * (MAX_VALUE_BYTES + 1)})
    # 334 characters, but 1002 bytes in UTF-8
    with pytest.raises(AmiActionError, match="longer than 1000 bytes"):
        build_action("Originate", {"CallerID": "张" * 334})
    with pytest.raises(AmiActionError, match="longer than 1000 bytes"):
        build_action("Originate", {"Variable": ["A=1", "B=" + "x" * MAX_VALUE_BYTES]})


def test_non_ascii_values_pass_unchanged() -> None:
    assert (
        build_action("Originate", {"CallerID": '"José 张伟" <+8613800138000>'})["CallerID"]
        == '"José 张伟" <+8613800138000>'
    )


def test_originate_variables() -> None:
    assert originate_variables({"__CTI_DID": "100", "SIM_AUDIO": "cti/sim-hello"}) == [
        "__CTI_DID=100",
        "SIM_AUDIO=cti/sim-hello",
    ]
    with pytest.raises(AmiActionError, match="'Variable'"):
        originate_variables({"SIM_DTMF": INJECTION})
    with pytest.raises(AmiActionError, match="channel variable name"):
        originate_variables({"A=B": "1"})
    with pytest.raises(AmiActionError, match="channel variable name"):
        originate_variables({"": "1"})
