"""The desktop's POST forms and every websocket message type of the desk and the wallboard,
fuzzed: no 5xx, no traceback in the log, and every socket still open and answering.

The requests are drawn by Hypothesis once (derandomized, a fixed count per form and message
type) and then sent in order by the test, on its own event loop; a failure lists what was sent.
Form bodies are raw bytes (any percent-escape, UTF-8 or not), messages any JSON the strategy
makes, plus a few raw texts no JSON library writes (a 5,000-digit number, 60,000 brackets, a lone
surrogate).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote_from_bytes

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui.auth import LOGINS
from agent_ui.ws import HUB
from crm_core.database import make_engine
from crm_core.login_throttle import LoginGuard
from crm_core.settings import LoginSettings
from cti_server.config import UiSettings
from tests.support.crm_api import tracebacks
from tests.support.desk import FakeAmi
from tests.support.ui import add_users, csrf_of, sign_in, ui_app

T = TypeVar("T")
EXAMPLES = 60
"""Per form and per message type."""
SENTINEL = "zz-fuzz-sentinel"  # an unknown type: its error reply ends the answers to a message

TEXTS = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "available",
            "paused",
            "logged_out",
            "8101",
            "PJSIP/8101",
            "pbx1",
            "support",
            "1700000000.1",
            "listen",
            "whisper",
            "resolved",
            "2030-01-01T10:00:00+00:00",
            "2030-01-01T10:00:00",
            "\ud800",
            "a\u202eb",
            "\x00",
            "\x85",
            "9" * 400,
        ]
    ),
)
VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=10**30, max_value=10**60),
        st.floats(),
        TEXTS,
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=8,
)
MESSAGE_FIELDS = [
    "state",
    "reason",
    "to",
    "queue",
    "number",
    "linkedid",
    "disposition",
    "notes",
    "follow_up_at",
    "follow_up_note",
    "customer_id",
    "node",
    "interface",
    "mode",
    "follow",
    "adjust",
    "priority",
    "agent",
]
FORM_FIELDS = [
    "name",
    "phone",
    "account_number",
    "language",
    "linkedid",
    "customer_id",
    "number",
    "owner_id",
    "root_cause",
    "username",
    "password",
]
NOT_MESSAGES = [
    '{"type": "dial", "number": ' + "9" * 5000 + "}",  # beyond Python's int conversion limit
    "[" * 60_000,  # deeper than the JSON parser's recursion
    '"just a string"',
    '{"type": ["dial"]}',
]
"""Each answered "not a message"."""
ODD_MESSAGES = [
    '{"type": "wrapup", "linkedid": "1", "notes": "\\ud800"}',
    '{"type": "state", "state": "paused", "reason": "\\udfff"}',
    '{"type": "transfer", "to": 1e999}',
    '{"type": "call_priority", "linkedid": "1", "adjust": NaN}',
    '{"type": "choose", "customer_id": ' + "1" * 4000 + "}",
]


def drawn(strategy: st.SearchStrategy[T], count: int = EXAMPLES) -> list[T]:
    """``count`` values of ``strategy``, the same on every run."""
    found: list[T] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: T) -> None:
        found.append(value)

    collect()
    return found


def message_of(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"type": st.just(kind)}, optional=dict.fromkeys(MESSAGE_FIELDS, VALUES)
    )


def form_of(csrf: str) -> st.SearchStrategy[bytes]:
    """A urlencoded form: the session's CSRF field (mostly) and fields of any bytes."""
    fields = st.dictionaries(
        st.sampled_from(FORM_FIELDS),
        st.one_of(st.binary(max_size=40), TEXTS.map(lambda t: t.encode("utf-8", "surrogatepass"))),
        max_size=5,
    )
    token = st.sampled_from([csrf.encode()] * 4 + [b"", b"forged", b"\xff\xfe"])

    def encoded(parts: tuple[bytes, dict[str, bytes]]) -> bytes:
        csrf_value, values = parts
        pairs = [("csrf", csrf_value), *values.items()]
        return "&".join(f"{k}={quote_from_bytes(v)}" for k, v in pairs).encode()

    return st.tuples(token, fields).map(encoded)


@dataclass
class Browser:
    http: aiohttp.ClientSession
    csrf: str


@dataclass
class Ui:
    base: str
    app: web.Application
    browsers: dict[str, Browser]

    async def socket(self, who: str, view: str) -> aiohttp.ClientWebSocketResponse:
        return await self.browsers[who].http.ws_connect(
            f"{self.base}/ui/ws?view={view}", headers={"Origin": self.base}
        )


@pytest_asyncio.fixture
async def ui(
    sqlite_crm_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Ui]:
    """alice (agent, 8101), sue (supervisor, 8201) and maria (manager, 8301) signed in, a guest
    at the sign-in form; Asterisk faked; failed sign-ins delayed a hundredth of a second."""
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db: async_sessionmaker[AsyncSession] = async_sessionmaker(engine, expire_on_commit=False)
    ami = FakeAmi()
    ami.install(monkeypatch)
    await add_users(
        db, ("alice", "agent", "8101"), ("sue", "supervisor", "8201"), ("maria", "manager", "8301")
    )
    app, _bus, _tracker = ui_app(
        db, settings=UiSettings().model_copy(update={"wrapup_seconds": 60})
    )
    pages = app._subapps[0]
    ami.link(app, monkeypatch)
    quick = LoginSettings(first_delay_seconds=0.01, max_delay_seconds=0.01)
    pages[LOGINS] = LoginGuard(db, quick)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    base = str(client.make_url("")).rstrip("/")
    browsers: dict[str, Browser] = {}
    try:
        for who in ("alice", "sue", "maria"):
            http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            status, _ = await sign_in(http, base, who)
            assert status == 303
            async with http.get(base + "/ui/customers") as page:
                browsers[who] = Browser(http, csrf_of(await page.text()))
        guest = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with guest.get(base + "/ui/login") as page:
            browsers["guest"] = Browser(guest, csrf_of(await page.text()))
        yield Ui(base, app, browsers)
    finally:
        for browser in browsers.values():
            await browser.http.close()
        await client.close()
        await engine.dispose()


async def _answers(ws: aiohttp.ClientWebSocketResponse, raw: str) -> list[dict[str, Any]]:
    """What the server says to ``raw`` (and pushes meanwhile): messages of one socket are
    handled in order, so the sentinel's answer comes after them."""
    await ws.send_str(raw)
    await ws.send_str(json.dumps({"type": SENTINEL}))
    said: list[dict[str, Any]] = []
    while True:
        received = await ws.receive(timeout=10)
        assert received.type == aiohttp.WSMsgType.TEXT, (raw[:200], received)
        message: dict[str, Any] = json.loads(received.data)
        if message == {"type": "error", "message": f"unknown: {SENTINEL}"}:
            return said
        said.append(message)


@pytest.mark.asyncio
@pytest.mark.parametrize(("who", "view"), [("alice", "desk"), ("sue", "wallboard")])
async def test_every_websocket_message_type_survives_fuzzed_messages(
    ui: Ui, who: str, view: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hub = ui.app._subapps[0][HUB]
    kinds = sorted(kind for kind, route in hub._routes.items() if view in route.views)
    assert len(kinds) > 5
    ws = await ui.socket(who, view)
    sent = 0
    for kind in kinds:
        for message in drawn(message_of(kind)):
            await _answers(ws, json.dumps(message))
            sent += 1
    for raw in NOT_MESSAGES:
        assert {"type": "error", "message": "not a message"} in await _answers(ws, raw)
    for raw in ODD_MESSAGES:
        await _answers(ws, raw)
    assert sent == EXAMPLES * len(kinds), kinds
    assert not ws.closed
    assert tracebacks(caplog.records) == []
    await ws.close()


@pytest.mark.asyncio
async def test_every_post_form_answers_fuzzed_bodies_without_a_5xx(
    ui: Ui, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pages = ui.app._subapps[0]
    paths = sorted(
        {
            route.resource.canonical.replace("{id}", "1")
            for route in pages.router.routes()
            if route.method == "POST" and route.resource is not None
        },
        key=lambda path: path.endswith("/logout"),  # it ends the session: last
    )
    assert "/ui/customers/new" in paths
    failures: list[str] = []
    reached: set[str] = set()
    for path in paths:
        who = "maria" if "/complaints/" in path else "guest" if path == "/ui/login" else "alice"
        browser = ui.browsers[who]
        for body in drawn(form_of(browser.csrf)):
            async with browser.http.post(
                ui.base + path,
                data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                allow_redirects=False,
            ) as answer:
                if answer.status >= 500:
                    failures.append(f"{path} {body[:200]!r}: {answer.status}")
                if answer.status != 403:  # past the CSRF and role checks: the handler ran
                    reached.add(path)
    assert failures == []
    assert reached == set(paths)
    assert tracebacks(caplog.records) == []
