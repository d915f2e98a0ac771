"""What a ring says to the desk comes in the order it happened: the agent's state (ringing)
with the pop, in it when the pop goes at once (one message, not two), else just before it;
and the answer and the hang-up reach every desk the call rang at."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agent_ui.app import POPS
from cti_server.events import CustomerIdentified
from tests.support.desk import ALICE, BOB, Ui, answered, arrived, next_of, ringing, state


async def _until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> list[dict[str, Any]]:
    """The messages up to and including the next one of ``kind``."""
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["type"] != kind:
        seen.append(await ws.receive_json(timeout=10))
    return seen


async def _record_read(ui: Ui) -> None:
    """The caller's record read, as while they are in the IVR (the pop is then ready)."""
    (pops,) = [
        r.get_info()["app"][POPS]
        for r in ui.app.router.resources()
        if isinstance(r.get_info().get("app"), web.Application)
    ]
    deadline = time.monotonic() + 10
    while not pops.lookups():  # the desks start it as they hear the caller identified
        assert time.monotonic() < deadline, "the caller's record was never read"
        await asyncio.sleep(0.01)
    await asyncio.gather(*pops.lookups())


@pytest.mark.asyncio
async def test_the_ringing_state_reaches_the_desk_in_the_pop_after_the_state_before(
    ui: Ui,
) -> None:
    alice = await ui.desk("alice")
    identified = ui.bus.subscribe(CustomerIdentified)
    ui.publish(arrived("1700000100.1"))
    await identified.get(timeout=10)  # the caller is known before the ring, as in the IVR
    await _record_read(ui)
    ui.publish(state(ALICE, "available"), state(ALICE, "ringing"), ringing("1700000100.1", ALICE))

    seen = await _until(alice, "pop")
    assert [(m["type"], m.get("state")) for m in seen[-2:]] == [
        ("state", "available"),
        ("pop", None),
    ]
    assert seen[-1]["agent_state"] == {"state": "ringing", "reason": ""}
    assert seen[-1]["call"]["linkedid"] == "1700000100.1"

    later = await ui.desk("alice")  # a tab opened now: the pop on show, not the old state in it
    shown = await next_of(later, "pop")
    assert shown["call"]["linkedid"] == "1700000100.1"
    assert "agent_state" not in shown


@pytest.mark.asyncio
async def test_a_pop_still_being_read_comes_after_the_ringing_state_said_alone(ui: Ui) -> None:
    alice = await ui.desk("alice")
    # the caller rings before their record is read: the pop waits for it, the state does not
    ui.publish(arrived("1700000150.1"), state(ALICE, "ringing"), ringing("1700000150.1", ALICE))

    seen = await _until(alice, "pop")
    assert [(m["type"], m.get("state")) for m in seen[-2:]] == [("state", "ringing"), ("pop", None)]
    assert "agent_state" not in seen[-1]


@pytest.mark.asyncio
async def test_a_ringing_phone_with_no_ring_of_a_queue_is_said_at_once(ui: Ui) -> None:
    alice = await ui.desk("alice")
    ui.publish(state(ALICE, "ringing"))  # a colleague dialled the extension: no pop follows
    assert (await next_of(alice, "state"))["state"] == "ringing"


@pytest.mark.asyncio
async def test_a_call_that_rang_at_two_desks_is_answered_at_one_and_cleared_at_the_other(
    ui: Ui,
) -> None:
    alice, bob = await ui.desk("alice"), await ui.desk("bob")
    ui.publish(arrived("1700000200.1"), ringing("1700000200.1", ALICE))
    ui.publish(ringing("1700000200.1", BOB))
    assert (await next_of(alice, "pop"))["call"]["linkedid"] == "1700000200.1"
    assert (await next_of(bob, "pop"))["call"]["linkedid"] == "1700000200.1"

    ui.publish(answered("1700000200.1", BOB))
    assert (await next_of(bob, "answered"))["linkedid"] == "1700000200.1"
    assert (await next_of(alice, "pop_cleared"))["linkedid"] == "1700000200.1"
