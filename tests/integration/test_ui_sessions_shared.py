"""Sessions kept in the shared database: a restart signs nobody out, a second server knows the
first's sessions, a sign-out on one is refused on the other, and the idle timeout holds across
servers. Two UI applications on one database stand for two servers (or one, restarted); on
SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import agent_ui.app
from agent_ui.auth import SESSION_COOKIE, STORE
from agent_ui.sessions import PURGE_EVERY, SessionStore
from crm_core.database import make_engine
from crm_core.models import UiSessionRecord
from tests.support.ui import add_users, csrf_of, sign_in, ui_app

DB = async_sessionmaker[AsyncSession]


class FakeClock:
    """Wall-clock seconds that move only when a test says so, shared by both servers."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Servers:
    """UI servers started on one database; each is a new process as far as sessions go."""

    def __init__(self, db: DB, stack: AsyncExitStack, clock: Callable[[], float]) -> None:
        self.db = db
        self._stack = stack
        self._clock = clock

    async def start(self) -> TestClient[Any, Any]:
        app, _, _ = ui_app(self.db)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        self._stack.push_async_callback(client.close)
        store(client).clock = self._clock
        return client


def store(client: TestClient[Any, Any]) -> SessionStore:
    ui: web.Application = client.app._subapps[0]
    return ui[STORE]


def base(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("")).rstrip("/")


@pytest_asyncio.fixture
async def db(crm_database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DB]:
    monkeypatch.setattr(agent_ui.app, "USER_CHECK_EVERY", 0.1)  # not the server's 5 s
    engine = make_engine(crm_database_url)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    await add_users(maker, ("alice", "agent", "8101"), ("sam", "supervisor", "7001"))
    try:
        yield maker
    finally:
        await engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def servers(db: DB, clock: FakeClock) -> AsyncIterator[Servers]:
    async with AsyncExitStack() as stack:
        yield Servers(db, stack, clock)


async def signed_in(client: TestClient[Any, Any], username: str) -> str:
    """Sign in on ``client``'s server as a browser does; the session cookie's value."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        status, cookie = await sign_in(http, base(client), username)
    assert status == 303
    return str(cookie.value)


async def page(client: TestClient[Any, Any], cookie: str, path: str = "/ui/desktop") -> int:
    """The status of a page opened with the session cookie (303: sent to sign in)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            base(client) + path, cookies={SESSION_COOKIE: cookie}, allow_redirects=False
        ) as response,
    ):
        return response.status


async def rows(db: DB) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(UiSessionRecord)) or 0)


@pytest.mark.asyncio
async def test_a_session_survives_a_server_restart(servers: Servers) -> None:
    first = await servers.start()
    cookie = await signed_in(first, "alice")
    assert await page(first, cookie) == 200
    await first.close()  # the server stops: nothing of its memory is left

    restarted = await servers.start()
    assert len(store(restarted)) == 0
    assert await page(restarted, cookie) == 200
    assert await page(restarted, "not-a-session") == 303


@pytest.mark.asyncio
async def test_the_database_keeps_only_a_hash_of_the_cookie(servers: Servers) -> None:
    server = await servers.start()
    cookie = await signed_in(server, "alice")
    async with servers.db() as session:
        (record,) = await session.scalars(select(UiSessionRecord))
    assert record.id_hash == hashlib.sha256(cookie.encode()).hexdigest()
    assert cookie not in repr(vars(record))


@pytest.mark.asyncio
async def test_two_servers_share_a_session_and_a_sign_out_on_one_is_refused_on_the_other(
    servers: Servers,
) -> None:
    a, b = await servers.start(), await servers.start()
    cookie = await signed_in(a, "alice")
    assert await page(b, cookie) == 200  # signed in on A, known to B

    async with aiohttp.ClientSession() as http:
        b_ws = await http.ws_connect(
            base(b) + "/ui/ws?view=desk",
            headers={"Origin": base(b), "Cookie": f"{SESSION_COOKIE}={cookie}"},
        )
        assert (await b_ws.receive_json(timeout=5))["type"] == "hello"
        async with http.get(base(a) + "/ui/desktop", cookies={SESSION_COOKIE: cookie}) as desk:
            token = csrf_of(await desk.text())
        async with http.post(
            base(a) + "/ui/logout",
            data={"csrf": token},
            cookies={SESSION_COOKIE: cookie},
            allow_redirects=False,
        ) as out:
            assert out.status == 303

        while (message := await b_ws.receive(timeout=10)).type == aiohttp.WSMsgType.TEXT:
            pass  # the desk's state, as it opened
        # B's open socket closes within its recheck, with no request made to B
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 4401)
    assert len(store(b)) == 0
    assert await page(b, cookie) == 303
    assert await rows(servers.db) == 0


@pytest.mark.asyncio
async def test_the_idle_timeout_counts_activity_on_every_server(
    servers: Servers, clock: FakeClock
) -> None:
    a, b = await servers.start(), await servers.start()
    idle = store(a).idle_seconds
    cookie = await signed_in(a, "alice")
    clock.now += idle - 10
    assert await page(a, cookie) == 200  # active on A just in time
    async with servers.db() as session:
        await store(a).recheck(session)  # what A's background check does every few seconds
    clock.now += 20  # idle past the timeout since signing in, not since the activity on A
    assert await page(b, cookie) == 200

    clock.now += idle + 1  # now idle on both
    assert await page(b, cookie) == 303
    assert await page(a, cookie) == 303
    assert await rows(servers.db) == 0


@pytest.mark.asyncio
async def test_expired_sessions_are_purged_by_a_server_that_never_saw_them(
    servers: Servers, clock: FakeClock
) -> None:
    a, b = await servers.start(), await servers.start()
    await signed_in(a, "alice")
    await signed_in(a, "sam")
    await a.close()  # A is gone for good: nobody will look these sessions up again
    assert await rows(servers.db) == 2
    clock.now += max(store(b).idle_seconds, PURGE_EVERY) + 1
    async with servers.db() as session:
        await store(b).recheck(session)
    assert await rows(servers.db) == 0


@pytest.mark.asyncio
async def test_while_the_database_cannot_answer_pages_say_so() -> None:
    """Sessions live in the database: without it nobody is let in, and the page says why."""
    with socket.socket() as probe:  # a port nothing listens on: the database is down
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = make_engine(f"postgresql+asyncpg://cti@127.0.0.1:{port}/cti")
    app, _, _ = ui_app(async_sessionmaker(engine, expire_on_commit=False))
    try:
        async with (
            TestClient(TestServer(app)) as client,
            client.get(
                "/ui/desktop", cookies={SESSION_COOKIE: "a-session"}, allow_redirects=False
            ) as response,
        ):
            assert response.status == 503
            assert "database cannot answer now" in await response.text()
    finally:
        await engine.dispose()
