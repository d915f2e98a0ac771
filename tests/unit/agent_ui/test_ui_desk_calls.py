"""The desk follows the call on the server, without Asterisk: the wrap-up's deadline is kept here
(a closed tab does not leave the agent paused), a transfer ends the transferring agent's part and
pops on the target's desk, and the router's decision joins the pop whenever it comes. Then what
an agent does at the desk: create an unknown caller, choose among several matches, hold and
resume, transfer to an agent, click-to-dial (actions checked for real, Asterisk's replies faked)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from crm_core.customers import create_customer
from crm_core.interactions import find_interaction
from crm_core.pins import PinLockPolicy, PinResult, check_pin, set_pin
from crm_core.schemas import CustomerIn
from cti_server.events import (
    CallRouted,
    IvrFinished,
)
from cti_server.telephony import agent_actions
from tests.support.desk import (
    ALICE,
    BOB,
    CALLER,
    NODE,
    Ui,
    answered,
    arrived,
    ended,
    next_of,
    ringing,
    state,
)
from tests.support.live_model import dialled_call
from tests.support.ui import csrf_of
from tests.support.waiting import poll_until


async def _connect(ui: Ui, ws: aiohttp.ClientWebSocketResponse, linkedid: str) -> None:
    """A call rings alice, pops, and she answers."""
    ui.publish(arrived(linkedid), ringing(linkedid, ALICE))
    assert (await next_of(ws, "pop"))["call"]["linkedid"] == linkedid
    ui.publish(answered(linkedid, ALICE))
    await next_of(ws, "answered")


async def _stored(ui: Ui, linkedid: str) -> Any:
    async def _disposed() -> Any:
        async with ui.db() as session:
            row = await find_interaction(session, NODE, linkedid)
        return row if row is not None and row.disposition else None

    return await poll_until(_disposed, 10, what=f"the wrap-up of {linkedid} in the CRM")


# -- the wrap-up's deadline -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_wrap_up_left_open_is_stored_and_the_agent_made_available_by_the_server(
    ui: Ui,
) -> None:
    alice = await ui.desk("alice")
    linkedid = "1700000000.1"
    await _connect(ui, alice, linkedid)
    await alice.close()  # the tab is closed during the call: nobody will send the form
    ui.publish(state(ALICE, "available"), ended(linkedid, ALICE))

    row = await _stored(ui, linkedid)
    assert row.disposition == "no_action"
    assert row.agent_id == ui.ids["alice"]
    await poll_until(lambda: _asked(ui, ("unpause", "PJSIP/8101")), 10, what="alice made available")
    assert ("pause", "PJSIP/8101", "wrap-up") in ui.ami.asked


async def _asked(ui: Ui, action: tuple[str, ...]) -> bool:
    return action in ui.ami.asked


@pytest.mark.asyncio
async def test_an_open_desk_is_told_the_wrap_up_timed_out_and_its_late_form_is_refused(
    ui: Ui,
) -> None:
    alice = await ui.desk("alice")
    linkedid = "1700000000.2"
    await _connect(ui, alice, linkedid)
    ui.publish(ended(linkedid, ALICE))
    wrapup = await next_of(alice, "wrapup")
    assert 0 <= wrapup["left"] <= 1  # the server's deadline, which the countdown follows
    wrapped = await next_of(alice, "wrapped")
    assert wrapped == {"type": "wrapped", "linkedid": linkedid, "timed_out": True}
    await alice.send_json({"type": "wrapup", "linkedid": linkedid, "disposition": "resolved"})
    refused = await next_of(alice, "error")
    assert refused["message"] == "no wrap-up is pending for this call"
    assert (await _stored(ui, linkedid)).disposition == "no_action"


# -- transfers --------------------------------------------------------------------------------


def _live_call(ui: Ui, linkedid: str, caller: str, agent: str) -> None:
    """The tracker's view of a call answered by alice: the caller's leg and hers."""
    dialled_call(ui.tracker, NODE, linkedid, caller, agent, number=CALLER, name="Wang")


@pytest.mark.asyncio
async def test_a_transfer_ends_the_transferring_agents_part_and_pops_on_the_targets_desk(
    ui: Ui,
) -> None:
    alice = await ui.desk("alice")
    bob = await ui.desk("bob")
    linkedid = "1700000000.3"
    _live_call(ui, linkedid, "PJSIP/trunk-00000001", "PJSIP/8101-00000002")
    await _connect(ui, alice, linkedid)

    await alice.send_json({"type": "transfer", "to": "8102"})
    assert await next_of(alice, "info") == {"type": "info", "message": "transferred to 8102"}
    assert ("transfer", "PJSIP/8101-00000002", "8102", "cti-agents") in ui.ami.asked
    pop = await next_of(bob, "pop")  # bob's phone rings with the caller, said to be from alice
    assert pop["call"]["linkedid"] == linkedid
    assert pop["call"]["state"] == "ringing"
    assert pop["call"]["transferred_by"] == "alice"
    assert pop["call"]["caller_number"] == CALLER

    # app_queue completes alice's part (her leg left): her call is over for her, wrap-up
    ui.publish(state(ALICE, "available"))
    wrapup = await next_of(alice, "wrapup")
    assert wrapup["linkedid"] == linkedid
    await poll_until(
        lambda: _asked(ui, ("pause", "PJSIP/8101", "wrap-up")), 10, what="alice in wrap-up"
    )

    ui.publish(state(BOB, "on_call"))  # bob answers
    assert await next_of(bob, "answered") == {
        "type": "answered",
        "node": NODE,
        "linkedid": linkedid,
    }
    ui.publish(ended(linkedid, ALICE))
    assert (await next_of(bob, "wrapup"))["linkedid"] == linkedid


@pytest.mark.asyncio
async def test_a_desks_call_goes_on_while_its_phone_is_still_in_it(ui: Ui) -> None:
    """A device state saying "free" while the agent's leg is still live (it carries the call's
    linkedid; app_queue's completion does not) does not end the agent's call."""
    alice = await ui.desk("alice")
    linkedid = "1700000000.4"
    _live_call(ui, linkedid, "PJSIP/trunk-00000001", "PJSIP/8101-00000002")
    await _connect(ui, alice, linkedid)
    ui.publish(state(ALICE, "available", linkedid))
    assert (await next_of(alice, "state"))["state"] == "available"
    await alice.send_json({"type": "hold"})  # still her call: the controls still find her leg
    assert await next_of(alice, "held") == {"type": "held", "held": True}
    assert ("hold", "PJSIP/8101-00000002") in ui.ami.asked


# -- the router's decision --------------------------------------------------------------------


def _routed(linkedid: str, extension: str) -> CallRouted:
    decision = {"rule": "tie-break longest idle", "agent": extension, "candidates": []}
    return CallRouted(
        node=NODE, linkedid=linkedid, extension=extension, rule="skills", decision=decision
    )


@pytest.mark.asyncio
async def test_the_routers_decision_reaches_the_pop_whether_it_comes_before_or_after_it(
    ui: Ui,
) -> None:
    alice = await ui.desk("alice")
    late, early = "1700000000.5", "1700000000.6"
    ui.publish(arrived(late), ringing(late, ALICE))
    pop = await next_of(alice, "pop")
    assert "decided by" not in pop["routing"]
    ui.publish(_routed(late, "8101"))  # written to the CRM later by the recorder
    update = await next_of(alice, "pop_routing")
    assert update["linkedid"] == late
    longest = "of the qualified agents free, you had waited longest for a call"
    assert update["routing"]["decided by"] == longest

    ui.publish(ended(late, ""), arrived(early), _routed(early, "8101"), ringing(early, ALICE))
    await next_of(alice, "pop_cleared")
    pop = await next_of(alice, "pop")
    assert pop["call"]["linkedid"] == early
    assert pop["routing"]["decided by"] == longest


# -- what an agent does at the desk -----------------------------------------------------------


async def _customer(ui: Ui, name: str, phone: str = "+86" + CALLER) -> int:
    async with ui.db() as session, session.begin():
        row = await create_customer(
            session, CustomerIn.model_validate({"name": name, "phones": [{"number": phone}]}), "CN"
        )
        return row.id


async def _customer_of_call(ui: Ui, linkedid: str) -> int | None:
    async with ui.db() as session:
        row = await find_interaction(session, NODE, linkedid)
    return row.customer_id if row is not None else None


@pytest.mark.asyncio
async def test_an_unknown_caller_is_created_from_the_pop_and_becomes_the_calls_customer(
    ui: Ui,
) -> None:
    alice = await ui.desk("alice")
    linkedid = "1700000000.11"
    ui.publish(arrived(linkedid), ringing(linkedid, ALICE))
    pop = await next_of(alice, "pop")
    assert pop["lookup"] == "unknown"
    assert pop["number"] == "+86" + CALLER  # what the create form is filled in with
    assert "customer" not in pop
    async with ui.http.get(ui.base + "/ui/desktop") as page:
        html = await page.text()
    assert 'action="/ui/customers/new"' in html
    async with ui.http.post(
        ui.base + "/ui/customers/new",
        data={
            "csrf": csrf_of(html),
            "linkedid": linkedid,
            "name": "Wang Wei",
            "phone": pop["number"],
            "language": "zh",
        },
        allow_redirects=False,
    ) as created:
        assert created.status == 303
        assert created.headers["Location"] == "/ui/desktop"  # back to the call
    customer_id = await _customer_of_call(ui, linkedid)
    assert customer_id is not None
    again = await ui.http.ws_connect(
        f"{ui.base}/ui/ws?view=desk", headers={"Origin": ui.base}
    )  # the desktop reloads after the form: its pop now shows the new customer
    shown = await next_of(again, "pop")
    assert shown["customer"]["id"] == customer_id
    assert shown["customer"]["name"] == "Wang Wei"
    assert shown["customer"]["phones"] == ["+86" + CALLER]
    await again.close()


@pytest.mark.asyncio
async def test_a_number_shared_by_several_customers_asks_who_is_calling(ui: Ui) -> None:
    first = await _customer(ui, "Li Na")
    second = await _customer(ui, "Li Lei")
    stranger = await _customer(ui, "Zhao", "+8613700000001")
    alice = await ui.desk("alice")
    linkedid = "1700000000.12"
    ui.publish(arrived(linkedid), ringing(linkedid, ALICE))
    pop = await next_of(alice, "pop")
    assert pop["lookup"] == "ambiguous"
    assert {m["id"] for m in pop["matches"]} == {first, second}
    assert "customer" not in pop

    await alice.send_json({"type": "choose", "customer_id": stranger})
    refused = await next_of(alice, "error")
    assert refused["message"] == "that customer is not one of the matches of this call"
    await alice.send_json({"type": "choose", "customer_id": second})
    chosen = await next_of(alice, "pop")
    assert chosen["customer"]["name"] == "Li Lei"
    assert len(chosen["matches"]) == 2  # the agent may still change their mind
    assert await _customer_of_call(ui, linkedid) == second


@pytest.mark.asyncio
async def test_hold_and_resume_act_on_the_agents_own_leg_of_the_call(ui: Ui) -> None:
    alice = await ui.desk("alice")
    await alice.send_json({"type": "hold"})
    assert (await next_of(alice, "error"))["message"] == "no call in progress"
    linkedid = "1700000000.13"
    _live_call(ui, linkedid, "PJSIP/trunk-00000001", "PJSIP/8101-00000009")
    await _connect(ui, alice, linkedid)
    await alice.send_json({"type": "hold"})
    assert await next_of(alice, "held") == {"type": "held", "held": True}
    await alice.send_json({"type": "unhold"})
    assert await next_of(alice, "held") == {"type": "held", "held": False}
    assert [a for a in ui.ami.asked if a[0] in ("hold", "unhold")] == [
        ("hold", "PJSIP/8101-00000009"),
        ("unhold", "PJSIP/8101-00000009"),
    ]


@pytest.mark.asyncio
async def test_transfer_to_an_agent_is_checked_before_asterisk_is_asked(
    ui: Ui, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_actions, "blind_transfer", _REAL_BLIND_TRANSFER)
    alice = await ui.desk("alice")
    linkedid = "1700000000.14"
    _live_call(ui, linkedid, "PJSIP/trunk-00000001", "PJSIP/8101-0000000a")
    await _connect(ui, alice, linkedid)
    await alice.send_json({"type": "transfer", "to": "8102\r\nAction: Hangup"})
    refused = await next_of(alice, "error")
    assert refused["for"] == "transfer"
    assert "extension" in refused["message"]
    assert ui.ami.sent == []
    await alice.send_json({"type": "transfer", "to": "8102"})
    assert await next_of(alice, "info") == {"type": "info", "message": "transferred to 8102"}
    assert ui.ami.sent == [
        (
            "BlindTransfer",
            {"Channel": "PJSIP/8101-0000000a", "Exten": "8102", "Context": "cti-agents"},
        )
    ]


_REAL_BLIND_TRANSFER = agent_actions.blind_transfer


@pytest.mark.asyncio
async def test_click_to_dial_rings_the_agents_phone_from_the_desk_and_the_profile(ui: Ui) -> None:
    customer = await _customer(ui, "Zhou")
    alice = await ui.desk("alice")
    await alice.send_json({"type": "dial", "number": "+86 139 1111 2222; Hangup"})
    assert "customer number" in (await next_of(alice, "error"))["message"]
    assert ui.ami.sent == []
    await alice.send_json({"type": "dial", "number": "+86 139 1111 2222"})
    info = await next_of(alice, "info")
    assert info["message"] == "your phone rings first, then +8613911112222"
    ((action, fields),) = ui.ami.sent
    assert action == "Originate"
    assert fields["Channel"] == "PJSIP/8101"  # alice's phone rings first
    assert fields["Exten"] == "+8613911112222"
    assert fields["Context"] == "cti-click-to-dial"

    async with ui.http.get(f"{ui.base}/ui/customers/{customer}") as page:
        token = csrf_of(await page.text())
    async with ui.http.post(
        ui.base + "/ui/dial",
        data={"csrf": token, "customer_id": str(customer), "number": "+8613911112222"},
        allow_redirects=False,
    ) as dialled:
        assert dialled.status == 303
        assert dialled.headers["Location"].startswith(f"/ui/customers/{customer}?message=")
    assert [a for a, _ in ui.ami.sent] == ["Originate", "Originate"]


def _ivr(linkedid: str, **attributes: str) -> IvrFinished:
    return IvrFinished(
        node=NODE,
        linkedid=linkedid,
        flow="main",
        outcome="transfer",
        queue="support",
        attributes={"queue": "support", **attributes},
        path=[],
        inputs={},
        customer_id=None,
    )


@pytest.mark.asyncio
async def test_the_pop_says_whether_the_caller_proved_who_they_are(ui: Ui) -> None:
    """Caller ID names a customer, anyone can send it: the desk sees whether the IVR checked a
    PIN, found it wrong, or found it locked after too many wrong tries."""
    alice = await ui.desk("alice")
    cases = [
        ({"verified": "pin"}, True, "verified: PIN typed in the IVR"),
        ({"verified": "no"}, False, "not verified: caller ID only, ask a security question"),
        ({"pin_verified": "no"}, False, "not verified: wrong PIN in the IVR"),
        (
            {"pin_verified": "no", "pin_locked": "yes"},
            False,
            "not verified: IVR PIN locked after wrong tries",
        ),
    ]
    for n, (attributes, verified, note) in enumerate(cases):
        linkedid = f"1700000100.{n}"
        ui.publish(arrived(linkedid), _ivr(linkedid, **attributes), ringing(linkedid, ALICE))
        pop = await next_of(alice, "pop")
        assert pop["identity"] == {"verified": verified, "note": note}
        ui.publish(ended(linkedid, ""))
        await next_of(alice, "pop_cleared")


@pytest.mark.asyncio
async def test_the_customer_page_shows_the_ivr_pin_and_its_lock(ui: Ui) -> None:
    await ui.desk("alice")  # signed in
    customer = await _customer(ui, "Locked Out")

    async def pin_line() -> str:
        async with ui.http.get(f"{ui.base}/ui/customers/{customer}") as page:
            html = await page.text()
        return html.split('id="ivr-pin">', 1)[1].split("<", 1)[0]

    assert await pin_line() == "none: callers are named by caller ID only"
    async with ui.db() as session, session.begin():
        await set_pin(session, customer, "4711")
    assert await pin_line() == "set"
    for _ in range(PinLockPolicy().tries):
        async with ui.db() as session, session.begin():
            assert await check_pin(session, customer, "1111") is PinResult.WRONG
    line = await pin_line()
    assert line.startswith("locked until ")
    assert line.endswith(" UTC after 5 wrong tries")
    assert "4711" not in line
