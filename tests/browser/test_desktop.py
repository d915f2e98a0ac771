"""In real Chromium: an agent takes a real call through Asterisk with its screen pop and wraps it
up while the supervisor watches; hostile caller names stay text; agents stay in their lane; an
unknown caller is created from the pop; a transfer ends the agent's part; sockets are refused
without a live session of this site."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import expect
from sqlalchemy import select

from agent_ui.auth import STORE
from crm_core.cases import CaseSla, open_case
from crm_core.interactions import record_interaction
from crm_core.models import FollowUp, Interaction
from crm_core.schemas import InteractionIn
from crm_core.valuation import recompute_value
from crm_core.value import ValuePolicy
from cti_server.app import AMI, TRACKER
from cti_server.sim.simulation import SimulatedCall, place_customer_call
from cti_server.telephony.ami_client import AmiClient
from tests.browser.conftest import Tab, UiServer, add_customer
from tests.support.waiting import EventLog, event_is, poll_until

pytestmark = [pytest.mark.browser, pytest.mark.asterisk, pytest.mark.slow]

VIP = ("王总", "+8613911112222")
XSS = '"><svg/onload=alert(1)>'
SCREENSHOTS = os.environ.get("UI_SCREENSHOTS_DIR", "")  # docs/ when scripts/screenshots runs


async def _call(server: UiServer, number: str, name: str, dtmf: str) -> SimulatedCall:
    return await place_customer_call(
        server.app[AMI],
        context=server.node.settings.dialplan.inbound_context,
        number=number,
        name=name,
        dtmf=dtmf,
        pre_wait=3,
        patience=60,
    )


async def _interaction(server: UiServer, call: SimulatedCall) -> Interaction:
    async def _wrapped() -> Interaction | None:
        async with server.db() as session:
            row = await session.scalar(
                select(Interaction).where(Interaction.external_key.endswith(call.uniqueid))
            )
        return row if row is not None and row.disposition else None

    return await poll_until(_wrapped, 15, what="the wrap-up in the CRM")


@pytest.mark.asyncio
async def test_agent_takes_a_real_call_with_its_pop_and_wraps_up_while_the_supervisor_watches(
    ui_server: UiServer,
) -> None:
    server = ui_server
    vip = await add_customer(
        server.db,
        VIP[0],
        VIP[1],
        tier_override="platinum",
        language="zh",
        account_number="A12345678",
    )
    async with server.db() as session, session.begin():
        await recompute_value(session, vip, ValuePolicy())
        earlier = await record_interaction(
            session,
            InteractionIn(
                node="pbx1",
                linkedid="earlier-call-1",
                customer_id=vip,
                arrived_at=datetime.now(UTC) - timedelta(days=3),
                queue="support",
                agent_name="agent-8102",
                disposition="resolved",
                notes="Explained the March invoice",
            ),
        )
        await open_case(
            session,
            customer_id=vip,
            category="billing",
            severity="high",
            summary="Charged twice in March",
            interaction_ids=[earlier.id],
            sla=CaseSla(),
        )
    sam = await server.signed_in("sam")
    await expect(sam.page.locator("#board-status")).to_have_text("live")
    alice = await server.signed_in("alice")
    bob = await server.signed_in("bob")
    await expect(alice.page.locator("#state")).to_have_text("logged out")
    await expect(bob.page.locator("#state")).to_have_text("logged out")

    call = await _call(server, VIP[1], VIP[0], dtmf="1")
    waiting = sam.page.locator(f'#calls tr[data-linkedid="{call.uniqueid}"]')
    await expect(waiting).to_have_attribute("data-state", "queued", timeout=30_000)
    await expect(sam.page.locator('#queues tr[data-queue="support"] td').nth(1)).to_have_text("1")

    await alice.page.click("#go-available")
    await expect(alice.page.locator("#pop")).to_be_visible(timeout=15_000)
    await expect(alice.page.locator("#pop-name")).to_have_text(VIP[0])
    await expect(alice.page.locator("#pop-tier")).to_have_text("platinum")
    await expect(alice.page.locator("#pop-account")).to_have_text("A12345678")
    await expect(alice.page.locator("#pop-language")).to_have_text("zh")
    await expect(alice.page.locator("#pop-ivr-path")).to_contain_text("menu → 1")
    # named by caller ID, no PIN on file: the desk is told it is not proof
    await expect(alice.page.locator("#pop-identity")).to_have_text(
        "not verified: caller ID only, ask a security question"
    )
    await expect(alice.page.locator("#pop-identity")).to_have_class("unverified")
    await expect(alice.page.locator("#pop-routing")).to_contain_text("billing")
    await expect(alice.page.locator("#pop-history")).to_contain_text("resolved")
    await expect(alice.page.locator("#pop-cases")).to_contain_text("Charged twice in March")
    await expect(alice.page.locator("#pop-call-state")).to_have_text("connected")
    await expect(waiting).to_have_attribute("data-state", "answered")
    await expect(sam.page.locator('#agents tr[data-agent="agent-8101"]')).to_have_attribute(
        "data-state", "on_call"
    )
    await expect(sam.page.locator('#agents tr[data-agent="agent-8101"]')).to_contain_text(
        "platinum"
    )
    # the person, from the CRM, beside their phone: not only Asterisk's member name
    await expect(sam.page.locator('#agents tr[data-agent="agent-8101"] td').first).to_have_text(
        "alice (8101)"
    )
    await sam.page.reload()  # the socket comes back, and the charts show this call
    await expect(sam.page.locator('#agents tr[data-agent="agent-8101"]')).to_have_attribute(
        "data-state", "on_call"
    )
    if SCREENSHOTS:
        await alice.page.screenshot(path=str(Path(SCREENSHOTS) / "agent-desktop.png"))
        await sam.page.screenshot(path=str(Path(SCREENSHOTS) / "wallboard.png"))

    await alice.page.click("#hangup")
    await expect(alice.page.locator("#wrapup")).to_be_visible(timeout=15_000)
    await expect(alice.page.locator("#state")).to_have_text("wrap up")
    await alice.page.select_option("#disposition", "follow_up")
    await alice.page.fill("#notes", "Asked about the March invoice; sending a copy.")
    due = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    await alice.page.fill("#follow-up-at", due)
    await alice.page.fill("#follow-up-note", "Check the copy arrived")
    await alice.page.click("#wrapup-done")
    await expect(alice.page.locator("#message")).to_have_text("Wrap-up saved.")
    await expect(alice.page.locator("#state")).to_have_text("available")

    row = await _interaction(server, call)
    assert row.disposition == "follow_up"
    assert row.notes == "Asked about the March invoice; sending a copy."
    assert row.customer_id == vip
    assert row.agent_id == server.ids["alice"]
    async with server.db() as session:
        task = await session.scalar(select(FollowUp).where(FollowUp.interaction_id == row.id))
    assert task is not None
    assert task.owner_id == server.ids["alice"]
    assert task.note == "Check the copy arrived"

    await expect(bob.page.locator("#pop")).to_be_hidden()  # the call never rang bob
    for tab in (alice, bob, sam):
        assert tab.dialogs == []
        assert tab.errors == []


@pytest.mark.asyncio
async def test_a_hostile_caller_name_renders_as_text_and_no_script_runs(
    ui_server: UiServer,
) -> None:
    server = ui_server
    await add_customer(server.db, XSS, "+8613700009999")
    sam = await server.signed_in("sam")
    alice = await server.signed_in("alice")
    await expect(alice.page.locator("#state")).to_have_text("logged out")
    await alice.page.click("#go-available")
    await expect(alice.page.locator("#state")).to_have_text("available")

    call = await _call(server, "+8613700009999", XSS, dtmf="1")
    await expect(alice.page.locator("#pop-name")).to_have_text(XSS, timeout=30_000)
    await expect(alice.page.locator("#pop-caller")).to_contain_text(XSS)
    row = sam.page.locator(f'#calls tr[data-linkedid="{call.uniqueid}"]')
    await expect(row).to_contain_text(XSS)
    await expect(row).to_contain_text("alice (8101)")  # the agent on it, by name
    await expect(sam.page.locator('#agents tr[data-agent="agent-8101"]')).to_contain_text(XSS)
    assert await alice.page.locator("#pop svg").count() == 0
    assert await sam.page.locator("#calls svg").count() == 0

    await alice.page.click("#hangup")
    await expect(alice.page.locator("#wrapup")).to_be_visible(timeout=15_000)
    await alice.page.goto(f"{server.base}/ui/customers?q=%2B8613700009999")
    await expect(alice.page.locator("#results")).to_contain_text(XSS)
    for tab in (alice, sam):
        assert tab.dialogs == []
        assert tab.errors == []


@pytest.mark.asyncio
async def test_an_agent_cannot_open_supervisor_pages_or_their_socket(ui_server: UiServer) -> None:
    server = ui_server
    alice = await server.signed_in("alice")
    response = await alice.page.goto(f"{server.base}/ui/wallboard")
    assert response is not None
    assert response.status == 403
    await expect(alice.page.locator("#forbidden")).to_be_visible()
    response = await alice.page.goto(f"{server.base}/ui/wallboard/calls.svg")
    assert response is not None
    assert response.status == 403
    await alice.page.goto(f"{server.base}/ui/desktop")
    code = await alice.page.evaluate(
        """() => new Promise((resolve) => {
            const ws = new WebSocket("ws://" + location.host + "/ui/ws?view=wallboard");
            ws.onopen = () => resolve("open");
            ws.onclose = (event) => resolve("closed " + event.code);
        })"""
    )
    assert code == "closed 1006"  # refused before the upgrade (403)


@pytest.mark.asyncio
async def test_the_supervisor_listens_to_a_call_through_chanspy_and_forces_a_pause(
    ui_server: UiServer, ami: tuple[AmiClient, EventLog]
) -> None:
    server = ui_server
    _, log = ami
    await add_customer(server.db, "Listener Test", "+8613700008888")
    sam = await server.signed_in("sam")
    alice = await server.signed_in("alice")
    await expect(alice.page.locator("#state")).to_have_text("logged out")
    await alice.page.click("#go-available")
    await expect(alice.page.locator("#state")).to_have_text("available")
    await _call(server, "+8613700008888", "Listener Test", dtmf="1")
    await expect(alice.page.locator("#pop-call-state")).to_have_text("connected", timeout=30_000)
    row = sam.page.locator('#agents tr[data-agent="agent-8101"]')
    await expect(row).to_have_attribute("data-state", "on_call")
    await row.get_by_role("button", name="listen").click()
    await expect(sam.page.locator("#message")).to_have_text("listen: your phone rings")
    spy = await log.wait_for(event_is("ChanSpyStart"), 15, "ChanSpy on alice's call")
    assert str(spy.get("SpyeeChannel", "")).startswith("Local/8101@cti-sim-agent-long-")
    await alice.page.click("#hangup")
    await expect(alice.page.locator("#wrapup")).to_be_visible(timeout=15_000)
    await row.get_by_role("button", name="pause").click()
    await expect(row).to_contain_text("by sam")


@pytest.mark.asyncio
async def test_an_unknown_caller_is_created_from_the_pop_prefilled_with_their_number(
    ui_server: UiServer,
) -> None:
    server = ui_server
    alice = await server.signed_in("alice")
    await expect(alice.page.locator("#state")).to_have_text("logged out")
    await alice.page.click("#go-available")
    await expect(alice.page.locator("#state")).to_have_text("available")
    # a stranger: a language, no account number ("#"), then billing (again if a key is lost)
    call = await _call(server, "+8613700006666", "Zhang San", dtmf="1wwww#" + "ww1" * 8)
    await expect(alice.page.locator("#pop-unknown")).to_be_visible(timeout=30_000)
    await expect(alice.page.locator("#create-phone")).to_have_value("+8613700006666")
    await expect(alice.page.locator("#create-name")).to_have_value("Zhang San")
    await expect(alice.page.locator("#pop-tier")).to_have_text("unknown")
    await alice.page.fill("#create-name", "Zhang San (new)")
    await alice.page.click("#create-customer button[type=submit]")
    await alice.page.wait_for_url(f"{server.base}/ui/desktop")
    await expect(alice.page.locator("#pop-name")).to_have_text("Zhang San (new)", timeout=15_000)
    await expect(alice.page.locator("#pop-phone")).to_have_text("+8613700006666")
    await expect(alice.page.locator("#pop-unknown")).to_be_hidden()
    await expect(alice.page.locator("#pop-profile")).to_be_visible()

    async def _linked() -> int | None:
        async with server.db() as session:
            row = await session.scalar(
                select(Interaction).where(Interaction.external_key.endswith(call.uniqueid))
            )
        return row.customer_id if row is not None else None

    customer_id = await poll_until(_linked, 15, what="the call's customer in the CRM")
    await alice.page.click("#pop-profile")
    await expect(alice.page.locator("h1")).to_contain_text("Zhang San (new)")
    assert alice.page.url.endswith(f"/ui/customers/{customer_id}")
    assert alice.errors == []


async def _pop_shown(tabs: tuple[Tab, Tab]) -> Tab | None:
    for tab in tabs:
        if await tab.page.locator("#pop").is_visible():
            return tab
    return None


@pytest.mark.asyncio
async def test_an_available_agent_does_not_get_the_pop_of_a_call_that_rings_another(
    ui_server: UiServer,
) -> None:
    server = ui_server
    await add_customer(server.db, "Ringing Elsewhere", "+8613700005555")
    alice = await server.signed_in("alice")
    bob = await server.signed_in("bob")
    for tab in (alice, bob):
        await expect(tab.page.locator("#state")).to_have_text("logged out")
        await tab.page.click("#go-available")
        await expect(tab.page.locator("#state")).to_have_text("available")
    await _call(server, "+8613700005555", "Ringing Elsewhere", dtmf="1")
    # the queue rings one member at a time (rrmemory): either may be the one
    rung = await poll_until(lambda: _pop_shown((alice, bob)), 30, what="a pop on a desk")
    other = bob if rung is alice else alice
    await expect(rung.page.locator("#pop-name")).to_have_text("Ringing Elsewhere")
    await expect(rung.page.locator("#pop-call-state")).to_have_text("connected")
    await expect(other.page.locator("#state")).to_have_text("available")  # free all along
    await expect(other.page.locator("#pop")).to_be_hidden()
    await expect(other.page.locator("#pop-empty")).to_be_visible()
    assert await other.page.locator("#pop-name").text_content() == ""
    for tab in (alice, bob):
        assert tab.errors == []


@pytest.mark.asyncio
async def test_a_transfer_ends_the_transferring_agents_call_and_pops_on_the_targets_desk(
    ui_server: UiServer,
) -> None:
    server = ui_server
    await add_customer(server.db, "Passed On", "+8613700004444")
    sam = await server.signed_in("sam")
    dee = await server.signed_in("dee")
    alice = await server.signed_in("alice")
    await expect(alice.page.locator("#state")).to_have_text("logged out")
    await alice.page.click("#go-available")
    await expect(alice.page.locator("#state")).to_have_text("available")
    call = await _call(server, "+8613700004444", "Passed On", dtmf="1")
    await expect(alice.page.locator("#pop-call-state")).to_have_text("connected", timeout=30_000)
    await expect(dee.page.locator("#pop")).to_be_hidden()
    await alice.page.fill("#transfer-to", "7002")  # dee's phone: it answers and stays on the line
    await alice.page.click("#transfer")
    await expect(alice.page.locator("#message")).to_have_text("transferred to 7002")
    await expect(dee.page.locator("#pop-name")).to_have_text("Passed On", timeout=15_000)
    await expect(dee.page.locator("#pop-transferred")).to_have_text("alice")
    await expect(alice.page.locator("#wrapup")).to_be_visible(timeout=15_000)
    await expect(alice.page.locator("#pop-call-state")).to_have_text("ended")
    await expect(alice.page.locator("#state")).to_have_text("wrap up")
    await expect(sam.page.locator('#agents tr[data-agent="agent-8101"]')).to_have_attribute(
        "data-state", "wrap_up"
    )
    assert server.app[TRACKER].call(server.node.settings.ami.node, call.uniqueid)  # goes on
    await alice.page.select_option("#disposition", "escalated")
    await alice.page.click("#wrapup-done")
    await expect(alice.page.locator("#message")).to_have_text("Wrap-up saved.")
    row = await _interaction(server, call)
    assert row.disposition == "escalated"
    assert row.agent_id == server.ids["alice"]
    for tab in (alice, dee, sam):
        assert tab.errors == []


OPEN_SOCKET = """(url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => { ws.close(); resolve("open"); };
    ws.onclose = (event) => resolve("closed " + event.code);
})"""


@pytest_asyncio.fixture
async def elsewhere() -> AsyncIterator[str]:
    """A page of another origin on the same machine (another port: the same site, so the
    browser still sends the session cookie, and only the Origin tells the socket apart)."""

    async def page(_request: web.Request) -> web.Response:
        return web.Response(
            text="<!doctype html><title>elsewhere</title>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


def _refusals(caplog: pytest.LogCaptureFixture) -> list[int]:
    """The status of each websocket handshake the server refused, from its access log (to the
    page a refusal is only "closed 1006"; an accepted socket is logged when it closes)."""
    statuses = []
    for record in caplog.records:
        said = record.getMessage()
        if record.name == "aiohttp.access" and "GET /ui/ws?view=desk " in said:
            statuses.append(int(said.split('HTTP/1.1" ')[1].split()[0]))
    caplog.clear()
    return [status for status in statuses if status != 101]


@pytest.mark.asyncio
async def test_the_websocket_refuses_no_session_an_expired_one_and_a_foreign_origin(
    ui_server: UiServer, elsewhere: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = ui_server
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    url = server.base.replace("http://", "ws://") + "/ui/ws?view=desk"

    anonymous = await server.tab()
    await anonymous.page.goto(f"{server.base}/ui/login")
    assert await anonymous.page.evaluate(OPEN_SOCKET, url) == "closed 1006"
    assert _refusals(caplog) == [401]  # no session

    alice = await server.signed_in("alice")
    await expect(alice.page.locator("#state")).to_have_text("logged out")
    assert await alice.page.evaluate(OPEN_SOCKET, url) == "open"  # her session, her page
    assert _refusals(caplog) == []

    await alice.page.goto(elsewhere)  # the same browser, her cookie, another origin
    assert await alice.page.evaluate(OPEN_SOCKET, url) == "closed 1006"
    assert _refusals(caplog) == [403]  # refused for the Origin, not for want of a session

    await alice.page.goto(f"{server.base}/ui/desktop")
    await expect(alice.page.locator("#state")).to_have_text("logged out")
    # a page of the same origin and session that runs no script of ours: the desktop's own
    # socket may find the session expired first and take its page to the login at any moment
    probe = await alice.page.context.new_page()
    await probe.goto(f"{server.base}/ui/static/style.css")
    caplog.clear()
    store = server.ui[STORE]
    clock = store.clock
    store.clock = lambda: clock() + store.idle_seconds + 1  # idle for too long
    assert await probe.evaluate(OPEN_SOCKET, url) == "closed 1006"
    assert _refusals(caplog) == [401]  # the session expired
    assert store.of_user(server.ids["alice"]) == []
    await alice.page.wait_for_url(f"{server.base}/ui/login", timeout=15_000)  # its own socket
