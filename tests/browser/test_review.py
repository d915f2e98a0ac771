"""In real Chromium, no Asterisk needed: a service manager reviews a complaint case, plays the
call from the highlighted evidence, assigns it and resolves it with a root cause; a supervisor's
wallboard shows a live complaint alert as text."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.database import make_engine
from crm_core.models import ComplaintCase
from cti_server.bus import MemoryBus
from cti_server.events import ComplaintDetected
from cti_server.tracker.tracker import Tracker
from tests.browser.conftest import Tab, new_tab, sign_in
from tests.browser.review_seed import (
    CUE,
    EVIDENCE_START,
    LINKEDID,
    QUEUE_WAIT,
    XSS,
    SeededCase,
    review_app,
    seed_case,
    write_wav,
)
from tests.support.live_model import waiting_call
from tests.support.ports import free_port
from tests.support.ui import add_users
from tests.support.ui_server import wallboard_of

pytestmark = [pytest.mark.browser]

SCREENSHOTS = os.environ.get("UI_SCREENSHOTS_DIR", "")  # docs/ when scripts/screenshots runs
USERS = (("alice", "agent", "8101"), ("sam", "supervisor", "7001"), ("mia", "manager", None))


@dataclass
class ReviewServer:
    base: str
    app: web.Application
    bus: MemoryBus
    db: async_sessionmaker[AsyncSession]
    ids: dict[str, int]
    case: SeededCase
    browser: Browser

    async def signed_in(self, username: str) -> Tab:
        tab = await new_tab(self.browser)
        await sign_in(tab, self.base, username)
        return tab

    async def stored(self) -> ComplaintCase:
        async with self.db() as session:
            case = await session.get(ComplaintCase, self.case.case_id)
        assert case is not None
        return case


@pytest_asyncio.fixture
async def review_server(
    sqlite_crm_template: Path, tmp_path: Path, browser: Browser
) -> AsyncIterator[ReviewServer]:
    """The UI on a CRM holding one complaint case, its call's mix in a recordings folder."""
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    recordings = tmp_path / "monitor"
    recordings.mkdir()
    write_wav(recordings / f"cti-{LINKEDID}.wav")
    ids = await add_users(db, *USERS)
    case = await seed_case(db, agent_id=ids["alice"])
    app, bus = review_app(db, recordings)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield ReviewServer(f"http://127.0.0.1:{port}", app, bus, db, ids, case, browser)
    finally:
        await runner.cleanup()
        await engine.dispose()


@pytest.mark.asyncio
async def test_a_manager_plays_the_evidence_assigns_and_resolves_the_case(
    review_server: ReviewServer,
) -> None:
    server = review_server
    mia = await server.signed_in("mia")
    page = mia.page
    await page.click("text=Complaints")
    row = page.locator(f'#cases tr[data-case="{server.case.case_id}"]')
    await expect(row).to_contain_text(XSS)  # the hostile name, as text
    await row.locator("a").first.click()
    await page.wait_for_url(f"{server.base}/ui/complaints/{server.case.case_id}")
    await expect(page.locator("#customer")).to_contain_text(XSS)
    evidence = page.locator("mark.evidence")
    await expect(evidence).to_have_count(1)
    await expect(evidence).to_have_text(CUE)
    audio = f"audio-{server.case.interaction_id}"
    await page.wait_for_function(  # the player knows the recording's length: it can seek
        f"document.getElementById('{audio}').readyState >= 1", timeout=10_000
    )
    await evidence.click()
    moment = EVIDENCE_START + QUEUE_WAIT  # the recording holds the queue wait before the answer
    await page.wait_for_function(
        f"(() => {{ const t = document.getElementById('{audio}').currentTime;"
        f" return t >= {moment} - 0.05 && t < {moment} + 3; }})()",
        timeout=10_000,
    )

    await page.select_option("#owner-id", str(server.ids["alice"]))
    await page.click("#assign")
    await expect(page.locator("#case-status")).to_have_text("assigned")
    await expect(page.locator("#owner")).to_have_text("alice")
    await page.fill("#root-cause-input", "delivery partner lost the parcel")
    await page.click("#resolve")
    await expect(page.locator("#case-status")).to_have_text("resolved")
    await expect(page.locator("#root-cause")).to_have_text("delivery partner lost the parcel")
    if SCREENSHOTS:
        await page.screenshot(path=str(Path(SCREENSHOTS) / "complaint-case.png"), full_page=True)
        await page.goto(f"{server.base}/ui/complaints")
        await page.screenshot(path=str(Path(SCREENSHOTS) / "complaints.png"))

    stored = await server.stored()
    assert (stored.status, stored.owner_id) == ("resolved", server.ids["alice"])
    assert stored.root_cause == "delivery partner lost the parcel"
    await page.goto(f"{server.base}/ui/customers/{server.case.customer_id}")
    await expect(page.locator(f'li[data-case="{server.case.case_id}"]')).to_contain_text("resolved")
    assert mia.dialogs == []
    assert mia.errors == []


@pytest.mark.asyncio
async def test_a_live_complaint_shows_on_the_wallboard_not_on_the_desk(
    review_server: ReviewServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shown as it comes, while the board's view waits for its push (held up here in the
    staffing plan), and once only when the view brings it too."""
    server = review_server
    sam = await server.signed_in("sam")
    alice = await server.signed_in("alice")
    await expect(sam.page.locator("#board-status")).to_have_text("live")
    await expect(sam.page.locator("#alerts")).to_have_text("none")  # the first view is drawn
    await alice.page.wait_for_url(f"{server.base}/ui/desktop")
    planning, planned = asyncio.Event(), asyncio.Event()

    async def plan_under_way() -> None:
        planning.set()
        await planned.wait()

    wallboard = wallboard_of(server.app)
    monkeypatch.setattr(wallboard, "_plan_ahead", plan_under_way)
    assert isinstance(wallboard.deps.live, Tracker)
    waiting_call(wallboard.deps.live, "pbx1", "1700000000.43", "support")
    async with asyncio.timeout(10):  # the waiting call is being pushed: the push plans first
        await planning.wait()
    server.bus.publish(
        ComplaintDetected(
            node="pbx1",
            linkedid="1700000000.99",
            probability=0.93,
            threshold=0.5,
            category="billing",
            severity="critical",
            language="en",
            evidence=[{"kind": "cue", "segment": 0, "text": f"charged twice {XSS}"}],
            during_call=True,
        )
    )
    alert = sam.page.locator('#alerts li[data-kind="complaint"]')
    await expect(alert).to_contain_text(f"charged twice {XSS}")
    await expect(alert).to_contain_text("critical")
    waiting = sam.page.locator('#calls tr[data-linkedid="1700000000.43"]')
    await expect(waiting).to_have_count(0)  # the view is not pushed yet
    planned.set()
    await expect(waiting).to_have_count(1)
    await expect(alert).to_have_count(1)  # the view has the alert too, in place of the one sent
    await expect(alert).to_contain_text(f"charged twice {XSS}")
    await expect(alice.page.locator("body")).not_to_contain_text("charged twice")
    assert sam.dialogs == alice.dialogs == []  # no script ran from the alert's text
    assert sam.errors == []
