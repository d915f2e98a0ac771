"""In real Chromium, no Asterisk needed: a supervisor's wallboard shows "Agents today" after a
call handed over by blind transfer, both agents counted, each with their own talk time; and the
page's own refresh brings a call recorded while it is open, its poor audio said in words."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.database import make_engine
from crm_core.interactions import record_interaction
from crm_core.models import User
from crm_core.schemas import InteractionIn
from tests.browser.conftest import new_tab, served, sign_in
from tests.support.transferred_today import seed_transferred_today
from tests.support.ui import ui_app

pytestmark = [pytest.mark.browser]

LOSSY = {"seconds": 120.0, "final": True, "packet_loss_pct": 6.0, "packets_received": 5640}


@pytest.mark.asyncio
async def test_agents_today_counts_both_agents_of_a_transferred_call(
    sqlite_crm_template: Path, tmp_path: Path, browser: Browser
) -> None:
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    answered = await seed_transferred_today(db, first_name="<b>Li Na</b>")
    app, _, _ = ui_app(db)
    try:
        async with served(app) as base:
            tab = await new_tab(browser)
            page = tab.page
            await page.clock.install()  # the page's minute-long refresh, run on demand
            await sign_in(tab, base, "sam")
            await page.goto(f"{base}/ui/wallboard")

            rows = page.locator("#agents-today tbody tr")
            await expect(rows).to_have_count(2)
            await expect(rows.nth(0).locator("td")).to_have_text(
                ["<b>Li Na</b>", "1001", "1", "1:35", "1:35", ""]  # a name is text, never markup
            )
            await expect(rows.nth(1).locator("td")).to_have_text(
                ["Wang Wei", "1002", "1", "0:40", "0:40", ""]
            )
            await expect(page.locator("#agents-today b")).to_have_count(0)

            # Wang Wei takes another call, 2:00 long, with lossy audio; the page's refresh shows it
            async with db() as session, session.begin():
                started = max(answered, datetime.now(UTC) - timedelta(seconds=1))
                wang_wei = await session.scalar(select(User.id).where(User.username == "wangwei"))
                await record_interaction(
                    session,
                    InteractionIn.model_validate(
                        {
                            "node": "pbx1",
                            "linkedid": "1700000000.32",
                            "answered_at": started,
                            "quality": {"1002": LOSSY},
                            "parties": [
                                {
                                    "party": "PJSIP/1002",
                                    "extension": "1002",
                                    "agent_id": wang_wei,
                                    "how": "answer",
                                    "started_at": started,
                                    "seconds": 120.0,
                                }
                            ],
                        }
                    ),
                )
            await page.clock.run_for(61_000)
            await expect(rows.nth(0).locator("td")).to_have_text(
                ["Wang Wei", "1002", "2", "2:40", "1:20", "poor audio on 1 of 1 call: packet loss"]
            )
            await expect(rows).to_have_count(2)
            assert tab.dialogs == []
            assert tab.errors == []
            await page.context.close()
    finally:
        await engine.dispose()
