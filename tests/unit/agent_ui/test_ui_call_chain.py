"""The customer page's timeline tells a handed-over call's chain (who, how long, how), names
from the CRM's users, every piece escaped."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from markupsafe import escape
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui.call_chain import chain_steps, duration
from crm_core.database import make_engine
from crm_core.models import InteractionParty
from tests.support.call_chain import SHOWN, seed_chained_call
from tests.support.ui import sign_in, ui_app

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
XSS = '"><img src=x onerror=alert(1)>'


def _party(party: str, how: str, seconds: float, **more: Any) -> InteractionParty:
    return InteractionParty(party=party, how=how, seconds=seconds, started_at=T0, **more)


def _text(parties: list[InteractionParty], names: dict[int, str] | None = None) -> list[str]:
    return [f"{s.hand_over} | {s.who} | {s.duration}" for s in chain_steps(parties, names or {})]


def test_each_hand_over_reads_as_what_happened_and_who_made_it() -> None:
    parties = [
        _party("PJSIP/1001", "answer", 5, extension="1001", agent_id=7, agent_name="sim-1001"),
        _party("PJSIP/1002", "pickup", 61.6, extension="1002", by_party="PJSIP/1002"),
        _party("PJSIP/1003", "forward", 3600, extension="1003", agent_name="billing-1"),
        _party("Local/900@rg-0001;1", "redirect", 9),  # nobody named, an AMI Redirect
        _party("PJSIP/1004", "blonde", 0, extension="1004", by_party="Local/x@y-1;2"),
        _party("PJSIP/1001", "park", 12, extension="1001", agent_id=7, by_party="PJSIP/1004"),
    ]
    assert _text(parties, {7: "Li Na"}) == [
        "answered by | Li Na (1001) | 0:05",
        "picked up | 1002 | 1:02",
        "forwarded | billing-1 (1003) | 1:00:00",
        "redirected | Local/900@rg-0001;1 | 0:09",
        "blonde transfer by Local/x@y-1;2 | 1004 | 0:00",
        "parked by 1004 | Li Na (1001) | 0:12",
    ]


def test_a_first_party_reached_without_an_answer_says_how() -> None:
    picked = [_party("PJSIP/1003", "pickup", 4, extension="1003", by_party="PJSIP/1003")]
    forwarded = [_party("PJSIP/1005", "forward", 4, extension="1005", by_party="PJSIP/1002")]
    assert _text(picked)[0] == "picked up by | 1003 | 0:04"
    assert _text(forwarded)[0] == "forwarded by 1002 to | 1005 | 0:04"


def test_durations_round_to_the_second() -> None:
    assert [duration(s) for s in (0, 0.4, 59.5, 130, 3599.6, 7322)] == [
        "0:00",
        "0:00",
        "1:00",
        "2:10",
        "1:00:00",
        "2:02:02",
    ]


@pytest_asyncio.fixture
async def db(sqlite_crm_template: Path, tmp_path: Path) -> AsyncIterator[Any]:
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


async def _page(db: async_sessionmaker[AsyncSession], customer_id: int) -> str:
    app, _, _ = ui_app(db)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        base = str(client.make_url("")).rstrip("/")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            status, _ = await sign_in(http, base, "sam")
            assert status == 303
            async with http.get(f"{base}/ui/customers/{customer_id}") as response:
                assert response.status == 200
                return await response.text()
    finally:
        await client.close()


def _shown(page: str, interaction_id: int) -> str | None:
    found = re.search(rf'<p class="chain" id="chain-{interaction_id}"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))) if found else None


@pytest.mark.asyncio
async def test_the_timeline_shows_the_chain_of_a_handed_over_call_only(db: Any) -> None:
    call = await seed_chained_call(db)
    page = await _page(db, call.customer_id)
    assert _shown(page, call.interaction_id) == SHOWN
    assert _shown(page, call.alone_id) is None  # one agent: the Agent column says it all


@pytest.mark.asyncio
async def test_a_hostile_name_in_the_chain_is_shown_as_text(db: Any) -> None:
    call = await seed_chained_call(db, names=("Li Na", XSS, "<script>alert(2)</script>"))
    page = await _page(db, call.customer_id)
    assert "<img src=x" not in page
    assert "<script>alert(2)" not in page
    assert str(escape(XSS)) in page  # as Jinja escapes it
    shown = _shown(page, call.interaction_id)
    assert shown is not None
    assert f"→ {XSS} (1002) 1:05" in shown
    assert "→ <script>alert(2)</script> (1003) 0:20" in shown
