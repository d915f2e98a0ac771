"""The browser phone's library comes from our own server, at the version the lock pins, and the
phone says so plainly when it cannot work: no library (bootstrap skipped), the microphone refused
(then it does not register, so no call is offered to an agent who cannot speak), a phone server
the page may not reach, or credentials refused. It registers with the HA1 form of the agent's
secret (the page never holds the password) and again by itself when the phone server drops it,
as Asterisk does when it restarts, without a page reload.

Real Chromium loads /ui/static/vendor/jssip.min.js and /ui/static/phone.js into a real page of a
running server (its Content-Security-Policy too). The phone server is a small SIP-over-WebSocket
registrar that checks the digest as Asterisk does (MD5, qop=auth): fast, and no Asterisk needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import WSMsgType, web
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from cti_server.app import _start, _stop
from cti_server.config import load_settings
from tests.browser.conftest import served
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


# -- registering, with a registrar that checks the digest ----------------------------------

REALM, USER, SECRET = "asterisk", "8101", "correct horse battery staple"
NONCE = "5f2b1c"


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


HA1 = md5(f"{USER}:{REALM}:{SECRET}")

REGISTER = """async ([server, ha1]) => {
  window.seen = [];
  window.phone = ctiPhone.create(
    {server, uri: "sip:8101@127.0.0.1", user: "8101", ha1, realm: "asterisk"},
    {state: (state, reason) => seen.push(["state", state, reason])});
  await phone.start();
}"""


@dataclass
class Registrar:
    """Answers REGISTER over WebSocket as Asterisk does: a challenge, 200 for the right digest,
    the challenge again for a wrong one."""

    registered: list[str] = field(default_factory=list)  # the users it accepted, in order
    sockets: list[web.WebSocketResponse] = field(default_factory=list)

    async def view(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(protocols=("sip",))
        await socket.prepare(request)
        self.sockets.append(socket)
        async for message in socket:
            if message.type == WSMsgType.TEXT and message.data.startswith("REGISTER "):
                await socket.send_str(self.answer(message.data))
        return socket

    def answer(self, request: str) -> str:
        head = request.split("\r\n\r\n", 1)[0].split("\r\n")
        headers = [line for line in head[1:] if line]
        value = {h.split(":", 1)[0].lower(): h.split(":", 1)[1].strip() for h in headers}
        echoed = [h for h in headers if h.split(":", 1)[0] in ("Via", "From", "Call-ID", "CSeq")]
        to = [f"To: {value['to']};tag=registrar"]
        challenge = f'WWW-Authenticate: Digest realm="{REALM}", nonce="{NONCE}", qop="auth"'
        authorization = value.get("authorization")
        if authorization is None:
            return _response("401 Unauthorized", [*echoed, *to, challenge])
        digest = dict(re.findall(r'(\w+)="?([^",]*)"?', authorization))
        ha2 = md5(f"REGISTER:{digest['uri']}")
        parts = [digest[k] for k in ("nonce", "nc", "cnonce", "qop")]
        expected = md5(":".join([md5(f"{digest['username']}:{REALM}:{SECRET}"), *parts, ha2]))
        if digest["username"] != USER or digest["response"] != expected:
            return _response("401 Unauthorized", [*echoed, *to, challenge])
        self.registered.append(digest["username"])
        return _response("200 OK", [*echoed, *to, f"Contact: {value['contact']};expires=600"])

    async def drop_everyone(self) -> None:
        """What a restart of the phone server does to its clients."""
        for socket in self.sockets:
            await socket.close()
        self.sockets.clear()


async def _blank(_: web.Request) -> web.Response:
    return web.Response(text="<!doctype html>", content_type="text/html")


def _response(status: str, headers: list[str]) -> str:
    return "\r\n".join([f"SIP/2.0 {status}", *headers, "Content-Length: 0", "", ""])


@pytest_asyncio.fixture
async def phone_server() -> AsyncIterator[tuple[str, Registrar]]:
    """The phone's scripts and a page, as /ui serves them, and the registrar at /ws."""
    registrar = Registrar()
    app = web.Application()
    app.router.add_get("/ws", registrar.view)
    app.router.add_get("/", _blank)
    app.router.add_static("/ui/static", UI / "static")
    async with served(app) as base:
        yield base, registrar


async def phone_page(browser: Browser, base: str, ha1: str) -> Page:
    page = await (await allowed_context(browser, base)).new_page()
    await page.goto(f"{base}/")
    await page.add_script_tag(url="/ui/static/vendor/jssip.min.js")
    await page.add_script_tag(url="/ui/static/phone.js")
    await page.evaluate(REGISTER, [f"{base.replace('http', 'ws')}/ws", ha1])
    return page


async def states(page: Page) -> list[Any]:
    seen: list[Any] = await page.evaluate("seen.map(([, state]) => state)")
    return seen


@pytest.mark.asyncio
async def test_the_phone_registers_with_the_ha1_and_again_after_the_server_dropped_it(
    phone_server: tuple[str, Registrar],
    media_browser: Browser,
) -> None:
    needs_bundle()
    base, registrar = phone_server
    page = await phone_page(media_browser, base, HA1)
    assert await wait_for_state(page, "registered") == ["state", "registered", ""]
    assert registrar.registered == [USER]

    await registrar.drop_everyone()
    await page.wait_for_function(
        "() => seen.filter(([, s]) => s === 'registered').length === 2", timeout=5000
    )
    assert await states(page) == [
        "registering",
        "registered",
        "failed",
        "registering",
        "registered",
    ]
    assert registrar.registered == [USER, USER]
    await page.evaluate("phone.stop()")


@pytest.mark.asyncio
async def test_refused_credentials_are_said(
    phone_server: tuple[str, Registrar],
    media_browser: Browser,
) -> None:
    needs_bundle()
    base, registrar = phone_server
    page = await phone_page(media_browser, base, md5(f"{USER}:{REALM}:a guess"))
    failed = await wait_for_state(page, "failed")
    assert failed[2] == "The phone server refused this agent's credentials (401 Unauthorized)."
    assert registrar.registered == []
