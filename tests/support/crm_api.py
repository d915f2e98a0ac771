"""The CRM API in a test: a server on a test database, a user and a token per role, and every
answer checked against the OpenAPI document."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.api.app import create_api, openapi_document
from crm_core.people import create_user, issue_token
from crm_core.settings import CrmSettings
from tests.support.openapi import ResponseChecker

ROLES = ("agent", "supervisor", "manager", "admin")


@dataclass
class CrmApi:
    client: TestClient[Any, Any]
    tokens: dict[str, str]
    user_ids: dict[str, int]
    checker: ResponseChecker

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def call(
        self, method: str, path: str, who: str | None = "agent", **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {**(self.auth(who) if who else {}), **kwargs.pop("headers", {})}
        async with self.client.request(method, "/api" + path, headers=headers, **kwargs) as resp:
            return resp.status, await resp.json()


@asynccontextmanager
async def crm_api(
    db: async_sessionmaker[AsyncSession], settings: CrmSettings | None = None
) -> AsyncIterator[CrmApi]:
    """``/api`` on ``db`` with the users ``agent``, ``supervisor``, ``manager`` and ``admin``
    (password ``<role>-password``); the answers the document does not describe are in
    ``checker.problems``."""
    tokens, ids = {}, {}
    async with db() as session, session.begin():
        for role in ROLES:
            user = await create_user(session, username=role, password=f"{role}-password", role=role)
            tokens[role] = await issue_token(session, user)
            ids[role] = user.id
    checker = ResponseChecker(openapi_document())
    root = web.Application(middlewares=[checker.middleware])
    root.add_subapp("/api", create_api(db, settings or CrmSettings()))
    client: TestClient[Any, Any] = TestClient(TestServer(root))
    await client.start_server()
    try:
        yield CrmApi(client, tokens, ids, checker)
    finally:
        await client.close()


def tracebacks(records: Iterable[logging.LogRecord]) -> list[str]:
    """The records logged with a traceback or at ERROR and above (a test wants none)."""
    return [r.getMessage() for r in records if r.exc_info or r.levelno >= logging.ERROR]
