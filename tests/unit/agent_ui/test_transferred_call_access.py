"""An agent who got a call by transfer took it too: they read it over the API and on the
customer's page, though the interaction names the first answerer; an agent who never had the
customer does not (SQLite, then PostgreSQL: the timeline's rule is an SQL filter)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.api.app import create_api, openapi_document
from crm_core.models import User
from crm_core.people import issue_token
from crm_core.settings import CrmSettings
from tests.support.call_chain import ChainedCall, seed_chained_call
from tests.support.openapi import ResponseChecker
from tests.support.ui import add_users, sign_in, ui_app

Sessions = async_sessionmaker[AsyncSession]


@dataclass
class Site:
    client: TestClient[Any, Any]
    db: Sessions
    call: ChainedCall

    @property
    def base(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def api(self, username: str, path: str) -> tuple[int, Any]:
        async with self.db() as s, s.begin():
            user = await s.scalar(select(User).where(User.username == username))
            assert user is not None
            token = await issue_token(s, user)
        headers = {"Authorization": f"Bearer {token}"}
        async with self.client.get(f"/api{path}", headers=headers) as answer:
            return answer.status, await answer.json()

    async def page(self, username: str, path: str) -> str:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            status, _ = await sign_in(http, self.base, username)
            assert status == 303
            async with http.get(f"{self.base}/ui{path}") as answer:
                assert answer.status == 200
                return await answer.text()


@pytest_asyncio.fixture
async def site(crm: Sessions) -> AsyncIterator[Site]:
    """A call answered by Li Na, handed to Wang Wei (attended), then to Zhao Min (blind); and
    Qian Yu, an agent who never had it."""
    call = await seed_chained_call(crm)
    await add_users(crm, ("qianyu", "agent", "1004"))
    root, _, _ = ui_app(crm)
    checker = ResponseChecker(openapi_document())
    root.middlewares.append(checker.middleware)
    root.add_subapp("/api", create_api(crm, CrmSettings()))
    client: TestClient[Any, Any] = TestClient(TestServer(root))
    await client.start_server()
    try:
        yield Site(client, crm, call)
    finally:
        await client.close()
    assert checker.problems == []


@pytest.mark.asyncio
async def test_an_agent_who_got_the_call_by_blind_transfer_reads_it(site: Site) -> None:
    call = site.call
    status, read = await site.api("zhaomin", f"/interactions/{call.interaction_id}")
    assert status == 200
    assert [party["how"] for party in read["parties"]] == ["answer", "attended", "blind"]
    status, timeline = await site.api("zhaomin", f"/customers/{call.customer_id}/interactions")
    assert status == 200
    assert [row["id"] for row in timeline["items"]] == [call.interaction_id]
    page = await site.page("zhaomin", f"/customers/{call.customer_id}")
    assert f'data-interaction="{call.interaction_id}"' in page
    assert f'data-interaction="{call.alone_id}"' not in page, "Li Na's call alone is not theirs"


@pytest.mark.asyncio
async def test_an_agent_who_never_had_the_customer_does_not(site: Site) -> None:
    call = site.call
    status, refused = await site.api("qianyu", f"/interactions/{call.interaction_id}")
    assert (status, refused["error"]) == (403, "forbidden")
    status, timeline = await site.api("qianyu", f"/customers/{call.customer_id}/interactions")
    assert (status, timeline["items"]) == (200, [])
    page = await site.page("qianyu", f"/customers/{call.customer_id}")
    assert "data-interaction=" not in page
    # the first answerer still reads both of their calls
    _, theirs = await site.api("lina", f"/customers/{call.customer_id}/interactions")
    assert {row["id"] for row in theirs["items"]} == {call.interaction_id, call.alone_id}
