"""The phone in the agent's desk, in real Chromium against the real Asterisk.

An agent whose phone is the browser signs in; the desk registers over WSS with the HA1 of the
agent's own SIP password. A simulated customer's call rings in the page with its pop, is
answered there, and is heard both ways: what the browser sends (a 1 kHz tone as the microphone)
is recorded on the customer's side by Asterisk and found again with sox; what the customer says
plays in the page (its inbound RTP packets rise, its level is above silence). Mute, hold, DTMF
and hang-up are each seen by Asterisk, and the page reports the call's quality on the desk
socket. A refused microphone leaves the agent paused with the reason shown, unable to go
available; an Asterisk restart is survived without reloading the page.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from panoramisk.message import Message
from playwright.async_api import Browser, BrowserContext, Page, WebSocket, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.models import Interaction
from cti_server.app import AGENT_CONTROL, DATABASE
from cti_server.asterisk.local import AsteriskInstance
from cti_server.asterisk.sip_digests import rotate
from cti_server.config import DatabaseSettings, RecorderSettings, UiSettings
from cti_server.events import AgentState
from cti_server.sim.simulation import customer_connected, place_customer_call
from cti_server.telephony.ami_client import AmiClient
from tests.browser.conftest import VIEWPORT, Tab, sign_in
from tests.conftest import ami_observer
from tests.support.asterisk import AsteriskNode, node_settings, require_chroot
from tests.support.browser_media import TONE_HERTZ, launched, tone_flags, write_tone
from tests.support.cti_in_process import cti_served
from tests.support.waiting import EventLog, event_is, poll_until

pytestmark = [pytest.mark.browser, pytest.mark.asterisk, pytest.mark.slow]

AGENT = ("alice", "agent", "8101")
EXTENSION = AGENT[2]
TONE_LEVEL = 0.37
CUSTOMER = ("+8613900001111", "Wang Fang")
SCREENSHOTS = os.environ.get("UI_SCREENSHOTS_DIR", "")  # docs/ when scripts/screenshots runs


@pytest.fixture(scope="module")
def phone_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsteriskNode]:
    """An Asterisk of this module's own (a test restarts it) where 8101's phone is the browser,
    with a SIP password of its own."""
    name = f"k{os.getpid()}"
    workdir = tmp_path_factory.mktemp("desk-phone")
    agents = [{"extension": EXTENSION, "name": "Alice", "phone": "browser"}]
    instance = AsteriskInstance(
        require_chroot(), name, node_settings(name, workdir, {"agents": agents})
    )
    instance.digests_file.unlink(missing_ok=True)  # an earlier run's instance of this name
    rotate(instance.digests_file, EXTENSION)
    instance.up()
    try:
        yield AsteriskNode(settings=instance.settings, instance=instance)
    finally:
        instance.stop()


@dataclass
class Desk:
    """`cti serve` beside the node, Chromium with a tone as its microphone, and AMI observed."""

    base: str
    app: web.Application
    node: AsteriskNode
    browser: Browser
    ami: AmiClient
    events: EventLog
    contexts: list[BrowserContext] = field(default_factory=list)

    async def page(self, *, microphone: bool = True) -> Page:
        """The agent's desk, signed in, in a browser context of its own."""
        context = await self.browser.new_context(
            viewport=VIEWPORT,  # type: ignore[arg-type]
            ignore_https_errors=True,  # the local instance's self-signed WSS certificate
        )
        self.contexts.append(context)
        if microphone:
            await context.grant_permissions(["microphone"], origin=self.base)
        tab = Tab(await context.new_page())
        await sign_in(tab, self.base, AGENT[0])
        await tab.page.goto(f"{self.base}/ui/desktop")
        return tab.page

    def monitor_path(self, name: str) -> Path:
        spool = self.node.instance.dirs.spool
        return self.node.instance.chroot.host_path(f"{spool}/monitor") / name


@pytest_asyncio.fixture
async def desk(phone_node: AsteriskNode, tmp_path: Path, chromium: str) -> AsyncIterator[Desk]:
    settings = phone_node.settings.model_copy(
        update={
            "recorder": RecorderSettings(spool_path=tmp_path / "spool.jsonl"),
            "database": DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'ui.db'}"),
            "ui": UiSettings(queues=("support",)),
        }
    )
    tone = write_tone(tmp_path / "tone.wav", TONE_LEVEL)
    async with (
        cti_served(settings, AGENT) as app,
        ami_observer(phone_node) as (ami, events),
        launched(chromium, *tone_flags(tone)) as browser,
    ):
        yield Desk(f"http://127.0.0.1:{settings.http.port}", app, phone_node, browser, ami, events)


async def _registered(desk: Desk, page: Page) -> None:
    """Registered in the page, and Asterisk has the contact (a call may be sent to it now)."""
    await expect(page.locator("#phone-state")).to_have_attribute(
        "data-state", "registered", timeout=10_000
    )
    await desk.events.wait_for(
        lambda m: (
            m.get("Event") == "ContactStatus"
            and m.get("AOR") == EXTENSION
            and m.get("ContactStatus") in {"Created", "NonQualified", "Reachable"}
        ),
        10,
        what="the browser's contact on Asterisk",
    )


SOX_STAT = {"rms": "RMS     amplitude", "hz": "Rough   frequency", "s": "Length (seconds)"}


def _sox_stat(path: Path) -> dict[str, float]:
    """sox's ``stat`` of a recording: RMS amplitude (of full scale), rough frequency, length."""
    said = subprocess.run(
        ["sox", str(path), "-n", "stat"], capture_output=True, text=True, check=True
    ).stderr
    return {
        key: float(m.group(1))
        for key, label in SOX_STAT.items()
        if (m := re.search(re.escape(label) + r":\s*(\S+)", said))
    }


@dataclass
class Recording:
    """A file of the call's own recording (``cti-record``: MixMonitor on the customer's channel),
    read while Asterisk writes it: a span of the call is the bytes written meanwhile."""

    path: Path
    header: int = 44  # Asterisk's WAV header; 16-bit mono samples follow

    def size(self) -> int:
        return self.path.stat().st_size if self.path.is_file() else 0

    async def span(self, seconds: float) -> tuple[int, int]:
        """Where the next ``seconds`` of the call are in the file: once Asterisk has written
        that much audio (at the rate its header says), within a deadline."""
        start = self.size()
        wanted = start + int(seconds * self.rate()) * 2

        async def written() -> int | None:
            size = self.size()
            return size if size >= wanted else None

        return start, await poll_until(written, seconds + 15, what=f"{seconds} s recorded")

    def rate(self) -> int:
        with self.path.open("rb") as wav:
            return int.from_bytes(wav.read(28)[24:28], "little")

    def measure(
        self, span: tuple[int, int], into: Path, trim: tuple[float, float] = (0.5, 0.3)
    ) -> dict[str, float]:
        """sox's figures of ``span`` less ``trim`` seconds at its start and end: the audio
        reaches the file late (jitter buffer, MixMonitor's own) and is flushed in blocks."""
        raw, rate = self.path.read_bytes(), self.rate()
        start, end = span[0] + int(trim[0] * rate) * 2, span[1] - int(trim[1] * rate) * 2
        start += (start - self.header) % 2
        with wave.open(str(into), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(raw[start : end - (end - start) % 2])
        return _sox_stat(into)


def _on_agent_phone(name: str, **headers: str) -> Callable[[Message], bool]:
    """An AMI event ``name`` of the agent's browser phone's channel."""
    named = event_is(name, **headers)
    prefix = f"PJSIP/{EXTENSION}-"

    def match(m: Message) -> bool:
        return named(m) and str(m.get("Channel", "")).startswith(prefix)

    return match


@pytest.mark.asyncio
async def test_a_call_rings_with_its_pop_is_answered_heard_both_ways_and_handled_in_the_page(
    desk: Desk, tmp_path: Path
) -> None:
    page = await desk.page()
    sent: list[str] = []

    def watch(socket: WebSocket) -> None:
        if socket.url.startswith(desk.base.replace("http", "ws")):  # the desk's, not the phone's
            socket.on("framesent", lambda payload: sent.append(str(payload)))

    page.on("websocket", watch)
    await page.reload()  # the desk socket opens again, now watched
    await _registered(desk, page)
    await page.click("#go-available")
    await expect(page.locator("#state")).to_have_text("available")

    call = await place_customer_call(
        desk.ami,
        context=desk.node.settings.dialplan.inbound_context,
        number=CUSTOMER[0],
        name=CUSTOMER[1],
        speech="tt-monkeys",
        pre_wait=0.2,
        patience=40,
    )
    # the phone rings in the page together with the pop
    await expect(page.locator("#phone-call")).to_have_attribute(
        "data-call", "ringing", timeout=15_000
    )
    await expect(page.locator("#pop")).to_be_visible()
    await expect(page.locator("#pop-name")).to_have_text(CUSTOMER[1])
    await expect(page.locator("#phone-call")).to_contain_text(CUSTOMER[1])

    await expect(page).to_have_title(re.compile(r"^Ringing · "))  # seen from another tab too
    await page.click("#phone-answer")
    await expect(page.locator("#phone-call")).to_have_attribute("data-call", "connected")
    await expect(page).not_to_have_title(re.compile("Ringing"))
    await expect(page.locator("#pop-call-state")).to_have_text("connected")
    await customer_connected(desk.ami, call)  # the customer starts to speak

    # the page hears the customer: inbound packets rise, the level is above silence
    quality = page.locator("#phone-quality")
    await expect(quality).to_be_visible()

    async def packets(more_than: int) -> int | None:
        received = int(await quality.get_attribute("data-packets-received") or 0)
        level = float(await quality.get_attribute("data-level-in") or 0)
        return received if received > more_than and level > 0.05 else None

    first = await poll_until(lambda: packets(0), 10, what="the customer heard in the page")
    await poll_until(lambda: packets(first), 5, what="more of the customer's packets")

    if SCREENSHOTS:
        await page.screenshot(path=str(Path(SCREENSHOTS) / "agent-desktop-phone.png"))

    # the customer hears the agent: the tone, at about its level, in the call's recording
    heard = Recording(desk.monitor_path(f"cti-{call.uniqueid}-agent.wav"))
    talking = await heard.span(2.0)
    await page.click("#phone-mute")
    await expect(page.locator("#phone-mute")).to_have_attribute("aria-pressed", "true")
    muted = await heard.span(3.0)
    await page.click("#phone-mute")
    await expect(page.locator("#phone-mute")).to_have_attribute("aria-pressed", "false")
    talk = heard.measure(talking, tmp_path / "talking.wav")
    assert talk["rms"] > 0.1, talk
    assert abs(talk["hz"] - TONE_HERTZ) < 100, talk
    # the first second still holds what was said before the mute (jitter buffer, MixMonitor)
    silent = heard.measure(muted, tmp_path / "muted.wav", trim=(1.0, 0.3))
    assert silent["rms"] < 0.01, silent

    await page.click("#hold")
    await desk.events.wait_for(_on_agent_phone("Hold"), 5, what="Hold of the agent's phone")
    await expect(page.locator("#phone-call")).to_have_attribute("data-call", "held")
    await page.click("#unhold")
    await desk.events.wait_for(_on_agent_phone("Unhold"), 5, what="Unhold of the agent's phone")

    for key in "427":
        await page.click(f'.keypad button[data-tone="{key}"]')

    async def keyed() -> str | None:
        digits = "".join(
            str(m.get("Digit"))
            for m in desk.events.events
            if _on_agent_phone("DTMFEnd", Direction="Received")(m)
        )
        return digits if len(digits) >= 3 else None

    assert await poll_until(keyed, 5, what="the keypad's digits on Asterisk") == "427"

    await page.click("#hangup")
    hangup = await desk.events.wait_for(_on_agent_phone("Hangup"), 5, what="the agent's hang-up")
    assert hangup.get("Cause") == "16"  # normal clearing: the agent hung up
    await expect(page.locator("#wrapup")).to_be_visible(timeout=10_000)
    await expect(page.locator("#phone-call")).to_have_attribute("data-call", "idle")

    async def reported() -> dict[str, Any] | None:
        for frame in sent:
            message = json.loads(frame)
            if message.get("type") == "call_quality":
                return dict(message)
        return None

    report = await poll_until(reported, 5, what="the call's quality sent on the desk socket")
    assert report["linkedid"] == call.uniqueid
    assert report["final"] is True
    assert report["packets_received"] > 0
    assert report["seconds"] > 3
    assert report["audio_level_in"] > 0.01

    async def stored() -> dict[str, Any] | None:
        async with async_sessionmaker(desk.app[DATABASE])() as session:
            quality = await session.scalar(
                select(Interaction.quality).where(Interaction.external_key.endswith(call.uniqueid))
            )
        return quality.get(EXTENSION) if quality else None

    kept = await poll_until(stored, 10, what="the call's quality on its interaction")
    assert kept["packets_received"] == report["packets_received"]


@pytest.mark.asyncio
async def test_a_refused_microphone_pauses_the_agent_with_the_reason_shown(desk: Desk) -> None:
    control = desk.app[AGENT_CONTROL]
    await control.available(EXTENSION)

    async def in_queue() -> Any:
        agent = control.agent_of(EXTENSION)
        return agent is not None and "support" in agent.queues

    # in the queue; no phone registered yet, so Asterisk offers nothing until one is
    await poll_until(in_queue, 10, what="the agent in the queue before the desk opens")
    page = await desk.page(microphone=False)
    await expect(page.locator("#phone-problem")).to_contain_text("Microphone refused")
    await expect(page.locator("#state")).to_have_text("paused", timeout=10_000)
    await expect(page.locator("#state-reason")).to_have_text("no microphone")

    await page.click("#go-available")
    await expect(page.locator("#message")).to_contain_text("Your phone cannot take calls")
    await expect(page.locator("#message")).to_have_class("error")
    agent = control.agent_of(EXTENSION)
    assert agent is not None
    assert (agent.state, agent.reason) == (AgentState.PAUSED, "no microphone")
    await expect(page.locator("#phone-state")).to_have_attribute("data-state", "unregistered")


@pytest.mark.asyncio
async def test_the_phone_registers_again_after_asterisk_restarts_without_a_reload(
    desk: Desk,
) -> None:
    page = await desk.page()
    await _registered(desk, page)
    await page.evaluate("window.sameDocument = true")
    instance = desk.node.instance
    await asyncio.to_thread(instance.stop)
    await expect(page.locator("#phone-state")).to_have_attribute(
        "data-state", "failed", timeout=10_000
    )
    await asyncio.to_thread(instance.up)
    await expect(page.locator("#phone-state")).to_have_attribute(
        "data-state", "registered", timeout=20_000
    )
    assert await page.evaluate("window.sameDocument") is True
    contacts = (await asyncio.to_thread(instance.cli, "pjsip show contacts")).stdout
    assert f"{EXTENSION}/sip:" in contacts
