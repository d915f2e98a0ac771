"""``GET /api/agents/figures``: each agent's calls handled, own talk time and average handle
time, a transfer's target counted with their own time; supervisors read every agent, an agent
their own row; a missing or bad window is a 422 that says what is wrong (SQLite, PostgreSQL).
Every answer is checked against the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.api.app import create_api, openapi_document
from crm_core.models import User
from crm_core.people import issue_token
from crm_core.settings import CrmSettings
from tests.support.call_chain import seed_chained_call
from tests.support.openapi import ResponseChecker

Sessions = async_sessionmaker[AsyncSession]
DAY = "since=2026-11-02T00:00:00Z&until=2026-11-03T00:00:00Z"


@dataclass
class Api:
    client: TestClient[Any, Any]
    db: Sessions

    async def get(self, username: str, query: str) -> tuple[int, Any]:
        async with self.db() as s, s.begin():
            user = await s.scalar(select(User).where(User.username == username))
            assert user is not None
            token = await issue_token(s, user)
        headers = {"Authorization": f"Bearer {token}"}
        async with self.client.get(f"/api/agents/figures?{query}", headers=headers) as answer:
            return answer.status, await answer.json()


@pytest_asyncio.fixture
async def api(crm: Sessions) -> AsyncIterator[Api]:
    """Li Na answered (2:10), handed to Wang Wei (1:05, attended), then to Zhao Min (0:20,
    blind); Li Na also had a call alone the day before."""
    await seed_chained_call(crm)
    checker = ResponseChecker(openapi_document())
    root = web.Application(middlewares=[checker.middleware])
    root.add_subapp("/api", create_api(crm, CrmSettings()))
    client: TestClient[Any, Any] = TestClient(TestServer(root))
    await client.start_server()
    try:
        yield Api(client, crm)
    finally:
        await client.close()
    assert checker.problems == []


def _rows(answer: dict[str, Any]) -> list[tuple[str, str, int, float, float]]:
    return [
        (r["name"], r["extension"], r["calls"], r["talk_seconds"], r["average_handle_seconds"])
        for r in answer["items"]
    ]


@pytest.mark.asyncio
async def test_a_supervisor_reads_every_agent_of_a_transferred_call(api: Api) -> None:
    status, answer = await api.get("sam", DAY)
    assert status == 200
    assert sorted(_rows(answer)) == [
        ("Li Na", "1001", 2, 260.0, 130.0),  # the transferred call and one she had alone
        ("Wang Wei", "1002", 1, 65.0, 65.0),
        ("Zhao Min", "1003", 1, 20.0, 20.0),
    ]
    assert (answer["since"], answer["until"]) == ("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z")
    # a segment belongs to the window it started in: from 09:01, after Li Na took both calls
    status, later = await api.get(
        "sam", "since=2026-11-02T10:01:00%2B01:00&until=2026-11-02T10:00:00Z"
    )
    assert (status, sorted(_rows(later))) == (
        200,
        [("Wang Wei", "1002", 1, 65.0, 65.0), ("Zhao Min", "1003", 1, 20.0, 20.0)],
    )


@pytest.mark.asyncio
async def test_an_agent_reads_their_own_row_only(api: Api) -> None:
    status, answer = await api.get("zhaomin", DAY)
    assert (status, _rows(answer)) == (200, [("Zhao Min", "1003", 1, 20.0, 20.0)])
    status, answer = await api.get("zhaomin", "since=2026-11-04T00:00:00Z&until=2026-11-05T00:00Z")
    assert (status, answer["items"]) == (200, [])


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        ("since=2026-11-02T00:00:00Z", "until", "Field required"),
        ("", "since", "Field required"),
        ("since=yesterday&until=2026-11-03T00:00:00Z", "since", "valid datetime"),
        ("since=2026-11-02T00:00:00&until=2026-11-03T00:00:00Z", "since", "timezone"),
        (DAY + "&agent=1001", "agent", "Extra inputs are not permitted"),
    ],
)
async def test_a_missing_or_bad_date_is_a_422_naming_it(
    api: Api, query: str, field: str, says: str
) -> None:
    status, answer = await api.get("sam", query)
    assert (status, answer["error"]) == (422, "invalid")
    assert field in [f["field"] for f in answer["fields"]]
    assert any(says in f["message"] for f in answer["fields"]), answer


@pytest.mark.asyncio
async def test_a_window_that_ends_before_it_starts_is_a_422(api: Api) -> None:
    status, answer = await api.get("sam", "since=2026-11-03T00:00:00Z&until=2026-11-02T00:00:00Z")
    assert (status, answer["error"], answer["message"]) == (
        422,
        "invalid",
        "until must be after since",
    )
