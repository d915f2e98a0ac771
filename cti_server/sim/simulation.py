"""Customers and agents without phones, through real Asterisk (demo, tests, `cti simulate`).

A customer is an AMI Originate of ``Local/s@cti-sim-caller`` into the inbound context: the
``cti-sim-caller`` half plays the customer (speaks, presses keys, waits, hangs up) while the other
half walks the real inbound dialplan. An agent is a queue member ``Local/<ext>@cti-sim-agent/n``
that answers, speaks and hangs up.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass

from panoramisk.message import Message

from cti_server.telephony.ami_actions import originate_variables
from cti_server.telephony.ami_client import AmiClient, AmiError

_CALLERID_UNSAFE = re.compile(r'["<>\r\n\x00]')
NAME_PIECE = 900  # base64 characters per channel variable: an AMI header line holds about 1 KB
MAX_NAME_BYTES = 4000  # Asterisk's dialplan carries a value of at most 4095 bytes


@dataclass(frozen=True)
class SimulatedCall:
    """The customer's call as Asterisk knows it: uniqueid of the inbound leg (also its linkedid)."""

    uniqueid: str
    caller_number: str
    caller_name: str


def caller_name_variables(name: str) -> dict[str, str]:
    """The customer's name for the ``cti-sim-name`` dialplan, any text but NUL, line breaks
    included: base64 (AMI's Variable header would strip quotes and escape apostrophes), cut into
    ``SIM_CALLER_NAME64``, ``SIM_CALLER_NAME64_2``, ... so that a long name fits AMI's lines."""
    raw = name.replace("\x00", "").encode()
    if len(raw) > MAX_NAME_BYTES:
        raise ValueError(f"a simulated caller's name is at most {MAX_NAME_BYTES} bytes")
    encoded = base64.b64encode(raw).decode()
    pieces = [encoded[at : at + NAME_PIECE] for at in range(0, len(encoded), NAME_PIECE)]
    return {
        "SIM_CALLER_NAME64" if n == 1 else f"SIM_CALLER_NAME64_{n}": piece
        for n, piece in enumerate(pieces, start=1)
    }


def callerid(number: str, name: str) -> str:
    """``"name" <number>`` with the characters that would break the header removed."""
    return f'"{_CALLERID_UNSAFE.sub("", name)}" <{_CALLERID_UNSAFE.sub("", number)}>'


async def place_customer_call(
    ami: AmiClient,
    *,
    context: str,
    number: str,
    name: str = "",
    dialed: str = "100",
    audio: str = "",
    dtmf: str = "",
    patience: float = 60.0,
    pre_wait: float = 1.0,
    speech: str = "",
    talk: float | None = None,
    stay: float | None = None,
) -> SimulatedCall:
    """Start a simulated customer call; returns once Asterisk has accepted the Originate.

    ``speech``: a sound the customer says to the agent once one answers (see
    :func:`customer_connected`); ``talk``: how long a simulated agent talks on this call;
    ``stay``: how long the customer stays on the line after saying it (60 s when None), for a
    person answering to talk to them.
    """
    uniqueid = f"sim-{uuid.uuid4().hex[:20]}"
    variables = {
        "SIM_ID": uniqueid.replace("-", "_"),
        "SIM_SPEECH": speech,
        "__SIM_TALK_CALL": f"{talk:.0f}" if talk is not None else "",
        "SIM_STAY": f"{stay:.0f}" if stay is not None else "",
        "SIM_PATIENCE": f"{patience:g}",
        "SIM_PRE_WAIT": f"{pre_wait:g}",
        "SIM_AUDIO": audio,
        "SIM_DTMF": dtmf,
        "SIM_INBOUND": context,
        **caller_name_variables(name),
    }
    reply = await ami.send_action(
        "Originate",
        {
            "Channel": "Local/s@cti-sim-caller",
            "Context": "cti-sim-inbound",
            "Exten": dialed,
            "Priority": "1",
            "CallerID": callerid(number, ""),
            "Async": "true",
            "ChannelId": uniqueid,
            "OtherChannelId": f"{uniqueid}-c",
            "Variable": originate_variables({k: v for k, v in variables.items() if v}),
        },
        timeout=15.0,
    )
    first = reply[0] if isinstance(reply, list) else reply
    if not first.success:
        raise AmiError(f"Originate refused: {first.get('Message', '')}")
    return SimulatedCall(uniqueid=uniqueid, caller_number=number, caller_name=name)


async def customer_connected(ami: AmiClient, call: SimulatedCall) -> None:
    """Tell a simulated customer that an agent answered, so they start speaking."""
    reply = await ami.send_action(
        "Setvar", {"Variable": f"SIM_CONNECTED_{call.uniqueid.replace('-', '_')}", "Value": "1"}
    )
    _require_success(reply, "Setvar")


def sim_agent_interface(extension: str) -> str:
    return f"Local/{extension}@cti-sim-agent/n"


async def add_sim_agent(ami: AmiClient, queue: str, extension: str) -> None:
    """Put a simulated agent into ``queue``; it answers every call it is offered."""
    reply = await ami.send_action(
        "QueueAdd",
        {
            "Queue": queue,
            "Interface": sim_agent_interface(extension),
            "MemberName": f"sim-{extension}",
            "Penalty": "0",
            "Paused": "false",
        },
    )
    first = reply[0] if isinstance(reply, list) else reply
    if "already there" not in str(first.get("Message", "")).lower():
        _require_success(reply, "QueueAdd")


async def remove_sim_agent(ami: AmiClient, queue: str, extension: str) -> None:
    reply = await ami.send_action(
        "QueueRemove", {"Queue": queue, "Interface": sim_agent_interface(extension)}
    )
    _require_success(reply, "QueueRemove")


def _require_success(reply: Message | list[Message], what: str) -> None:
    first = reply[0] if isinstance(reply, list) else reply
    if not first.success:
        raise AmiError(f"{what} refused: {first.get('Message', '')}")
