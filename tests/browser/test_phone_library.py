"""The browser phone's library comes from our own server, at the version the lock pins, and the
phone says so plainly when it cannot work: no library (bootstrap skipped), or the microphone
refused, in which case it does not register, so no call is offered to an agent who cannot speak.

Real Chromium loads /ui/static/vendor/jssip.min.js and /ui/static/phone.js into a real page of a
running server (its Content-Security-Policy too); no Asterisk is needed.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from cti_server.app import _start, _stop
from cti_server.config import load_settings
from tests.support.ports import free_port

pytestmark = [pytest.mark.browser]

UI = Path(__file__).resolve().parents[2] / "agent_ui"
BUNDLE = UI / "static" / "vendor" / "jssip.min.js"
PINNED = json.loads((UI / "package.json").read_text(encoding="utf-8"))["dependencies"]["jssip"]

START = """async (server) => {
  window.seen = [];
  window.phone = ctiPhone.create(
    {server, uri: "sip:8101@127.0.0.1", user: "8101", ha1: "0".repeat(32), realm: "asterisk"},
    {state: (state, reason) => seen.push(["state", state, reason]),
     microphone: (ok, problem, message) => seen.push(["microphone", ok, problem, message])});
  await phone.start();
  return seen;
}"""


@pytest_asyncio.fixture
async def base(tmp_path: Path) -> AsyncIterator[str]:
    """The whole server as `cti serve` starts it (Asterisk down): its /ui pages and static files."""
    settings = load_settings(
        None,
        ami={"secret": "x", "port": free_port()},
        agi={"port": free_port()},
        http={"port": free_port()},
        speech={"port": free_port()},
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}"},
        recorder={"spool_path": str(tmp_path / "spool.jsonl")},
    )
    runner = await _start(settings)
    try:
        yield f"http://127.0.0.1:{settings.http.port}"
    finally:
        await _stop(runner, settings.shutdown_timeout)


@pytest_asyncio.fixture
async def media_browser(chromium: str) -> AsyncIterator[Browser]:
    """Chromium with a fake microphone but no fake consent: a page is refused it unless its
    context was granted the permission."""
    args = ["--use-fake-device-for-media-stream"]
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium, args=[*args, "--no-sandbox"] if os.geteuid() == 0 else args
        )
        try:
            yield launched
        finally:
            await launched.close()


def needs_bundle() -> None:
    if not BUNDLE.is_file():
        pytest.skip(f"{BUNDLE.relative_to(UI.parent)} is not built: run scripts/bootstrap")


async def desk_page(context: BrowserContext, base: str, *, library: bool = True) -> Page:
    """A page of the server (the sign-in page: no session needed) with the phone's scripts
    loaded from the server, as the desk loads them."""
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{base}/ui/login")
    if library:
        await page.add_script_tag(url="/ui/static/vendor/jssip.min.js")
    await page.add_script_tag(url="/ui/static/phone.js")
    assert errors == []
    return page


async def allowed_context(browser: Browser, base: str) -> BrowserContext:
    context = await browser.new_context()
    await context.grant_permissions(["microphone"], origin=base)
    return context


async def wait_for_state(page: Page, state: str) -> list[Any]:
    """The first report of ``state`` by the page's phone, waited for up to 5 s."""
    await page.wait_for_function(
        "(state) => seen.some(([kind, s]) => kind === 'state' && s === state)",
        arg=state,
        timeout=5000,
    )
    found: list[Any] = await page.evaluate(
        "(state) => seen.find(([kind, s]) => kind === 'state' && s === state)", state
    )
    return found


@pytest.mark.asyncio
async def test_the_served_library_is_the_pinned_jssip(base: str, media_browser: Browser) -> None:
    needs_bundle()
    page = await desk_page(await media_browser.new_context(), base)
    assert await page.evaluate("JsSIP.version") == PINNED
    assert await page.evaluate("[ctiPhone.available(), ctiPhone.version()]") == [True, PINNED]
    assert await page.evaluate("typeof JsSIP.UA + typeof JsSIP.WebSocketInterface") == (
        "functionfunction"
    )


@pytest.mark.asyncio
async def test_a_refused_microphone_is_said_and_the_phone_stays_unregistered(
    base: str, media_browser: Browser
) -> None:
    needs_bundle()
    refused = await desk_page(await media_browser.new_context(), base)
    seen: list[list[Any]] = await refused.evaluate(START, f"ws://127.0.0.1:{free_port()}/ws")
    assert seen[0][:3] == ["microphone", False, "refused"]
    assert seen[0][3].startswith("Microphone refused")
    assert seen[1:] == [
        ["state", "unregistered", "No working microphone: no calls until it works."]
    ]

    # the same page with the microphone allowed goes on to register, and retries while nothing
    # answers (a same-origin URL: the page's policy lets it connect there)
    allowed = await desk_page(await allowed_context(media_browser, base), base)
    seen = await allowed.evaluate(START, f"{base.replace('http', 'ws')}/ui/no-phone-server-here")
    assert seen[:2] == [["microphone", True, "", ""], ["state", "registering", ""]]
    failed = await wait_for_state(allowed, "failed")
    assert failed == ["state", "failed", "No connection to the phone server: retrying."]
    await allowed.evaluate("phone.stop()")


@pytest.mark.asyncio
async def test_a_phone_server_the_page_may_not_reach_is_named(
    base: str, media_browser: Browser
) -> None:
    """The desk's Content-Security-Policy must list the phone server (connect-src); a server it
    does not list is said, not waited on in silence."""
    needs_bundle()
    page = await desk_page(await allowed_context(media_browser, base), base)
    server = f"wss://127.0.0.1:{free_port()}/ws"
    await page.evaluate(START, server)
    failed = await wait_for_state(page, "failed")
    assert failed[2].startswith(f"This page may not connect to the phone server {server}")


@pytest.mark.asyncio
async def test_without_the_bundle_the_phone_says_it_is_unavailable(
    base: str, media_browser: Browser
) -> None:
    """Someone skipped scripts/bootstrap: the server still serves the desk, the phone says why."""
    page = await desk_page(await media_browser.new_context(), base, library=False)
    seen = await page.evaluate(START, "wss://127.0.0.1:1/ws")
    assert seen == [
        [
            "state",
            "unavailable",
            "The browser phone is not installed on this server (scripts/bootstrap bundles it).",
        ]
    ]
    if not BUNDLE.is_file():
        response = await page.request.get(f"{base}/ui/static/vendor/jssip.min.js")
        assert response.status == 404
