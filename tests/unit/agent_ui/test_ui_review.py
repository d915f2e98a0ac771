"""The service manager's review without a browser: who may open it, its filters and charts, the
workflow's forms (CSRF, what they store), the recording route's refusals, hostile transcripts."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.database import make_engine
from crm_core.models import ComplaintCase
from cti_server.bus import MemoryBus
from tests.browser.review_seed import (
    EVIDENCE_START,
    LINKEDID,
    QUEUE_WAIT,
    SeededCase,
    review_app,
    seed_case,
    write_wav,
)
from tests.support.ui import add_users, csrf_of, sign_in


@dataclass
class Review:
    client: TestClient[Any, Any]
    bus: MemoryBus
    db: async_sessionmaker[AsyncSession]
    ids: dict[str, int]
    case: SeededCase
    recordings: Path

    @property
    def base(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def session_for(self, username: str) -> aiohttp.ClientSession:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        status, _ = await sign_in(http, self.base, username)
        assert status == 303
        return http

    async def stored(self, case_id: int | None = None) -> ComplaintCase:
        async with self.db() as session:
            case = await session.get(ComplaintCase, case_id or self.case.case_id)
        assert case is not None
        return case


@pytest_asyncio.fixture
async def review(sqlite_crm_template: Path, tmp_path: Path) -> AsyncIterator[Review]:
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    recordings = tmp_path / "monitor"
    recordings.mkdir()
    write_wav(recordings / f"cti-{LINKEDID}.wav", seconds=2)
    try:
        ids = await add_users(
            db,
            ("alice", "agent", "8101"),
            ("bob", "agent", "8102"),
            ("sam", "supervisor", "7001"),
            ("mia", "manager", None),
        )
        case = await seed_case(db, agent_id=ids["alice"])
        app, bus = review_app(db, recordings)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        try:
            yield Review(client, bus, db, ids, case, recordings)
        finally:
            await client.close()
    finally:
        await engine.dispose()


def _paths(case: SeededCase) -> list[str]:
    return [
        "/ui/complaints",
        f"/ui/complaints/{case.case_id}",
        "/ui/complaints/by-category.svg",
        "/ui/complaints/by-week.svg",
        f"/ui/complaints/recordings/{LINKEDID}",
    ]


@pytest.mark.asyncio
async def test_only_managers_and_above_open_the_review(review: Review) -> None:
    for username in ("alice", "sam"):
        http = await review.session_for(username)
        try:
            for path in _paths(review.case):
                async with http.get(review.base + path) as refused:
                    assert refused.status == 403, (username, path)
            async with http.get(review.base + "/ui/desktop") as page:
                token = csrf_of(await page.text())
            async with http.post(
                f"{review.base}/ui/complaints/{review.case.case_id}/assign",
                data={"csrf": token, "owner_id": str(review.ids[username])},
            ) as refused:
                assert refused.status == 403, username
        finally:
            await http.close()
    assert (await review.stored()).status == "open"
    manager = await review.session_for("mia")
    try:
        for path in _paths(review.case):
            async with manager.get(review.base + path) as allowed:
                assert allowed.status == 200, path
    finally:
        await manager.close()


@pytest.mark.asyncio
async def test_the_list_filters_by_severity_category_agent_status_and_dates(
    review: Review,
) -> None:
    other = await seed_case(
        review.db,
        agent_id=review.ids["bob"],
        linkedid="1700000000.8",
        category="billing",
        severity="low",
        name="Second Customer",
        phone="+8613900000088",
    )
    async with review.db() as session, session.begin():
        await session.execute(
            update(ComplaintCase)
            .where(ComplaintCase.id == other.case_id)
            .values(opened_at=datetime(2026, 1, 14, 10, 0, tzinfo=UTC), status="closed")
        )
    first, second = f'data-case="{review.case.case_id}"', f'data-case="{other.case_id}"'
    manager = await review.session_for("mia")

    async def listed(**query: str) -> tuple[bool, bool]:
        async with manager.get(review.base + "/ui/complaints", params=query) as page:
            assert page.status == 200, query
            html = await page.text()
        return first in html, second in html

    try:
        assert await listed() == (True, True)
        assert await listed(severity="high") == (True, False)
        assert await listed(severity="low") == (False, True)
        assert await listed(category="billing") == (False, True)
        assert await listed(agent=str(review.ids["alice"])) == (True, False)
        assert await listed(agent=str(review.ids["bob"])) == (False, True)
        assert await listed(status="closed") == (False, True)
        assert await listed(status="open") == (True, False)
        assert await listed(**{"from": "2026-01-14", "to": "2026-01-14"}) == (False, True)
        assert await listed(**{"from": "2026-01-15"}) == (True, False)
        for bad in ({"severity": "urgent"}, {"agent": "1 OR 1=1"}, {"from": "yesterday"}):
            async with manager.get(review.base + "/ui/complaints", params=bad) as refused:
                assert refused.status == 400, bad
        async with manager.get(
            review.base + "/ui/complaints/by-category.svg", params={"status": "closed"}
        ) as svg:
            assert svg.content_type == "image/svg+xml"
            chart = await svg.text()
        assert "billing: 1" in chart
        assert "delivery: 1" not in chart
        async with manager.get(review.base + "/ui/complaints/by-week.svg") as svg:
            weekly = await svg.text()
        # the week the seeded case was opened in (not "an hour ago": that is last week in the
        # first hour of a Monday)
        opened = (await review.stored()).opened_at
        monday = opened - timedelta(days=opened.weekday())
        assert f"{monday:%m-%d}: 1" in weekly
    finally:
        await manager.close()


@pytest.mark.asyncio
async def test_a_hostile_transcript_is_escaped_and_the_evidence_highlighted(
    review: Review,
) -> None:
    manager = await review.session_for("mia")
    try:
        async with manager.get(f"{review.base}/ui/complaints/{review.case.case_id}") as page:
            html = await page.text()
    finally:
        await manager.close()
    assert "<script>alert(2)" not in html
    assert "<svg/onload" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;svg/onload=alert(1)&gt;" in html  # the customer's name and the words
    # the mix starts as the caller joins the queue: the evidence plays after the wait
    assert f'data-start="{EVIDENCE_START + QUEUE_WAIT:.2f}"' in html
    assert ">third time</mark>" in html
    assert f'src="/ui/complaints/recordings/{LINKEDID}"' in html
    assert "repeat_call_same_topic_7d" in html  # a call fact, listed apart


@pytest.mark.asyncio
async def test_the_recording_route_refuses_anything_but_a_case_calls_linkedid(
    review: Review,
) -> None:
    (review.recordings.parent / "secret.wav").write_bytes(b"RIFF secret")
    write_wav(review.recordings / "cti-1700000000.9.wav", seconds=1)  # a call of no case
    manager = await review.session_for("mia")
    try:
        for path in (
            "..%2Fsecret",
            "..%2F..%2F..%2Fetc%2Fpasswd",
            "%2e%2e%2fsecret",
            "1700000000.7%2F..%2F..%2Fsecret",
            "..",
            "1700000000.7.wav",
            "1700000000.7%00",
            "x" * 300,
        ):
            async with manager.get(
                f"{review.base}/ui/complaints/recordings/{path}", allow_redirects=False
            ) as refused:
                assert refused.status in (400, 404), path
                assert b"secret" not in await refused.read()
        async with manager.get(
            f"{review.base}/ui/complaints/recordings/1700000000.9"
        ) as not_a_case:
            assert not_a_case.status == 404
        async with manager.get(
            f"{review.base}/ui/complaints/recordings/{LINKEDID}",
            headers={"Range": "bytes=44-99"},
        ) as ranged:
            assert ranged.status == 206  # the player seeks by ranges
            assert ranged.headers["Content-Type"] == "audio/wav"
            assert len(await ranged.read()) == 56
    finally:
        await manager.close()


@pytest.mark.asyncio
async def test_the_workflow_stores_owner_root_cause_and_status_behind_csrf(
    review: Review,
) -> None:
    manager = await review.session_for("mia")
    url = f"{review.base}/ui/complaints/{review.case.case_id}"
    owner = str(review.ids["alice"])
    try:
        async with manager.post(url + "/assign", data={"owner_id": owner}) as forged:
            assert forged.status == 403
        async with manager.post(
            url + "/assign", data={"owner_id": owner, "csrf": "forged"}
        ) as forged:
            assert forged.status == 403
        assert (await review.stored()).status == "open"
        async with manager.get(url) as page:
            token = csrf_of(await page.text())
        async with manager.post(
            url + "/assign", data={"owner_id": owner, "csrf": token}, allow_redirects=False
        ) as assigned:
            assert assigned.status == 303
        stored = await review.stored()
        assert (stored.status, stored.owner_id) == ("assigned", review.ids["alice"])
        async with manager.post(url + "/close", data={"csrf": token}) as early:
            assert early.status == 409  # assigned cannot be closed before it is resolved
        async with manager.post(url + "/resolve", data={"root_cause": " ", "csrf": token}) as no:
            assert no.status == 422
        async with manager.post(
            url + "/resolve",
            data={"root_cause": "delivery partner <lost> the parcel", "csrf": token},
        ) as resolved:
            assert resolved.status == 200
            assert "delivery partner &lt;lost&gt; the parcel" in await resolved.text()
        stored = await review.stored()
        assert stored.status == "resolved"
        assert stored.root_cause == "delivery partner <lost> the parcel"
        assert stored.resolved_at is not None
        async with manager.post(url + "/close", data={"csrf": token}) as closed:
            assert closed.status == 200
        assert (await review.stored()).status == "closed"
        async with manager.get(f"{review.base}/ui/customers/{review.case.customer_id}") as crm:
            assert "closed" in await crm.text()
    finally:
        await manager.close()


@pytest.mark.asyncio
async def test_a_case_whose_evidence_has_no_cue_opens(review: Review) -> None:
    """The demo's seeded cases (and cases opened over the API) carry evidence of other shapes:
    the page lists each readably, escaped, instead of answering 500."""
    evidence = [
        {"interaction_id": 7, "source": "seed"},
        {"note": "<b>called about the refund</b>"},
    ]
    async with review.db() as session, session.begin():
        await session.execute(
            update(ComplaintCase)
            .where(ComplaintCase.id == review.case.case_id)
            .values(evidence=evidence)
        )
    manager = await review.session_for("mia")
    try:
        async with manager.get(f"{review.base}/ui/complaints/{review.case.case_id}") as page:
            assert page.status == 200
            html = await page.text()
    finally:
        await manager.close()
    assert "<li>interaction_id: 7; source: seed</li>" in html
    assert "note: &lt;b&gt;called about the refund&lt;/b&gt;" in html
