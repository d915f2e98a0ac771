"""In real Chromium, no Asterisk needed: a supervisor opens a customer whose call went through
three agents and reads on the timeline who had it, for how long, and how it was handed over."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.database import make_engine
from tests.browser.conftest import new_tab, served, sign_in
from tests.support.call_chain import SHOWN, seed_chained_call
from tests.support.ui import ui_app

pytestmark = [pytest.mark.browser]


@pytest.mark.asyncio
async def test_the_customer_timeline_shows_who_had_the_call_and_for_how_long(
    sqlite_crm_template: Path, tmp_path: Path, browser: Browser
) -> None:
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    call = await seed_chained_call(db)
    app, _, _ = ui_app(db)
    try:
        async with served(app) as base:
            tab = await new_tab(browser)
            page = tab.page
            await sign_in(tab, base, "sam")
            await page.goto(f"{base}/ui/customers/{call.customer_id}")

            chain = page.locator(f"#chain-{call.interaction_id}")
            await expect(chain).to_be_visible()
            await expect(chain).to_have_text(SHOWN)
            await expect(chain.locator(".party")).to_have_text(
                ["Li Na (1001)", "Wang Wei (1002)", "Zhao Min (1003)"]
            )
            # the chain sits under its call's row; the call Li Na handled alone has none
            row = page.locator(f'#timeline tr[data-interaction="{call.interaction_id}"]')
            await expect(
                row.locator("xpath=following-sibling::tr[1]//p[@class='chain']")
            ).to_have_id(f"chain-{call.interaction_id}")
            await expect(
                page.locator(f'#timeline tr[data-interaction="{call.alone_id}"]')
            ).to_be_visible()
            await expect(page.locator(f"#chain-{call.alone_id}")).to_have_count(0)
            await expect(page.locator("#timeline .chain")).to_have_count(1)
            assert tab.dialogs == []
            assert tab.errors == []
            await page.context.close()
    finally:
        await engine.dispose()
