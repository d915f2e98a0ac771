"""The desktop's sign-in. Login CSRF: the form's field is bound to its cookie by this server's
key, so a site that can set cookies cannot plant a pair of its own that signs the victim in as
the attacker; nor does a post from another site's page pass, nor an hour-old form. And while the
database cannot answer, signing in says so (a 503), never a 500."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui.auth import LOGIN_FORM_SECONDS, LOGIN_KEY, _form_mac
from crm_core.database import make_engine
from crm_core.models import UiSessionRecord
from tests.support.ui import PASSWORD, add_users, csrf_of, ui_app

Sessions = async_sessionmaker[AsyncSession]


@pytest_asyncio.fixture
async def db(sqlite_crm_template: Path, tmp_path: Path) -> AsyncIterator[Sessions]:
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    await add_users(sessions, ("alice", "agent", "8101"), ("mallory", "agent", "8666"))
    try:
        yield sessions
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def site(db: Sessions) -> AsyncIterator[TestClient[Any, Any]]:
    client: TestClient[Any, Any] = TestClient(TestServer(ui_app(db)[0]))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def _form(client: TestClient[Any, Any]) -> tuple[str, str]:
    """A sign-in form as this server hands it out: (cookie, field)."""
    async with client.get("/ui/login") as page:
        return page.cookies["cti_login"].value, csrf_of(await page.text())


async def _post(
    site: TestClient[Any, Any],
    cookie: str,
    field: str,
    username: str = "mallory",
    origin: str | None = None,
) -> int:
    """A sign-in as a victim's browser would send it, with the cookie given (a fresh jar)."""
    headers = {"Cookie": f"cti_login={cookie}"}
    if origin is not None:
        headers["Origin"] = origin
    async with (
        aiohttp.ClientSession() as browser,
        browser.post(
            site.make_url("/ui/login"),
            data={"username": username, "password": PASSWORD, "csrf": field},
            headers=headers,
            allow_redirects=False,
        ) as response,
    ):
        return response.status


async def _sessions(db: Sessions) -> int:
    async with db() as s:
        return int(await s.scalar(select(func.count()).select_from(UiSessionRecord)) or 0)


@pytest.mark.asyncio
async def test_a_cookie_and_field_planted_together_sign_nobody_in(
    site: TestClient[Any, Any], db: Sessions
) -> None:
    planted = "attacker-chosen-value-0123456789"
    assert await _post(site, planted, planted) == 403  # the old double-submit let this in
    cookie, field = await _form(site)
    assert await _post(site, planted, field) == 403  # a real field with another cookie
    assert await _post(site, cookie, cookie) == 403
    assert await _sessions(db) == 0
    assert await _post(site, cookie, field) == 303  # the pair this server handed out works
    assert await _sessions(db) == 1


@pytest.mark.asyncio
async def test_a_form_of_another_server_or_an_hour_old_does_not_pass(
    site: TestClient[Any, Any], db: Sessions
) -> None:
    other: TestClient[Any, Any] = TestClient(TestServer(ui_app(db)[0]))  # another key
    await other.start_server()
    try:
        cookie, field = await _form(other)
    finally:
        await other.close()
    assert await _post(site, cookie, field) == 403
    ui: web.Application = site.app._subapps[0]
    old = int(time.time()) - LOGIN_FORM_SECONDS - 5
    stale = f"{old}.{_form_mac(ui[LOGIN_KEY], cookie, old)}"
    assert await _post(site, cookie, stale) == 403
    assert await _sessions(db) == 0


@pytest.mark.asyncio
async def test_a_sign_in_posted_from_another_sites_page_is_refused(
    site: TestClient[Any, Any], db: Sessions
) -> None:
    cookie, field = await _form(site)
    assert await _post(site, cookie, field, origin="https://evil.example") == 403
    assert await _sessions(db) == 0
    own = str(site.make_url("")).rstrip("/")
    assert await _post(site, cookie, field, username="alice", origin=own) == 303


@pytest.mark.asyncio
async def test_signing_in_while_the_database_cannot_answer_says_so() -> None:
    with socket.socket() as probe:  # a port nothing listens on: the database is down
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = make_engine(f"postgresql+asyncpg://cti@127.0.0.1:{port}/cti")
    client: TestClient[Any, Any] = TestClient(
        TestServer(ui_app(async_sessionmaker(engine, expire_on_commit=False))[0])
    )
    await client.start_server()
    try:
        cookie, field = await _form(client)
        async with (
            aiohttp.ClientSession() as browser,
            browser.post(
                client.make_url("/ui/login"),
                data={"username": "alice", "password": PASSWORD, "csrf": field},
                headers={"Cookie": f"cti_login={cookie}"},
            ) as response,
        ):
            assert response.status == 503
            assert "database cannot answer now" in await response.text()
    finally:
        await client.close()
        await engine.dispose()
