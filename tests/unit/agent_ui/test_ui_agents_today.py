"""The wallboard's "Agents today": each agent's calls, own talk and average handle time since
midnight, from their own segments (a transfer's target counted with their own time), rendered by
the server with every name escaped, on the page and as the table its refresh swaps in."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.database import make_engine
from tests.support.transferred_today import seed_transferred_today
from tests.support.ui import sign_in, ui_app

HOSTILE = '<img src=x onerror="alert(1)">Li'
_ROW = re.compile(
    r"<tr data-extension=\"(\d+)\"><td>(.*?)</td><td>\d*</td>"
    r"<td class=\"number\">(\d+)</td><td class=\"number\">([\d:]+)</td>"
    r"<td class=\"number\">([\d:]+)</td></tr>"
)


@pytest_asyncio.fixture
async def client(sqlite_crm_template: Path, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    try:
        await seed_transferred_today(db, first_name=HOSTILE)
        root, _, _ = ui_app(db)
        client: TestClient[Any, Any] = TestClient(TestServer(root))
        await client.start_server()
        try:
            yield client
        finally:
            await client.close()
    finally:
        await engine.dispose()


async def _get(client: TestClient[Any, Any], username: str, path: str) -> tuple[int, str]:
    base = str(client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        status, _ = await sign_in(http, base, username)
        assert status == 303
        async with http.get(f"{base}/ui{path}", allow_redirects=False) as answer:
            return answer.status, await answer.text()


@pytest.mark.asyncio
async def test_both_agents_of_a_transferred_call_are_counted_with_their_own_time(
    client: TestClient[Any, Any],
) -> None:
    for path in ("/wallboard", "/wallboard/agents-today"):
        status, page = await _get(client, "sam", path)
        assert status == 200, path
        assert _ROW.findall(page) == [
            ("1001", "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;Li", "1", "1:35", "1:35"),
            ("1002", "Wang Wei", "1", "0:40", "0:40"),
        ], path
        assert "<img src=x" not in page


@pytest.mark.asyncio
async def test_agents_do_not_see_the_table(client: TestClient[Any, Any]) -> None:
    status, _ = await _get(client, "wangwei", "/wallboard/agents-today")
    assert status == 403
