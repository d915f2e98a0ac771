"""The wallboard's "Agents today": each agent's calls, own talk and average handle time since
midnight, from their own segments (a transfer's target counted with their own time), rendered by
the server with every name escaped, on the page and as the table its refresh swaps in; and how
each agent's latest calls sounded on their browser phone, an agent with poor audio flagged."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.database import make_engine
from crm_core.interactions import record_interaction
from crm_core.models import User
from crm_core.schemas import InteractionIn
from tests.support.transferred_today import seed_transferred_today
from tests.support.ui import sign_in, ui_app

HOSTILE = '<img src=x onerror="alert(1)">Li'
_ROW = re.compile(
    r"<tr data-extension=\"(\d+)\"><td>(.*?)</td><td>\d*</td>"
    r"<td class=\"number\">(\d+)</td><td class=\"number\">([\d:]+)</td>"
    r"<td class=\"number\">([\d:]+)</td><td class=\"(audio[^\"]*)\">(.*?)</td></tr>"
)


@pytest_asyncio.fixture
async def client(sqlite_crm_template: Path, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    try:
        answered = await seed_transferred_today(db, first_name=HOSTILE)
        await _measured_calls(db, answered)
        root, _, _ = ui_app(db)
        client: TestClient[Any, Any] = TestClient(TestServer(root))
        await client.start_server()
        try:
            yield client
        finally:
            await client.close()
    finally:
        await engine.dispose()


def _summary(loss_pct: float) -> dict[str, Any]:
    return {
        "seconds": 60.0,
        "final": True,
        "jitter_ms": 5.0,
        "packet_loss_pct": loss_pct,
        "rtt_ms": 60.0,
        "audio_level_in": 0.2,
        "audio_level_out": 0.1,
        "packets_received": 3000,
        "packets_lost": round(loss_pct * 30),
    }


async def _measured_calls(db: async_sessionmaker[AsyncSession], answered: datetime) -> None:
    """The transferred call sounded fine to Li Na (1001) and lossy to Wang Wei (1002), whose
    two other calls today (short ones) were lossy too; Li Na's lossy call yesterday no longer
    counts."""
    async with db() as session, session.begin():
        await record_interaction(
            session,
            InteractionIn.model_validate(
                {
                    "node": "pbx1",
                    "linkedid": "1700000000.31",
                    "quality": {"1001": _summary(0.0), "1002": _summary(6.0)},
                }
            ),
        )
        for linkedid, at, extension, loss in (
            ("1700000000.32", answered + timedelta(seconds=1), "1002", 8.0),
            ("1700000000.33", answered + timedelta(seconds=2), "1002", 4.5),
            ("1700000000.34", answered - timedelta(days=1), "1001", 9.0),
        ):
            await record_interaction(
                session,
                InteractionIn.model_validate(
                    {
                        "node": "pbx1",
                        "linkedid": linkedid,
                        "answered_at": at,
                        "parties": [
                            {
                                "party": f"PJSIP/{extension}",
                                "extension": extension,
                                "agent_id": await _user_at(session, extension),
                                "how": "answer",
                                "started_at": at,
                                "seconds": 0.0,
                            }
                        ],
                        "quality": {extension: _summary(loss)},
                    }
                ),
            )


async def _user_at(session: AsyncSession, extension: str) -> int | None:
    return await session.scalar(select(User.id).where(User.extension == extension))


async def _get(client: TestClient[Any, Any], username: str, path: str) -> tuple[int, str]:
    base = str(client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        status, _ = await sign_in(http, base, username)
        assert status == 303
        async with http.get(f"{base}/ui{path}", allow_redirects=False) as answer:
            return answer.status, await answer.text()


@pytest.mark.asyncio
async def test_each_agent_is_counted_with_their_own_time_and_poor_audio_is_flagged_in_words(
    client: TestClient[Any, Any],
) -> None:
    for path in ("/wallboard", "/wallboard/agents-today"):
        status, page = await _get(client, "sam", path)
        assert status == 200, path
        assert _ROW.findall(page) == [
            (
                "1002",
                "Wang Wei",
                *("3", "0:40", "0:13"),
                *("audio poor", "poor audio on 3 of 3 calls: packet loss"),
            ),
            (
                "1001",
                "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;Li",
                *("1", "1:35", "1:35"),
                *("audio", "good audio on 1 call"),
            ),
        ], path
        assert "<img src=x" not in page


@pytest.mark.asyncio
async def test_agents_do_not_see_the_table(client: TestClient[Any, Any]) -> None:
    status, _ = await _get(client, "wangwei", "/wallboard/agents-today")
    assert status == 403
