"""In real Chromium, no Asterisk needed: a supervisor opens the staffing page on four weeks of
the CRM's calls, asks for Monday's plan of support, then "3 agents fewer from 14:00": the
charts gain the what-if beside the plan (its service level falls from 14:00, not before) and
the table marks the intervals that miss the target. The page runs no script (CSP). The
wallboard it is linked from shows the plan of this interval beside the agents signed in."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.database import make_engine
from cti_server.bus import MemoryBus
from cti_server.config import UiSettings
from cti_server.staffing.service import Planner
from cti_server.tracker.tracker import Tracker
from tests.browser.conftest import Tab, new_tab, served, sign_in
from tests.support.live_model import member
from tests.support.queue_history import seed_queue_history
from tests.support.ui import add_users
from tests.support.ui_server import mounted, ui_deps

pytestmark = [pytest.mark.browser]

SCREENSHOTS = os.environ.get("UI_SCREENSHOTS_DIR", "")  # docs/ when the screenshots are taken
ZONE = ZoneInfo("Asia/Shanghai")
MONDAY = date(2026, 12, 14)


@contextlib.asynccontextmanager
async def _wallboard_with_plans(
    template: Path, folder: Path, browser: Browser, *, history: bool
) -> AsyncIterator[Tab]:
    """Sam, a supervisor, on the wallboard of a server that plans from the CRM's calls (four
    weeks of support's calls before Monday with ``history``, none without)."""
    path = folder / "crm.db"
    shutil.copyfile(template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    if history:
        await seed_queue_history(db, MONDAY, ZONE)
    await add_users(db, ("sam", "supervisor", "7001"))
    bus = MemoryBus()
    planner = Planner(engine, zone=ZONE, clock=lambda: datetime(2026, 12, 14, 1, tzinfo=UTC))
    tracker = Tracker(bus.publish)
    member(tracker, "pbx1", "support", "agent-8101", "PJSIP/8101")
    # the board's days are the planner's (else its today may be a day the plan has no row of)
    deps = ui_deps(db, bus, tracker, settings=UiSettings(time_zone=ZONE.key))
    app = mounted(dataclasses.replace(deps, staffing=planner))
    try:
        async with served(app) as base:
            tab = await new_tab(browser)
            await sign_in(tab, base, "sam")
            await tab.page.goto(f"{base}/ui/wallboard")
            yield tab
            await tab.page.context.close()
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_without_calls_to_learn_from_the_board_says_there_is_no_forecast_yet(
    sqlite_crm_template: Path, tmp_path: Path, browser: Browser
) -> None:
    async with _wallboard_with_plans(sqlite_crm_template, tmp_path, browser, history=False) as tab:
        await expect(tab.page.locator("#staffing-live tbody")).to_have_text(
            "No forecast yet: it is learnt from the last four weeks of the CRM's calls."
        )
        assert tab.errors == []


@pytest.mark.asyncio
async def test_a_supervisor_asks_what_three_agents_fewer_from_two_do(
    sqlite_crm_template: Path, tmp_path: Path, browser: Browser
) -> None:
    async with _wallboard_with_plans(sqlite_crm_template, tmp_path, browser, history=True) as tab:
        page = tab.page
        # the board's look ahead: support's plan for this interval (today's, by the clock)
        now = page.locator("#staffing-live tr[data-queue=support][data-when=now] td")
        await expect(now).to_have_count(6)
        await expect(now.last).to_have_text("1")  # agent-8101, signed in and available
        await page.click("a[href='/ui/staffing']")
        await expect(page.locator("#plan-summary")).to_contain_text("Queue all")

        await page.fill("#f-queue", "support")
        await page.fill("#f-day", str(MONDAY))
        await page.click("#plan-submit")
        await expect(page.locator("#plan-summary")).to_contain_text(
            "Queue support, 2026-12-14 (Asia/Shanghai), target 80% in 20 s"
        )
        level = page.locator("#chart-service-level")
        await expect(level.locator("[data-series=service-level] polyline")).to_have_count(1)
        await expect(level.locator("[data-series=service-level-what-if]")).to_have_count(0)
        await expect(page.locator("#chart-offered [data-series=offered] rect")).not_to_have_count(0)
        await expect(page.locator("#chart-agents [data-series=erlang-a] polyline")).to_have_count(1)
        await expect(page.locator("#plan tr.missed")).to_have_count(0)

        await page.fill("#f-fewer", "3")
        await page.fill("#f-from", "14:00")
        await page.click("#plan-submit")
        await expect(page.locator("#what-if-summary")).to_contain_text(
            "What if 3 agents fewer from 14:00:"
        )
        assert "fewer=3" in page.url
        assert "from=14%3A00" in page.url
        await expect(page.locator("#f-fewer")).to_have_value("3")  # the question stays
        what_if = level.locator("[data-series=service-level-what-if] polyline")
        await expect(what_if).to_have_count(1)
        plan_points = _points(
            await level.locator("[data-series=service-level] polyline").get_attribute("points")
        )
        what_if_points = _points(await what_if.get_attribute("points"))
        assert len(plan_points) == len(what_if_points)
        two_pm = 14 * 2 * 640 / 48  # x where 14:00's interval begins
        before = [(p, w) for p, w in zip(plan_points, what_if_points, strict=True) if p[0] < two_pm]
        after = [(p, w) for p, w in zip(plan_points, what_if_points, strict=True) if p[0] > two_pm]
        assert before
        assert all(p == w for p, w in before)
        assert after
        assert all(w[1] > p[1] for p, w in after)
        await expect(
            page.locator("#chart-agents [data-series=agents-what-if] polyline")
        ).to_have_count(1)
        missed = page.locator("#plan tr.missed td:first-child")
        await expect(missed.first).to_have_text("14:00")
        assert tab.dialogs == []
        assert tab.errors == []
        if SCREENSHOTS:
            await page.screenshot(path=str(Path(SCREENSHOTS) / "staffing.png"), full_page=True)

        await page.fill("#f-target", "most calls quickly")
        await page.click("#plan-submit")
        await expect(page.locator("#problems")).to_contain_text("target: ")
        await expect(page.locator("#f-target")).to_have_attribute("aria-invalid", "true")

        # a plan that holds in nine half-hours of ten, not only on average
        agents = page.locator("#plan tbody tr td:nth-child(5)")
        await page.fill("#f-target", "80/20")
        await page.fill("#f-fewer", "")
        await page.click("#plan-submit")
        await expect(page.locator("#plan-summary")).to_contain_text("met on average")
        usual = [int(n) for n in await agents.all_inner_texts()]
        await page.fill("#f-confidence", "0.9")
        await page.click("#plan-submit")
        await expect(page.locator("#plan-summary")).to_contain_text(
            "Each interval staffed to meet the target with probability 90 %"
        )
        sure = [int(n) for n in await agents.all_inner_texts()]
        assert len(sure) == len(usual)
        assert all(s >= u for s, u in zip(sure, usual, strict=True))
        assert sum(sure) > sum(usual)
        await page.fill("#f-confidence", "1")
        await page.click("#plan-submit")
        await expect(page.locator("#problems")).to_contain_text("confidence: ")


def _points(attribute: str | None) -> list[tuple[float, float]]:
    assert attribute is not None
    return [(float(x), float(y)) for x, y in (p.split(",") for p in attribute.split())]
