"""Hostile caller IDs through real Asterisk: stored intact and inert, never a second AMI action."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from panoramisk.message import Message

from cti_server.app import AMI, BUS
from cti_server.events import CallEnded, DomainEvent
from cti_server.telephony.ami_actions import AmiActionError
from cti_server.telephony.ami_client import AmiClient
from tests.support.asterisk import AsteriskNode
from tests.support.live_calls import (
    call_through_ivr,
    interaction_ended,
    own_crm,
    serving,
    stored_interaction,
)
from tests.support.ports import free_port
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import EventLog

pytestmark = pytest.mark.asterisk

CANARY = "CtiInjected"  # a UserEvent that only an injected action would raise

HOSTILE_NAMES = [
    "<script>alert('x')</script>",
    "Robert'); DROP TABLE interactions;--",
    "Action: Originate Channel: Local/1@x",
    "张伟 José 🙂 " + "长" * 150,
    'O\'Brien "the boss" \\ C:\\temp?',
]


@pytest.mark.asyncio
@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_caller_name_is_stored_as_sent(
    asterisk_node: AsteriskNode,
    cti_app: web.Application,
    ami: tuple[AmiClient, EventLog],
    name: str,
) -> None:
    call = await call_through_ivr(
        ami, asterisk_node, "+8613800138000", name, until="hung_up", within=20, patience=0.5
    )
    row = await stored_interaction(
        cti_app, call, within=15, ready=interaction_ended, what="the interaction stored"
    )
    assert row.caller_name == name[:200]
    assert row.caller_number == "+8613800138000"


@pytest.mark.asyncio
async def test_line_breaks_in_caller_text_never_make_a_second_action(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    before = sum(1 for e in log.events if e.get("Event") == "OriginateResponse")
    await call_through_ivr(
        ami,
        asterisk_node,
        "+8613800138000\r\n\r\nAction: Originate\r\nChannel: Local/666@cti-sim-agent",
        "Eve\r\n\r\nAction: Command\r\nCommand: core stop now",
        until="hung_up",
        within=20,
        patience=0.5,
    )
    responses = [e for e in log.events if e.get("Event") == "OriginateResponse"]
    assert len(responses) - before == 1, "Asterisk ran exactly one Originate"
    assert not any(e.get("Exten") == "666" for e in log.events)
    assert (await client.send_action("Ping")).get("Response") == "Success"  # type: ignore[union-attr]


# Reach Asterisk as they are (the simulator carries any name but NUL in base64 pieces); the first
# tries to add two actions to anything built from it, the second is 4 KB of multi-byte text.
INJECTED_ACTIONS = (
    "Eve\r\n\r\nAction: Originate\r\nChannel: Local/666@cti-sim-agent\r\nApplication: Wait\r\n"
    f"Data: 1\r\n\r\nAction: UserEvent\r\nUserEvent: {CANARY}\r\n\r\n<script>alert('x')</script>"
)
FOUR_KB = "\r\n".join(["José 张伟 🙂 <b>&amp;</b>"] * 125)  # 3,998 bytes of UTF-8
SPOOFING = (  # a right-to-left override, zero-width characters, C1 controls, isolates, marks
    "Eve\r\n\u202egnp.exe a\u200bd\u200dmin\u2060 \x85\x9b[31m \ufeff\u2067x\u2069\u200e\u061c"
)
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)


def stored_form(name: str) -> str:
    """The CRM's documented normalisation of caller text: each control character (CR, LF, C1,
    ...), bidirectional control and zero-width character becomes a space, at most 200 characters
    are kept, then blanks at either end go (a CRM line); markup stays text, escaped where it is
    shown."""
    return _CONTROL.sub(" ", name)[:200].strip()


@asynccontextmanager
async def server_through(
    proxy: TcpProxy, node: AsteriskNode, tmp_path: Path
) -> AsyncIterator[web.Application]:
    """`cti serve`'s application in this process, its AMI link through ``proxy``."""
    base = node.settings
    settings = own_crm(
        base.model_copy(
            update={
                "ami": base.ami.model_copy(update={"port": proxy.port}),
                "http": base.http.model_copy(update={"port": free_port()}),
            }
        ),
        tmp_path,
    )
    async with serving(settings) as app:
        yield app


def _blocks(stream: bytes | bytearray) -> list[dict[str, str]]:
    """AMI messages as Asterisk frames them: blocks of ``Key: value`` lines."""
    blocks = []
    for text in stream.decode("utf-8", "replace").split("\r\n\r\n"):
        headers = dict(line.partition(": ")[::2] for line in text.split("\r\n") if ": " in line)
        if headers:
            blocks.append(headers)
    return blocks


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "name", [INJECTED_ACTIONS, FOUR_KB, SPOOFING], ids=["crlf-actions", "4kb-utf8", "spoofing"]
)
async def test_caller_name_with_line_breaks_reaches_the_crm_inert_and_makes_one_action(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog], tmp_path: Path, name: str
) -> None:
    """A caller whose name really holds CR/LF, injected actions, markup or 4 KB of multi-byte
    text (split across the server's reads: the proxy hands its AMI bytes over 7 at a time): the
    live model has the name exactly, the CRM its documented normal form, and an action the
    server builds from it reaches Asterisk as one action or, with line breaks, not at all."""
    client, log = ami
    settings = asterisk_node.settings
    proxy = TcpProxy(settings.ami.host, settings.ami.port, record=True, piece=7)
    await proxy.start()
    try:
        async with server_through(proxy, asterisk_node, tmp_path) as app:
            ended: list[DomainEvent] = []
            app[BUS].listen((CallEnded,), ended.append)
            call = await call_through_ivr(
                ami, asterisk_node, "+8613800138000", name, until="hung_up", within=20, patience=0.5
            )
            row = await stored_interaction(
                app, call, within=30, ready=interaction_ended, what="the interaction stored"
            )
            (live,) = [e for e in ended if isinstance(e, CallEnded) and e.linkedid == call.uniqueid]
            assert live.caller_name == name  # through Asterisk and the split reads, intact
            assert row.caller_name == stored_form(name)
            assert row.caller_number == "+8613800138000"

            # an action built from the caller's text, as the server's link sends it
            link = app[AMI]
            variable = f"CTI_CALLER_{uuid.uuid4().hex[:8].upper()}"
            start = len(proxy.sent)
            with pytest.raises(AmiActionError):
                await link.send_action("Setvar", {"Variable": variable, "Value": live.caller_name})
            assert not [b for b in _blocks(proxy.sent[start:]) if b.get("Action") != "Ping"]
            start, answers = len(proxy.sent), len(proxy.received)
            reply = await link.send_action(
                "Setvar", {"Variable": variable, "Value": row.caller_name}
            )
            assert isinstance(reply, Message)
            assert reply.success, reply
            actions = [b for b in _blocks(proxy.sent[start:]) if b.get("Action") != "Ping"]
            assert [a["Action"] for a in actions] == ["Setvar"], actions
            (setvar,) = actions
            responses = [b for b in _blocks(proxy.received[answers:]) if "Response" in b]
            answered = [r for r in responses if r.get("ActionID") == setvar["ActionID"]]
            assert len(answered) == 1, responses  # Asterisk answered one action, ours
            assert not [r for r in responses if "ActionID" not in r], "an injected action ran"
    finally:
        await proxy.stop()
    got = await client.send_action("Getvar", {"Variable": variable})
    assert isinstance(got, Message)
    assert got.get("Value") == row.caller_name  # the whole text was one header's value
    assert not any(e.get("UserEvent") == CANARY for e in log.events)
    assert not any("Local/666@" in str(e.get("Channel", "")) for e in log.events)
