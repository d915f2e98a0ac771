"""``/ui/staffing`` without a browser: a bad field is a 422 that names it and keeps what was
typed (escaped), a server without plans says so, and what was typed never becomes markup."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.database import make_engine
from cti_server.bus import MemoryBus
from cti_server.staffing.service import Planner
from cti_server.tracker.tracker import Tracker
from tests.support.queue_history import seed_queue_history
from tests.support.ui import add_users, sign_in
from tests.support.ui_server import mounted, ui_deps

ZONE = ZoneInfo("Asia/Shanghai")
MONDAY = date(2026, 12, 14)
XSS = '"><script>alert(1)</script>'


@pytest_asyncio.fixture(params=[True, False], ids=["plans", "no-plans"])
async def page(
    request: pytest.FixtureRequest, sqlite_crm_template: Path, tmp_path: Path
) -> AsyncIterator[tuple[aiohttp.ClientSession, str, bool]]:
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    await seed_queue_history(db, MONDAY, ZONE, weeks=1)
    await add_users(db, ("sam", "supervisor", "7001"))
    bus = MemoryBus()
    planner = Planner(engine, zone=ZONE, clock=lambda: datetime(2026, 12, 14, 1, tzinfo=UTC))
    deps = ui_deps(db, bus, Tracker(bus.publish))
    if request.param:
        deps = dataclasses.replace(deps, staffing=planner)
    client: TestClient[Any, Any] = TestClient(TestServer(mounted(deps)))
    await client.start_server()
    base = str(client.make_url("")).rstrip("/")
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        assert (await sign_in(http, base, "sam"))[0] == 303
        yield http, base, request.param
    finally:
        await http.close()
        await client.close()
        await engine.dispose()


@pytest.mark.asyncio
async def test_bad_fields_are_named_and_what_was_typed_stays_text(
    page: tuple[aiohttp.ClientSession, str, bool],
) -> None:
    http, base, offered = page
    query = {"queue": XSS, "target": "most", "fewer": "2", "from": "14:00", "day": str(MONDAY)}
    async with http.get(f"{base}/ui/staffing", params=query) as response:
        html = await response.text()
    assert "<script>alert(1)" not in html
    if not offered:
        assert response.status == 200
        assert "This server does not offer the staffing plan." in html
        return
    assert response.status == 422
    assert "<strong>queue</strong>" in html
    assert "<strong>target</strong>: expected 80/20" in html
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    assert 'id="f-fewer" type="number" value="2"' in html
    assert 'id="plan"' not in html  # no plan without a valid question
    async with http.get(
        f"{base}/ui/staffing", params={**query, "queue": "sales", "target": "80/20"}
    ) as response:
        html = await response.text()
    assert response.status == 200
    assert "What if 2 agents fewer from 14:00" in html
    assert '<option value="support">' in html  # the queues with history, offered to type


@pytest.mark.asyncio
async def test_a_confidence_is_asked_in_the_form_and_refused_outside_zero_to_one(
    page: tuple[aiohttp.ClientSession, str, bool],
) -> None:
    http, base, offered = page
    if not offered:
        return
    query = {"queue": "sales", "day": str(MONDAY)}
    async with http.get(f"{base}/ui/staffing", params=query) as response:
        usual = await response.text()
    async with http.get(f"{base}/ui/staffing", params={**query, "confidence": "0.9"}) as response:
        sure = await response.text()
    async with http.get(f"{base}/ui/staffing", params={**query, "confidence": "90"}) as response:
        refused = await response.text()

    assert "met on average, not in every interval" in usual
    assert response.status == 422
    assert "meet the target with probability 90 %" in sure
    assert "<th>Chance met</th>" in sure
    assert "Chance met" not in usual
    assert 'id="f-confidence" type="text" value="0.9"' in sure
    assert "<strong>confidence</strong>: Input should be less than 1" in refused
    assert (
        'id="f-confidence" type="text" value="90" placeholder="on average" aria-invalid="true"'
        in refused
    )
