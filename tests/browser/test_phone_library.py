"""The browser phone's library comes from our own server, at the version the lock pins, and the
phone says so plainly when it cannot work: no library (bootstrap skipped), the microphone refused
(then it does not register, so no call is offered to an agent who cannot speak), a phone server
the page may not reach, or credentials refused. It registers with the HA1 form of the agent's
secret (the page never holds the password) and again by itself when the phone server drops it,
as Asterisk does when it restarts, without a page reload.

A call from a customer's page rings, is answered, heard both ways (the agent's microphone as it
is, no gain control), muted, held, sent DTMF in the media, measured, and hung up.

Real Chromium loads /ui/static/vendor/jssip.min.js and /ui/static/phone.js into a real page of a
running server (its Content-Security-Policy too). The phone server is a small SIP-over-WebSocket
registrar (tests/support/sip_registrar.py): fast, and no Asterisk needed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page

from agent_ui.app import SECURITY_HEADERS
from cti_server.app import _start, _stop
from cti_server.config import load_settings
from tests.browser.conftest import served
from tests.support.browser_media import launched, tone_flags, write_tone
from tests.support.ports import free_port
from tests.support.sip_registrar import REALM, SECRET, USER, Registrar, md5
from tests.support.waiting import poll_until

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
    async with launched(chromium) as browser:
        yield browser


def needs_bundle() -> None:
    if not BUNDLE.is_file():
        pytest.fail(f"{BUNDLE.relative_to(UI.parent)} is not built: run scripts/bootstrap")


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
async def test_a_missing_or_busy_microphone_is_said_in_words(
    base: str, media_browser: Browser
) -> None:
    """What the browser says when there is no microphone or another program holds it (here
    given by getUserMedia itself: the fake device always works)."""
    needs_bundle()
    page = await desk_page(await allowed_context(media_browser, base), base)
    said = {}
    for error in ("NotFoundError", "NotReadableError"):
        await page.evaluate(
            "(name) => { navigator.mediaDevices.getUserMedia = async () => {"
            " throw new DOMException('', name); }; }",
            error,
        )
        said[error] = (await page.evaluate(START, "wss://127.0.0.1:1/ws"))[0]
    assert said == {
        "NotFoundError": ["microphone", False, "missing", "No microphone found: plug one in."],
        "NotReadableError": [
            "microphone",
            False,
            "busy",
            "The microphone is in use by another program or does not work.",
        ],
    }


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

HA1 = md5(f"{USER}:{REALM}:{SECRET}")

REGISTER = """async ([server, ha1]) => {
  window.seen = [];
  window.rings = [];
  window.calls = [];
  window.phone = ctiPhone.create(
    {server, uri: "sip:8101@127.0.0.1", user: "8101", ha1, realm: "asterisk"},
    {state: (state, reason) => seen.push(["state", state, reason]),
     ringing: (call) => rings.push(call),
     call: (event, detail) => calls.push(event)});
  await phone.start();
}"""


async def _blank(_: web.Request) -> web.Response:
    """A page under the desk's own security headers: its policy lets the phone work."""
    return web.Response(text="<!doctype html>", content_type="text/html", headers=SECURITY_HEADERS)


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


# -- a call, from a customer's JsSIP page through the registrar --------------------------------

CUSTOMER = """async (server) => {
  window.heard = new Audio();
  window.customerEvents = [];
  const ua = new JsSIP.UA({sockets: [new JsSIP.WebSocketInterface(server)],
    uri: "sip:customer@127.0.0.1", register: false});
  await new Promise((connected) => { ua.on("connected", connected); ua.start(); });
  window.customer = ua.call("sip:8101@127.0.0.1",
    {mediaConstraints: {audio: true, video: false}, pcConfig: {iceServers: []}});
  customer.connection.addEventListener("track", (e) => {
    heard.srcObject = e.streams[0];
    heard.play();
  });
  for (const name of ["confirmed", "hold", "unhold", "ended"]) {
    customer.on(name, (e) => customerEvents.push(name + ":" + ((e && e.originator) || "")));
  }
}"""
TONE_LEVEL = 0.37  # the fake microphone's tone, of full scale
CUSTOMER_HEARS = """async () => {
  let level = null;
  (await customer.connection.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "audio") level = r.audioLevel ?? 0;
  });
  return level;
}"""


@pytest.fixture
def tone(tmp_path: Path) -> Path:
    """A steady 1 kHz tone, the fake microphone of both pages."""
    return write_tone(tmp_path / "tone.wav", TONE_LEVEL)


@pytest_asyncio.fixture
async def tone_browser(chromium: str, tone: Path) -> AsyncIterator[Browser]:
    """Media over 127.0.0.1 too, for a machine with no network but loopback."""
    async with launched(chromium, *tone_flags(tone)) as browser:
        yield browser


async def until(page: Page, script: str, within: float = 10.0) -> Any:
    """The first truthy value of ``script`` (a function, maybe async) in the page, polled."""

    async def check() -> Any:
        return await page.evaluate(script)

    return await poll_until(check, within, interval=0.1, what=script)


@pytest.mark.asyncio
async def test_a_call_rings_is_answered_heard_both_ways_held_muted_and_hung_up(
    phone_server: tuple[str, Registrar], tone_browser: Browser
) -> None:
    needs_bundle()
    base, registrar = phone_server
    agent = await phone_page(tone_browser, base, HA1)
    await wait_for_state(agent, "registered")
    customer = await (await allowed_context(tone_browser, base)).new_page()
    await customer.goto(f"{base}/")
    await customer.add_script_tag(url="/ui/static/vendor/jssip.min.js")
    await customer.evaluate(CUSTOMER, f"{base.replace('http', 'ws')}/ws")

    ring = await until(agent, "() => rings[0]")
    assert ring["from"] == "customer"
    assert ring["callId"]
    assert await agent.evaluate("phone.answer()") is True
    await until(agent, "() => calls.includes('connected')")
    # the agent hears the customer: the caller's audio plays at a level well above silence
    quality = await until(
        agent, "async () => { const s = await phone.stats(); return s.audioLevel > 0.05 && s; }"
    )
    assert quality["packetsReceived"] > 0
    assert quality["packetsLost"] == 0
    assert quality["jitter"] is not None
    assert quality["roundTripTime"] is not None
    # ... and the customer hears the agent's tone at the level it was played: the microphone is
    # captured as it is (gain control would raise it to full scale, noise suppression squash it)
    level = f"async () => Math.abs((await ({CUSTOMER_HEARS})()) - {TONE_LEVEL}) < 0.08"
    assert await until(customer, level)

    await agent.evaluate("phone.mute()")
    assert await until(customer, f"async () => (await ({CUSTOMER_HEARS})()) < 0.01")
    await agent.evaluate("phone.unmute()")
    assert await until(customer, level)

    assert await agent.evaluate("phone.hold()") is True
    await until(customer, "() => customerEvents.includes('hold:remote')")
    assert await agent.evaluate("phone.unhold()") is True
    await until(customer, "() => customerEvents.includes('unhold:remote')")
    # an Unhold clicked while the Hold's re-INVITE is still unanswered is kept and sent after it
    assert await agent.evaluate("[phone.hold(), phone.unhold()]") == [True, True]
    await until(customer, "() => customerEvents.filter(e => e === 'unhold:remote').length === 2")
    assert await agent.evaluate("phone.unhold()") is False  # not on hold: nothing to do

    assert await agent.evaluate("phone.dtmf('12#')") is True  # in the media: no SIP INFO
    refused = await agent.evaluate(
        "() => { try { phone.dtmf('1;2'); } catch (e) { return e.message; } }"
    )
    assert refused == "DTMF takes 0-9, A-D, * and # only: 1;2"

    await agent.evaluate("phone.hangup()")
    await until(customer, "() => customerEvents.includes('ended:remote')")
    await until(agent, "() => calls.includes('ended')")
    assert await agent.evaluate("calls") == [
        "answering",
        "connected",
        "muted",
        "unmuted",
        "held",
        "resumed",
        "held",
        "resumed",
        "ended",
    ]
    assert await agent.evaluate("async () => [phone.inCall, await phone.stats()]") == [False, None]
    assert [line for line in registrar.relayed if line.startswith("INFO ")] == []
    await agent.evaluate("phone.stop()")
