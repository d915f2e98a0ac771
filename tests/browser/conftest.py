"""Real Chromium (Debian's package, never a downloaded one) beside `cti serve` and real Asterisk.

Playwright drives ``chromium`` from PATH through ``executable_path``; without it the browser
tests skip. The server runs in this process with the IVR on, its own database and journal, and
the agents' phones are simulated queue members that stay on the line until hung up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, async_playwright
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui.auth import STORE
from crm_core.customers import create_customer
from crm_core.schemas import CustomerIn
from cti_server.app import AMI, DATABASE, SCHEMA_READY, TRACKER, build_app
from cti_server.config import DatabaseSettings, IvrSettings, RecorderSettings, UiSettings
from cti_server.telephony import agent_actions
from tests.support.asterisk import AsteriskNode
from tests.support.ports import free_port
from tests.support.ui import PASSWORD, add_users
from tests.support.waiting import poll_until

VIEWPORT = {"width": 1366, "height": 768}
AGENT_PHONE = "Local/{extension}@cti-sim-agent-long/n"
SUPERVISOR_PHONE = "Local/{extension}@cti-sim-desk/n"
TRANSFER_CONTEXT = "cti-sim-desk"  # desks 7000-7009 that answer and stay on the line
USERS = (
    ("alice", "agent", "8101"),
    ("bob", "agent", "8102"),
    ("sam", "supervisor", "7001"),
    ("dee", "agent", "7002"),  # at the desk phone 7002 of TRANSFER_CONTEXT: a transfer's target
)


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return path


@pytest_asyncio.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox"] if os.geteuid() == 0 else []
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Tab:
    """A page of its own browser context, with every dialog and script error it raised."""

    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)


async def new_tab(browser: Browser) -> Tab:
    """A page in a browser context of its own, recording its dialogs and script errors."""
    context = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = await context.new_page()
    tab = Tab(page)
    page.on("dialog", tab.on_dialog)
    page.on("console", tab.on_console)
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    return tab


async def sign_in(tab: Tab, base: str, username: str) -> None:
    await tab.page.goto(f"{base}/ui/login")
    await tab.page.fill("#username", username)
    await tab.page.fill("#password", PASSWORD)
    await tab.page.click("#sign-in")
    await tab.page.wait_for_url(f"{base}/ui/*")


@asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    """``app`` on a free local port, for as long as the block runs; its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@dataclass
class UiServer:
    base: str
    app: web.Application
    db: async_sessionmaker[AsyncSession]
    ids: dict[str, int]
    node: AsteriskNode
    browser: Browser
    tabs: list[Tab] = field(default_factory=list)

    async def tab(self) -> Tab:
        tab = await new_tab(self.browser)
        self.tabs.append(tab)
        return tab

    @property
    def ui(self) -> web.Application:
        """The mounted ``/ui`` application (its session store, desks and hub)."""
        return next(sub for sub in self.app._subapps if STORE in sub)

    async def signed_in(self, username: str) -> Tab:
        tab = await self.tab()
        await sign_in(tab, self.base, username)
        return tab


@pytest_asyncio.fixture
async def ui_server(
    asterisk_node: AsteriskNode, tmp_path: Path, browser: Browser
) -> AsyncIterator[UiServer]:
    """`cti serve` (IVR on, agent phones simulated) with users alice, bob (agents) and sam."""
    settings = asterisk_node.settings.model_copy(
        update={
            "ivr": IvrSettings(inbound_flow="main", survey_flow=None),
            "recorder": RecorderSettings(spool_path=tmp_path / "spool.jsonl"),
            "database": DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'ui.db'}"),
            "ui": UiSettings(
                agent_interface=AGENT_PHONE,
                supervisor_phone=SUPERVISOR_PHONE,
                queues=("support",),
                transfer_context=TRANSFER_CONTEXT,
            ),
        }
    )
    app = build_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.http.port).start()
    try:
        await app[AMI].wait_connected(10)
        await poll_until(lambda: _ready(app), 30, what="CRM schema ready")
        db = async_sessionmaker(app[DATABASE], expire_on_commit=False)
        ids = await add_users(db, *USERS)
        yield UiServer(
            f"http://127.0.0.1:{settings.http.port}", app, db, ids, asterisk_node, browser
        )
    finally:
        for call in app[TRACKER].live_calls():  # nor our calls
            for leg in call.live_legs():
                with contextlib.suppress(agent_actions.AgentActionError):
                    await agent_actions.hangup(app[AMI], leg.channel)
        for _, _, extension in USERS:  # the shared Asterisk must not keep our members
            with contextlib.suppress(agent_actions.AgentActionError):
                await agent_actions.queue_logout(
                    app[AMI], "support", AGENT_PHONE.format(extension=extension)
                )
        await runner.cleanup()


async def _ready(app: web.Application) -> bool:
    return app[SCHEMA_READY].is_set()


async def add_customer(
    db: async_sessionmaker[AsyncSession], name: str, phone: str, **fields: object
) -> int:
    async with db() as session, session.begin():
        customer = await create_customer(
            session,
            CustomerIn.model_validate({"name": name, "phones": [{"number": phone}], **fields}),
            "CN",
        )
        return customer.id
