"""The event stream's websocket served over a real socket with its own bus and users (a
supervisor, two agents, an admin, each with an API token), for the stream's tests and the
hostile-input ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.models import User
from crm_core.people import issue_token
from cti_server.bus import MemoryBus
from cti_server.integrations.http import PREFIX, create_events_api
from cti_server.integrations.service import IntegrationService
from cti_server.integrations.settings import IntegrationsSettings
from cti_server.integrations.webhooks import Webhooks
from tests.support.ui import add_users

RECHECK = 0.2  # seconds between checks of a stream's token


@dataclass
class Stream:
    url: str
    bus: MemoryBus
    db: async_sessionmaker[AsyncSession]
    tokens: dict[str, str]
    http: aiohttp.ClientSession

    async def connect(self, who: str | None, query: str = "") -> aiohttp.ClientWebSocketResponse:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        ws = await self.http.ws_connect(self.url + query, headers=headers)
        if who:
            welcome = await ws.receive_json(timeout=5)
            assert welcome["type"] == "welcome"
        return ws


@pytest_asyncio.fixture
async def stream(crm: async_sessionmaker[AsyncSession]) -> AsyncIterator[Stream]:
    ids = await add_users(
        crm,
        ("sup", "supervisor", None),
        ("alice", "agent", "1001"),
        ("bob", "agent", "1002"),
        ("root", "admin", None),
    )
    tokens = {}
    async with crm() as session, session.begin():
        for username, user_id in ids.items():
            user = await session.get(User, user_id)
            assert user is not None
            tokens[username] = await issue_token(session, user)
    bus = MemoryBus()
    service = IntegrationService(bus, Webhooks(IntegrationsSettings()))
    app = web.Application()
    app.add_subapp(PREFIX, create_events_api(service, crm, recheck_seconds=RECHECK))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    await service.start()
    http = aiohttp.ClientSession()
    try:
        yield Stream(str(server.make_url(PREFIX + "/stream")), bus, crm, tokens, http)
    finally:
        await http.close()
        await service.close()
        await server.close()
