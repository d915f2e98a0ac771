"""A party taking a call over pops on their desk with what was said so far: who handed the
customer over and how (whatever made the hand-over: the tracker's ``CallTransferred``), the
note typed at the desktop that made the transfer, the live transcript redacted, the complaint
facts; the desk left behind is told where the customer went and wraps up."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from agent_ui.handover import SaidSoFar
from cti_server.events import (
    AgentStateChanged,
    CallAnswered,
    CallHandling,
    CallTransferred,
    TranscriptPartial,
    TransferNoted,
)
from cti_server.speech.desk_redaction import SequenceRedaction
from cti_server.telephony import ami_events as ami
from tests.support import domain_events as make
from tests.support.desk import ALICE, BOB, NODE, Ui, next_of
from tests.support.replay import load, replay
from tests.support.ui import add_users

TRANSFERS = Path(__file__).resolve().parents[2] / "data" / "ami_transfers"
CARD = "4111 1111 1111 1111"  # passes the Luhn check: a card number to the redaction
HOSTILE = '<img src=x onerror="alert(1)">\u202eWang'


async def _answered_by_alice(ui: Ui, alice: aiohttp.ClientWebSocketResponse, linkedid: str) -> None:
    ui.publish(make.arrived(linkedid), make.ringing(linkedid, ALICE))
    assert (await next_of(alice, "pop"))["call"]["linkedid"] == linkedid
    ui.publish(make.answered(linkedid, ALICE))
    await next_of(alice, "answered")


async def _all_of(ws: aiohttp.ClientWebSocketResponse, *kinds: str) -> dict[str, Any]:
    """The next message of each of ``kinds``, in whatever order they come."""
    return {kind: message for kind, message in await _gather(ws, kinds)}


async def _gather(
    ws: aiohttp.ClientWebSocketResponse, kinds: tuple[str, ...]
) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    while len(found) < len(kinds):
        message: dict[str, Any] = await ws.receive_json(timeout=10)
        if message["type"] in kinds and message["type"] not in dict(found):
            found.append((message["type"], message))
        else:
            assert message["type"] in ("hello", "state", "info"), message
    return found


def _talk(linkedid: str) -> list[TranscriptPartial]:
    """Both speakers, with a card read out, an unfinished utterance and an empty one."""
    return [
        make.said(linkedid, "agent", "thank you for calling how can I help", 0.5),
        make.said(linkedid, "customer", "you charged me twice for one order", 3.0),
        make.said(linkedid, "agent", "I am sorry which card did you pay with", 6.0),
        make.said(linkedid, "customer", f"the card is {CARD} thanks", 9.0),
        TranscriptPartial(node=NODE, linkedid=linkedid, speaker="customer", text="and I also"),
        make.said(linkedid, "agent", "  ", 14.0),
    ]


@pytest.mark.asyncio
async def test_a_phone_made_transfer_pops_on_the_target_with_who_how_and_what_was_said(
    ui: Ui,
) -> None:
    """This server's tracker knows nothing of the call (as on a server whose AMI link never saw
    it): what the desk shows comes from the bus events alone."""
    alice = await ui.desk("alice")
    bob = await ui.desk("bob")
    linkedid = "1700000200.1"
    await _answered_by_alice(ui, alice, linkedid)
    ui.publish(*_talk(linkedid), make.complaint(linkedid, during_call=True))
    ui.publish(make.complaint(linkedid), make.said("other.1", "customer", "not this call", 1.0))

    ui.publish(make.transferred(linkedid, ALICE, BOB, "attended"))

    pop = await next_of(bob, "pop")
    assert pop["call"]["linkedid"] == linkedid
    assert pop["call"]["state"] == "connected"  # the tracker says bob has the customer now
    assert pop["call"]["caller_number"] == make.CALLER
    assert pop["call"]["transferred_by"] == "alice"
    handover = pop["handover"]
    assert ui.tracker.call(NODE, linkedid) is None
    assert (handover["kind"], handover["how"]) == ("attended", "attended transfer")
    assert handover["lead"] == "Handed over by"
    assert handover["from"] == {"name": "alice", "extension": "8101", "label": "alice (8101)"}
    assert handover["note"] == ""
    assert [(line["speaker"], line["text"]) for line in handover["transcript"]] == [
        ("agent", "thank you for calling how can I help"),
        ("customer", "you charged me twice for one order"),
        ("agent", "I am sorry which card did you pay with"),
        ("customer", "the card is [CARD] thanks"),
    ]
    assert "1111" not in json.dumps(pop)  # nowhere in the pop, not only in the transcript
    (complaint,) = handover["complaints"]  # the live alert; the after-call one is no fact yet
    assert (complaint["category"], complaint["severity"]) == ("billing", "high")
    assert complaint["said"] == ["you charged me twice"]
    assert handover["handling"] is None

    left = await _all_of(alice, "handed_over", "wrapup")
    assert left["handed_over"] == {
        "type": "handed_over",
        "node": NODE,
        "linkedid": linkedid,
        "to": "bob (8102)",
        "how": "attended transfer",
        "closed": False,
    }
    assert left["wrapup"]["linkedid"] == linkedid  # her part is over

    ui.publish(make.ended(linkedid, ALICE))  # the customer hangs up on bob: his wrap-up
    assert (await next_of(bob, "wrapup"))["linkedid"] == linkedid


@pytest.mark.asyncio
async def test_a_pickup_closes_the_pop_where_the_call_rang_and_a_phone_with_no_user_is_named(
    ui: Ui,
) -> None:
    """Bob picks up the call ringing at alice; then a phone outside the CRM's users forwards a
    call to him (named by its extension). The customer's hostile name reaches the pop as the
    data it is (the page shows it as text)."""
    alice = await ui.desk("alice")
    bob = await ui.desk("bob")
    linkedid = "1700000200.2"
    ui.publish(make.arrived(linkedid), make.ringing(linkedid, ALICE))
    await next_of(alice, "pop")
    ui.publish(
        CallHandling(node=NODE, linkedid=linkedid, hold_seconds=42.4, transfers=1, returns=0),
        make.transferred(linkedid, ALICE, BOB, "pickup", caller_name=HOSTILE),
    )
    pop = await next_of(bob, "pop")
    assert pop["call"]["caller_name"] == HOSTILE
    shown = pop["handover"]
    assert (shown["lead"], shown["from"]["label"], shown["how"]) == (
        "Picked up from",
        "alice (8101)",
        "picked up",
    )
    assert pop["handover"]["transcript"] == []
    assert pop["handover"]["handling"] == {"hold_seconds": 42, "transfers": 1, "returns": 0}
    left = await next_of(alice, "handed_over")
    assert (left["to"], left["how"], left["closed"]) == ("bob (8102)", "picked up", True)
    await alice.send_json({"type": "hold"})  # nothing of that call is hers
    assert (await next_of(alice, "error"))["message"] == "no call in progress"
    ui.publish(make.ended(linkedid, BOB))
    await next_of(bob, "wrapup")

    forwarded = "1700000200.4"
    ui.publish(make.arrived(forwarded), make.transferred(forwarded, "PJSIP/8109", BOB, "forward"))
    pop = await next_of(bob, "pop")
    assert (pop["call"]["linkedid"], pop["handover"]["from"]["label"]) == (forwarded, "8109")
    assert pop["handover"]["how"] == "forwarded"


def _legs(ui: Ui, linkedid: str, *channels: str) -> None:
    """The tracker's call: the caller's channel, then the agent's, as Asterisk reports them."""
    for n, channel in enumerate(channels):
        ui.tracker.apply(
            ami.ChannelCreated(
                node=NODE,
                uniqueid=linkedid if n == 0 else f"{linkedid}{n}",
                linkedid=linkedid,
                channel=channel,
                caller_number=make.CALLER,
                caller_name="",
                context="from-trunk" if n == 0 else "cti-agents",
                exten="100",
                state="Up",
            )
        )


@pytest.mark.asyncio
async def test_the_desktops_note_goes_with_the_transfer_and_a_bad_one_is_refused(ui: Ui) -> None:
    alice = await ui.desk("alice")
    bob = await ui.desk("bob")
    linkedid = "1700000200.3"
    _legs(ui, linkedid, "PJSIP/trunk-00000001", "PJSIP/8101-00000002")
    await _answered_by_alice(ui, alice, linkedid)
    ui.publish(make.said(linkedid, "customer", f"my card is {CARD}", 2.0))

    for note, refused in (
        ("refund \u202e", "note: a bidirectional control (U+202E) is not allowed"),
        ("x" * 501, "note: at most 500 characters"),
        (["a list"], "note: text expected"),
    ):
        await alice.send_json({"type": "transfer", "to": "8102", "note": note})
        assert (await next_of(alice, "error"))["message"] == refused
    assert not [a for a in ui.ami.asked if a[0] == "transfer"]  # refused before Asterisk

    why = "wants the double charge refunded <b>today</b>"
    noted_on_bus: list[TransferNoted] = []
    ui.bus.listen((TransferNoted,), lambda e: noted_on_bus.append(cast(TransferNoted, e)))
    await alice.send_json({"type": "transfer", "to": "8102", "note": why})
    await next_of(alice, "info")
    ringing = await next_of(bob, "pop")  # as bob's phone rings
    assert ringing["call"]["state"] == "ringing"
    assert ringing["handover"]["note"] == why
    assert ringing["handover"]["from"]["label"] == "alice (8101)"
    assert ringing["handover"]["transcript"][0]["text"] == "my card is [CARD]"

    (noted,) = noted_on_bus  # told to the other servers
    assert (noted.linkedid, noted.by_extension, noted.note) == (linkedid, "8101", why)

    # app_queue ends alice's part first (her leg left), then the tracker names bob
    ui.publish(AgentStateChanged(node=NODE, agent=ALICE, state="available", reason="", linkedid=""))
    assert (await next_of(alice, "wrapup"))["linkedid"] == linkedid
    ui.publish(make.transferred(linkedid, ALICE, BOB, "blind"))  # bob has the customer
    left = await next_of(alice, "handed_over")  # still told where her customer went
    assert (left["to"], left["closed"]) == ("bob (8102)", False)
    taken = await next_of(bob, "pop")
    assert taken["call"]["state"] == "connected"
    assert (taken["handover"]["how"], taken["handover"]["note"]) == ("blind transfer", why)

    ui.publish(make.transferred(linkedid, BOB, ALICE, "attended"))  # and back: no note now
    back = await _skipping(alice, "pop", "wrapped")  # her 1 s wrap-up may have run out
    assert back["handover"]["from"]["label"] == "bob (8102)"
    assert back["handover"]["note"] == ""
    assert back["call"]["state"] == "connected"
    await alice.send_json({"type": "wrapup", "linkedid": linkedid, "disposition": "resolved"})
    early = await next_of(alice, "error")  # her part goes on: nothing to wrap up yet
    assert early["message"] == "no wrap-up is pending for this call"
    ui.publish(make.ended(linkedid, ALICE))  # the call ends with her: her one wrap-up
    assert (await next_of(alice, "wrapup"))["linkedid"] == linkedid


async def _skipping(ws: aiohttp.ClientWebSocketResponse, kind: str, skip: str) -> dict[str, Any]:
    """The next message of type ``kind``, past any of type ``skip``."""
    while True:
        message: dict[str, Any] = await ws.receive_json(timeout=10)
        if message["type"] == kind:
            return message
        assert message["type"] in (skip, "hello", "state", "info"), message


def test_a_card_read_in_two_breaths_is_masked_in_both_and_an_ended_call_is_forgotten() -> None:
    """The lines are redacted together, in time order, whatever order the bus brought them."""
    said = SaidSoFar(SequenceRedaction("CN"))
    for event in (
        make.said("c1", "agent", "go on", 3.0),
        make.said("c1", "customer", "my card number is 4111 1111", 1.0),
        make.said("c1", "customer", "1111 1111", 4.0),
        make.said("c1", "customer", "the order was 2024-05-01 for 35 yuan", 6.0),
    ):
        said.apply(event)
    assert [line["text"] for line in said.transcript(NODE, "c1")] == [
        "my card number is [CARD]",
        "go on",
        "[CARD]",
        "the order was 2024-05-01 for 35 yuan",  # dates and amounts are kept
    ]
    said.apply(make.ended("c1", ALICE))
    said.apply(make.said("c1", "customer", "a late line", 9.0))
    assert said.transcript(NODE, "c1") == []


@pytest.mark.asyncio
async def test_a_transfer_keyed_on_a_real_phone_pops_on_the_targets_desk(ui: Ui) -> None:
    """Real Asterisk 22 traffic (an attended transfer keyed on the agent's phone, no desktop)
    through the real tracker: its domain events, with what was said before the transfer, pop
    the target's desk with the hand-over and end the first agent's part."""
    await add_users(ui.db, ("carol", "agent", "2111"), ("dan", "agent", "2112"))
    carol = await ui.desk("carol")
    dan = await ui.desk("dan")
    _tracker, published = replay(load(TRANSFERS / "attended_keyed.json"))
    at = next(n for n, e in enumerate(published) if isinstance(e, CallTransferred))
    handed = published[at]
    assert isinstance(handed, CallTransferred)
    answer = next(n for n, e in enumerate(published) if isinstance(e, CallAnswered))
    ui.publish(*published[: answer + 1])  # carol's phone rings, she answers
    await _all_of(carol, "pop", "answered")
    said = make.said(handed.linkedid, "customer", f"card {CARD} was charged twice", 1.0)
    ui.publish(*published[answer + 1 : at], dataclasses.replace(said, node=handed.node), handed)

    pop = await _skipping(dan, "pop", "answered")
    assert pop["call"]["linkedid"] == handed.linkedid
    assert pop["handover"]["kind"] == "attended"
    assert pop["handover"]["from"]["label"] == "carol (2111)"
    assert [line["text"] for line in pop["handover"]["transcript"]] == [
        "card [CARD] was charged twice"
    ]
    left = await _all_of(carol, "handed_over", "wrapup")
    assert left["handed_over"]["to"] == "dan (2112)"
    ui.publish(*published[at + 1 :])  # the customer hangs up on dan
    assert (await next_of(dan, "wrapup"))["linkedid"] == handed.linkedid


@pytest.mark.asyncio
async def test_a_note_written_at_a_desk_another_server_serves_reaches_the_target(ui: Ui) -> None:
    """Alice's desk is on another server: its note comes over the bus, before the tracker's
    word that bob has the customer."""
    bob = await ui.desk("bob")
    linkedid = "1700000200.9"
    _legs(ui, linkedid, "PJSIP/trunk-00000001", "PJSIP/8102-00000003")
    why = "second call about the same refund"
    ui.publish(
        make.arrived(linkedid),
        TransferNoted(node=NODE, linkedid=linkedid, by_extension="8101", by_name="alice", note=why),
        make.transferred(linkedid, ALICE, BOB, "attended"),
    )
    taken = await next_of(bob, "pop")
    assert (taken["handover"]["how"], taken["handover"]["note"]) == ("attended transfer", why)
