"""The agent UI's guards without a browser: sign-in, cookies, CSRF, roles, idle timeout, and
who may open a websocket and send what on it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import agent_ui.app
from agent_ui.auth import STORE
from agent_ui.sessions import SessionStore
from crm_core.customers import create_customer
from crm_core.database import make_engine
from crm_core.models import User
from crm_core.people import set_password
from crm_core.schemas import CustomerIn
from cti_server.bus import MemoryBus
from cti_server.events import AgentRinging, CallArrived, IvrFinished
from tests.support.ui import PASSWORD, add_users, csrf_of, sign_in, ui_app

XSS = '"><svg/onload=alert(1)>'


@dataclass
class Ui:
    client: TestClient[Any, Any]
    app: web.Application
    bus: MemoryBus
    db: async_sessionmaker[AsyncSession]
    ids: dict[str, int]

    @property
    def base(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    @property
    def store(self) -> SessionStore:
        ui: web.Application = self.app._subapps[0]  # the mounted /ui
        return ui[STORE]

    def time_passes(self, seconds: float) -> None:
        """Move the sessions' clock on, as if nobody did anything for ``seconds``."""
        clock = self.store.clock
        self.store.clock = lambda: clock() + seconds

    async def session_for(self, username: str) -> aiohttp.ClientSession:
        """A browser-like client of its own, signed in as ``username``."""
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        status, _ = await sign_in(http, self.base, username)
        assert status == 303
        return http


@pytest_asyncio.fixture
async def ui(
    sqlite_crm_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Ui]:
    monkeypatch.setattr(agent_ui.app, "USER_CHECK_EVERY", 0.1)  # not the server's 5 s
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    try:
        ids = await add_users(
            db, ("alice", "agent", "8101"), ("bob", "agent", "8102"), ("sam", "supervisor", "7001")
        )
        app, bus, _ = ui_app(db)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        try:
            yield Ui(client, app, bus, db, ids)
        finally:
            await client.close()
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_sign_in_sets_an_httponly_samesite_cookie_and_wrong_passwords_are_refused(
    ui: Ui,
) -> None:
    async with ui.client.get("/ui/login") as page:
        token = csrf_of(await page.text())
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    async with ui.client.post(
        "/ui/login", data={"username": "alice", "password": "wrong", "csrf": token}
    ) as refused:
        assert refused.status == 401
    async with ui.client.get("/ui/login") as page:
        token = csrf_of(await page.text())
    async with ui.client.post(
        "/ui/login",
        data={"username": "alice", "password": PASSWORD, "csrf": token},
        allow_redirects=False,
    ) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/ui/desktop"
        cookie = response.cookies["cti_session"]
        assert cookie["httponly"]
        assert cookie["samesite"] == "Strict"
        assert cookie["path"] == "/ui"


@pytest.mark.asyncio
async def test_sign_in_without_the_form_token_is_refused(ui: Ui) -> None:
    async with ui.client.post(
        "/ui/login", data={"username": "alice", "password": PASSWORD}
    ) as response:
        assert response.status == 403
    assert len(ui.store) == 0


@pytest.mark.asyncio
async def test_pages_need_a_session_and_the_role(ui: Ui) -> None:
    async with ui.client.get("/ui/desktop", allow_redirects=False) as anonymous:
        assert anonymous.status == 303
        assert anonymous.headers["Location"] == "/ui/login"
    agent = await ui.session_for("alice")
    supervisor = await ui.session_for("sam")
    try:
        for path in ("/ui/wallboard", "/ui/wallboard/calls.svg", "/ui/wallboard/service-level.svg"):
            async with agent.get(ui.base + path) as refused:
                assert refused.status == 403, path
            async with supervisor.get(ui.base + path) as allowed:
                assert allowed.status == 200, path
        async with agent.get(ui.base + "/ui/desktop") as desk:
            assert desk.status == 200
    finally:
        await agent.close()
        await supervisor.close()


@pytest.mark.asyncio
async def test_forms_without_the_session_csrf_token_are_refused(ui: Ui) -> None:
    agent = await ui.session_for("alice")
    try:
        async with agent.post(
            ui.base + "/ui/customers/new", data={"name": "Mallory"}, allow_redirects=False
        ) as forged:
            assert forged.status == 403
        async with agent.get(ui.base + "/ui/desktop") as page:
            token = csrf_of(await page.text())
        async with agent.post(
            ui.base + "/ui/customers/new",
            data={"name": "Real Customer", "phone": "+8613800001111", "csrf": token},
            allow_redirects=False,
        ) as created:
            assert created.status == 303
            assert created.headers["Location"].startswith("/ui/customers/")
    finally:
        await agent.close()


@pytest.mark.asyncio
async def test_idle_and_signed_out_sessions_stop_working(ui: Ui) -> None:
    agent = await ui.session_for("alice")
    try:
        ui.time_passes(ui.store.idle_seconds + 1)
        async with agent.get(ui.base + "/ui/desktop", allow_redirects=False) as idle:
            assert idle.status == 303
        assert len(ui.store) == 0
    finally:
        await agent.close()
    agent = await ui.session_for("alice")
    try:
        async with agent.get(ui.base + "/ui/desktop") as page:
            token = csrf_of(await page.text())
        async with agent.post(
            ui.base + "/ui/logout", data={"csrf": token}, allow_redirects=False
        ) as out:
            assert out.status == 303
        assert len(ui.store) == 0
    finally:
        await agent.close()


@pytest.mark.asyncio
async def test_a_hostile_customer_name_is_escaped_on_the_profile(ui: Ui) -> None:
    async with ui.db() as session, session.begin():
        customer = await create_customer(
            session, CustomerIn(name=XSS, phones=[{"number": "+8613800002222"}]), "CN"
        )
    agent = await ui.session_for("alice")
    try:
        async with agent.get(f"{ui.base}/ui/customers/{customer.id}") as page:
            html = await page.text()
        async with agent.get(f"{ui.base}/ui/customers", params={"q": "svg"}) as search:
            found = await search.text()
    finally:
        await agent.close()
    assert "<svg/onload" not in html
    assert "<svg/onload" not in found
    assert "&#34;&gt;&lt;svg/onload=alert(1)&gt;" in html
    assert "&#34;&gt;&lt;svg/onload=alert(1)&gt;" in found


# -- the websocket ------------------------------------------------------------------------------


async def _refused(http: aiohttp.ClientSession, url: str, **headers: str) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url, headers=headers)
    return refused.value.status


@pytest.mark.asyncio
async def test_websocket_refuses_no_session_an_expired_one_and_a_foreign_origin(ui: Ui) -> None:
    url = ui.base + "/ui/ws?view=desk"
    anonymous = aiohttp.ClientSession()
    agent = await ui.session_for("alice")
    try:
        assert await _refused(anonymous, url, Origin=ui.base) == 401
        assert await _refused(agent, url, Origin="http://evil.example") == 403
        assert await _refused(agent, url) == 403  # no Origin at all
        assert await _refused(agent, ui.base + "/ui/ws?view=wallboard", Origin=ui.base) == 403
        ws = await agent.ws_connect(url, headers={"Origin": ui.base})
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello"
        await ws.close()
        ui.time_passes(ui.store.idle_seconds + 1)
        assert await _refused(agent, url, Origin=ui.base) == 401
    finally:
        await anonymous.close()
        await agent.close()


@pytest.mark.asyncio
async def test_websocket_closes_when_the_session_is_revoked(ui: Ui) -> None:
    agent = await ui.session_for("alice")
    try:
        ws = await agent.ws_connect(ui.base + "/ui/ws?view=desk", headers={"Origin": ui.base})
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        async with ui.db() as db:
            assert await ui.store.revoke_user(db, ui.ids["alice"]) == 1
        while True:
            message = await ws.receive(timeout=5)
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
        assert ws.close_code == 4401
    finally:
        await agent.close()


@pytest.mark.asyncio
async def test_an_agent_cannot_send_supervisor_actions(ui: Ui) -> None:
    agent = await ui.session_for("alice")
    try:
        ws = await agent.ws_connect(ui.base + "/ui/ws?view=desk", headers={"Origin": ui.base})
        await ws.send_json({"type": "force_logout", "node": "pbx1", "interface": "PJSIP/8102"})
        while (message := await ws.receive_json(timeout=5))["type"] != "error":
            pass
        assert message == {"type": "error", "message": "forbidden", "for": "force_logout"}
        await ws.close()
    finally:
        await agent.close()


# -- pops ---------------------------------------------------------------------------------------


async def _next(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next message of type ``kind``, skipping the greeting and state updates."""
    while True:
        message: dict[str, Any] = await ws.receive_json(timeout=5)
        if message["type"] == kind:
            return message
        assert message["type"] in ("hello", "state"), message


@pytest.mark.asyncio
async def test_a_pop_goes_to_the_ringing_agent_only_with_ivr_secrets_masked(ui: Ui) -> None:
    async with ui.db() as session, session.begin():
        await create_customer(
            session,
            CustomerIn(name=XSS, phones=[{"number": "+8613911112222"}], tier_override="gold"),
            "CN",
        )
    alice = await ui.session_for("alice")
    bob = await ui.session_for("bob")
    try:
        alice_ws = await alice.ws_connect(ui.base + "/ui/ws?view=desk", headers={"Origin": ui.base})
        bob_ws = await bob.ws_connect(ui.base + "/ui/ws?view=desk", headers={"Origin": ui.base})
        await _next(alice_ws, "state")
        await _next(bob_ws, "state")
        node, linkedid = "pbx1", "1700000000.42"
        ui.bus.publish(
            CallArrived(
                node=node,
                linkedid=linkedid,
                uniqueid="1700000000.42",
                channel="PJSIP/trunk-0001",
                caller_number="13911112222",
                caller_name=XSS,
                dialed="100",
            )
        )
        ui.bus.publish(
            IvrFinished(
                node=node,
                linkedid=linkedid,
                flow="main",
                outcome="transfer",
                queue="support",
                attributes={"intent": "billing", "tier": "gold", "weekday": "mon"},
                path=[{"step": "menu", "type": "menu", "input": "1"}],
                inputs={"account": "12345678", "card_pin": "4321"},
                customer_id=None,
            )
        )
        ui.bus.publish(
            AgentRinging(
                node=node,
                linkedid=linkedid,
                queue="support",
                agent="agent-8101",
                caller_number="13911112222",
                caller_name=XSS,
            )
        )
        pop = await _next(alice_ws, "pop")
        assert pop["customer"]["name"] == XSS
        assert pop["customer"]["tier"] == "gold"
        assert pop["ivr"]["inputs"] == {"account": "12345678", "card_pin": "***"}
        assert pop["routing"] == {"intent": "billing", "tier": "gold"}
        await bob_ws.send_json({"type": "no-such-message"})
        assert (await bob_ws.receive_json(timeout=5))["type"] == "error"  # and no pop before it
        await alice_ws.close()
        await bob_ws.close()
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(("user", "view"), [("alice", "desk"), ("sam", "wallboard")])
async def test_every_pages_keep_alive_restarts_the_idle_clock(ui: Ui, user: str, view: str) -> None:
    """static/common.js sends ``activity`` from every page: a supervisor watching the wallboard
    is not signed out, and is not told "forbidden"."""
    http = await ui.session_for(user)
    try:
        ws = await http.ws_connect(f"{ui.base}/ui/ws?view={view}", headers={"Origin": ui.base})
        (session,) = ui.store.of_user(ui.ids[user])
        ui.time_passes(ui.store.idle_seconds - 1)  # one second from being signed out
        await ws.send_json({"type": "activity"})
        await ws.send_json({"type": "no-such-message"})  # answered after the activity
        while (message := await ws.receive_json(timeout=5))["type"] != "error":
            pass
        assert message == {"type": "error", "message": "unknown: no-such-message"}
        assert ui.store.expire_idle() == 0
        assert ui.store.get(session.id) is session
        await ws.close()
    finally:
        await http.close()


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Wait for the server to close ``ws``; its close code."""
    while True:
        message = await ws.receive(timeout=10)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return ws.close_code


@pytest.mark.asyncio
@pytest.mark.parametrize("change", ["disabled", "role", "password"])
async def test_a_user_disabled_or_changed_elsewhere_is_signed_out_and_their_socket_closed(
    ui: Ui, change: str
) -> None:
    """The CLI or the REST API changes the database, not the UI's process: the UI notices."""
    alice = await ui.session_for("alice")
    bob = await ui.session_for("bob")
    try:
        url = ui.base + "/ui/ws?view=desk"
        alice_ws = await alice.ws_connect(url, headers={"Origin": ui.base})
        bob_ws = await bob.ws_connect(url, headers={"Origin": ui.base})
        assert (await alice_ws.receive_json(timeout=5))["type"] == "hello"
        async with ui.db() as session, session.begin():
            if change == "password":
                await set_password(session, "alice", "a new and longer secret")
            else:
                values = {"active": False} if change == "disabled" else {"role": "supervisor"}
                await session.execute(
                    update(User).where(User.id == ui.ids["alice"]).values(**values)
                )
        assert await _closed(alice_ws) == 4401
        assert ui.store.of_user(ui.ids["alice"]) == []
        async with alice.get(ui.base + "/ui/desktop", allow_redirects=False) as page:
            assert page.status == 303  # to the sign-in page
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await alice.ws_connect(url, headers={"Origin": ui.base})
        await bob_ws.send_json({"type": "activity"})
        await bob_ws.send_json({"type": "no-such-message"})
        while (await bob_ws.receive_json(timeout=5))["type"] != "error":
            pass
        assert not bob_ws.closed  # nobody else is signed out
        await bob_ws.close()
    finally:
        await alice.close()
        await bob.close()
