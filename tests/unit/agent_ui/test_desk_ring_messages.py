"""What a ring says to the desk comes in the order it happened: the agent's state (ringing),
then the pop; and the answer and the hang-up reach every desk the call rang at."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from cti_server.events import CustomerIdentified
from tests.support.desk import ALICE, BOB, Ui, answered, arrived, next_of, ringing, state


async def _until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> list[dict[str, Any]]:
    """The messages up to and including the next one of ``kind``."""
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["type"] != kind:
        seen.append(await ws.receive_json(timeout=10))
    return seen


@pytest.mark.asyncio
async def test_the_ringing_state_reaches_the_desk_before_the_pop(ui: Ui) -> None:
    alice = await ui.desk("alice")
    identified = ui.bus.subscribe(CustomerIdentified)
    ui.publish(arrived("1700000100.1"))
    await identified.get(timeout=10)  # the caller is known before the ring, as in the IVR
    ui.publish(state(ALICE, "available"), state(ALICE, "ringing"), ringing("1700000100.1", ALICE))

    seen = [(m["type"], m.get("state")) for m in await _until(alice, "pop")]
    assert seen[-3:] == [("state", "available"), ("state", "ringing"), ("pop", None)]


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
