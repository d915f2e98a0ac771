"""The role matrix over the agent UI: every page, form and websocket view, opened by a user of
each role, is refused exactly when the matrix says the role is below it; and the desk is what
"serving" means: while a call rings at an agent's desk they read that caller's history and change
their record, in the UI and over the API alike (the API asks the desk, as the server wires it),
and once the call is gone they read only the calls they took."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui.auth import pages
from agent_ui.desktop import DESKS, Desks
from agent_ui.ws import VIEW_ROLES
from crm_core.access import UI_ROUTES, least, rank
from crm_core.api.app import create_api
from crm_core.customers import create_customer
from crm_core.database import make_engine
from crm_core.interactions import record_interaction
from crm_core.models import ROLES, User
from crm_core.people import issue_token
from crm_core.schemas import CustomerIn, InteractionIn
from crm_core.settings import CrmSettings
from cti_server.bus import MemoryBus
from tests.support.domain_events import CALLER, arrived, ended, ringing
from tests.support.ui import add_users, csrf_of, sign_in, ui_app
from tests.support.waiting import poll_until

USERS = {"agent": "alice", "supervisor": "sam", "manager": "mia", "admin": "ada"}
_PARAM = re.compile(r"\{(\w+)(?::[^{}]*(?:\{[^{}]*\}[^{}]*)*)?\}")  # {id:[0-9]{1,12}} -> {id}
FILLED = {"id": "99999", "chart": "calls", "linkedid": "1700000000.1"}
CHARTS = {"/complaints/{chart}.svg": "by-week", "/wallboard/{chart}.svg": "calls"}


@dataclass
class Ui:
    client: TestClient[Any, Any]
    db: async_sessionmaker[AsyncSession]
    desks: Desks
    bus: MemoryBus
    ids: dict[str, int]

    @property
    def base(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def browser(self, username: str) -> aiohttp.ClientSession:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        status, _ = await sign_in(http, self.base, username)
        assert status == 303
        return http

    async def token(self, username: str) -> dict[str, str]:
        async with self.db() as s, s.begin():
            user = await s.get(User, self.ids[username])
            assert user is not None
            return {"Authorization": f"Bearer {await issue_token(s, user)}"}


@pytest_asyncio.fixture
async def ui(sqlite_crm_template: Path, tmp_path: Path) -> AsyncIterator[Ui]:
    """The UI and, beside it, the API asking the UI's desks whom an agent serves (as
    cti_server.app wires them)."""
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    try:
        ids = await add_users(
            db,
            ("alice", "agent", "8101"),
            ("bob", "agent", "8102"),
            ("sam", "supervisor", "7001"),
            ("mia", "manager", "7002"),
            ("ada", "admin", "7003"),
        )
        root, bus, _tracker = ui_app(db)
        desks = root._subapps[0][DESKS]
        root.add_subapp(
            "/api",
            create_api(db, CrmSettings(), serving=lambda user: desks.serving(user.extension)),
        )
        client: TestClient[Any, Any] = TestClient(TestServer(root))
        await client.start_server()
        try:
            yield Ui(client, db, desks, bus, ids)
        finally:
            await client.close()
    finally:
        await engine.dispose()


def _key(method: str, path: str) -> str:
    return f"{method} {_PARAM.sub(lambda m: '{' + m.group(1) + '}', path)}"


def test_every_ui_route_has_a_rule_and_asks_the_matrix_for_its_role() -> None:
    declared = {_key(method, path): role for method, path, role, _handler, _name in pages.entries}
    views = {f"GET /ws?view={view}": role for view, role in VIEW_ROLES.items()}
    for key, role in {**declared, **views}.items():
        assert key in UI_ROUTES, f"{key} is not in crm_core.access.UI_ROUTES"
        rule = UI_ROUTES[key]
        assert role == (least(rule) if rule else None), key
    assert set(UI_ROUTES) == {*declared, *views}, "a rule for a route that does not exist"


def _url(key: str) -> str:
    path = key.partition(" ")[2]
    template = path
    for chart, value in CHARTS.items():
        if template == chart:
            return chart.replace("{chart}", value)
    return re.sub(r"\{(\w+)\}", lambda m: FILLED[m.group(1)], template)


@pytest.mark.asyncio
@pytest.mark.parametrize("role", ROLES)
async def test_each_role_is_refused_exactly_the_pages_below_it(ui: Ui, role: str) -> None:
    http = await ui.browser(USERS[role])
    try:
        home = "/ui/wallboard" if rank(role) >= rank("supervisor") else "/ui/desktop"
        async with http.get(ui.base + home) as page:
            csrf = csrf_of(await page.text())
        # signing out last: it ends the session the walk runs in
        walk = sorted(UI_ROUTES, key=lambda key: key == "POST /logout")
        for key in walk:
            rule = UI_ROUTES[key]
            if rule is None:
                continue
            method = key.partition(" ")[0]
            below = rank(role) < rank(least(rule))
            url = ui.base + "/ui" + _url(key)
            if "?view=" in key:
                status = await _socket_status(http, url, ui.base)
            else:
                data = {"csrf": csrf} if method == "POST" else None
                async with http.request(method, url, data=data, allow_redirects=False) as r:
                    status = r.status
                    text = await r.text()
                    if below:
                        assert f"This page is for the role {least(rule)} and above" in text, key
                    elif key != "POST /logout":  # still signed in: not sent to sign in
                        assert r.headers.get("Location") != "/ui/login", key
            assert (status == 403) == below, (key, status)
    finally:
        await http.close()


async def _socket_status(http: aiohttp.ClientSession, url: str, origin: str) -> int:
    try:
        ws = await http.ws_connect(url, headers={"Origin": origin})
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 101


async def _customer(ui: Ui, name: str, phone: str | None = None) -> int:
    phones = [{"number": phone}] if phone else []
    async with ui.db() as s, s.begin():
        return (await create_customer(s, CustomerIn(name=name, phones=phones), "CN")).id


async def _call(ui: Ui, linkedid: str, customer: int, agent: str, notes: str) -> int:
    async with ui.db() as s, s.begin():
        row = await record_interaction(
            s,
            InteractionIn(
                node="pbx1",
                linkedid=linkedid,
                customer_id=customer,
                agent_id=ui.ids[agent],
                notes=notes,
            ),
        )
        return row.id


@pytest.mark.asyncio
async def test_the_caller_ringing_at_a_desk_is_the_agents_to_read_and_change(ui: Ui) -> None:
    caller = await _customer(ui, "Wang Wei", CALLER)
    stranger = await _customer(ui, "Zhao Li")
    history = await _call(ui, "1600.1", caller, "bob", "parcel lost in Pudong")
    elsewhere = await _call(ui, "1600.2", stranger, "bob", "card ending 4242")
    own = await _call(ui, "1600.3", stranger, "alice", "asked for a callback")
    token = await ui.token("alice")
    http = await ui.browser("alice")
    ws = await http.ws_connect(f"{ui.base}/ui/ws?view=desk", headers={"Origin": ui.base})
    api = ui.client.session
    try:

        async def api_status(method: str, path: str, body: Any = None) -> int:
            async with api.request(method, ui.base + "/api" + path, headers=token, json=body) as r:
                return r.status

        async def profile(customer: int) -> str:
            async with http.get(f"{ui.base}/ui/customers/{customer}") as page:
                assert page.status == 200
                return await page.text()

        # not serving anyone: her own calls only
        assert await api_status("GET", f"/interactions/{history}") == 403
        page = await profile(caller)
        assert "parcel lost" not in page
        assert 'id="own-calls-only"' in page, "the page says why the history is short"
        assert await api_status("PATCH", f"/customers/{caller}", {"notes": "x"}) == 403

        linkedid = "1700000000.5"
        ui.bus.publish(arrived(linkedid))
        ui.bus.publish(ringing(linkedid, "agent-8101"))

        async def popped() -> dict[str, Any] | None:
            message: dict[str, Any] = await ws.receive_json(timeout=10)
            return message if message["type"] == "pop" else None

        pop = await poll_until(popped, 10, what="the pop at alice's desk")
        assert pop["customer"]["id"] == caller
        assert ui.desks.serving("8101").customers == {caller}
        assert await api_status("GET", f"/interactions/{history}") == 200
        page = await profile(caller)
        assert "parcel lost in Pudong" in page
        assert 'id="own-calls-only"' not in page
        assert await api_status("PATCH", f"/customers/{caller}", {"notes": "vip"}) == 200
        assert await api_status("GET", f"/interactions/{elsewhere}") == 403
        assert await api_status("PATCH", f"/customers/{stranger}", {"notes": "x"}) == 403
        page = await profile(stranger)
        assert "card ending 4242" not in page
        assert "asked for a callback" in page, "her own call is hers to read"
        assert await api_status("GET", f"/interactions/{own}") == 200

        gone = dataclasses.replace(
            ended(linkedid, "agent-8101"), outcome="abandoned", answered_at=None
        )
        ui.bus.publish(gone)
        await poll_until(lambda: _none_served(ui.desks), 10, what="the desk to let the caller go")
        assert await api_status("GET", f"/interactions/{history}") == 403
        assert "parcel lost" not in await profile(caller)
    finally:
        await ws.close()
        await http.close()


async def _none_served(desks: Desks) -> bool:
    return not desks.serving("8101").customers
