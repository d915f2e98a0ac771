"""The agent UI in tests: an application on a test database, users, and signing in over HTTP."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.people import create_user
from cti_server.bus import MemoryBus
from cti_server.config import UiSettings
from cti_server.tracker.tracker import Tracker
from tests.support.ui_server import Steerable, mounted, ui_deps

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def ui_app(
    db: async_sessionmaker[AsyncSession],
    settings: UiSettings | None = None,
    routing: Steerable | None = None,
) -> tuple[web.Application, MemoryBus, Tracker]:
    """``/ui`` alone, with a bus and tracker of its own and an AMI link that never connects;
    the queues support and sales to transfer to, and ``routing`` as the router (None: off;
    on, agents join their own queue and the fallback)."""
    bus = MemoryBus()
    tracker = Tracker(bus.publish)
    deps = ui_deps(db, bus, tracker, settings=settings, routing=routing)
    return mounted(deps), bus, tracker


async def add_users(
    db: async_sessionmaker[AsyncSession], *users: tuple[str, str, str | None]
) -> dict[str, int]:
    """(username, role, extension) each, all with :data:`PASSWORD`; their ids by name."""
    ids = {}
    async with db() as session, session.begin():
        for username, role, extension in users:
            user = await create_user(
                session, username=username, password=PASSWORD, role=role, extension=extension
            )
            ids[username] = user.id
    return ids


def csrf_of(page: str) -> str:
    match = _CSRF.search(page)
    assert match is not None, "no CSRF field on the page"
    return match.group(1)


async def sign_in(
    http: aiohttp.ClientSession, base: str, username: str, password: str = PASSWORD
) -> tuple[int, Any]:
    """Sign in as a browser does (form and its CSRF cookie); status and the session cookie."""
    async with http.get(f"{base}/ui/login") as page:
        token = csrf_of(await page.text())
    async with http.post(
        f"{base}/ui/login",
        data={"username": username, "password": password, "csrf": token},
        allow_redirects=False,
    ) as response:
        return response.status, response.cookies.get("cti_session")
