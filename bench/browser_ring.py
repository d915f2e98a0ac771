"""Ring latency of the browser phone: from Asterisk ringing the agent to the phone ringing in the
agent's desk page, beside the desk's screen pop of the same call.

    .venv/bin/python bench/browser_ring.py [--calls N]

Everything real: an Asterisk of its own in the cached chroot (root; `scripts/bootstrap` builds
it) where agent 8101's phone is the browser, `cti serve` in this process, and Debian's Chromium
signed in as that agent at /ui/desktop, registered over WSS with a fake microphone. Each of N
simulated customers' calls goes through the inbound context into the queue, which rings the
browser; the bench hangs the customer up once both the ring and the pop are on the page, and
waits for the desk to be idle before the next call.

Clocks: Asterisk's ``AgentCalled`` event carries its ``Timestamp`` (epoch, the host's clock);
the page notes, in the same clock (``performance.timeOrigin + performance.now()``), when its
"Ringing" line and its pop appeared (a MutationObserver on the two elements: what the agent
sees). Prints p50 / p99 of each; never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from panoramisk.message import Message
from playwright.async_api import Page

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: the repo root is the import root
    sys.path.insert(0, str(ROOT))

from cti_server.asterisk.local import AsteriskChroot, AsteriskInstance  # noqa: E402
from cti_server.asterisk.sip_digests import rotate  # noqa: E402
from cti_server.config import Settings, load_settings  # noqa: E402
from cti_server.sim.simulation import place_customer_call  # noqa: E402
from cti_server.telephony.ami_client import AmiClient  # noqa: E402
from tests.support.browser_media import launched  # noqa: E402
from tests.support.cti_in_process import cti_served  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.ui import PASSWORD  # noqa: E402
from tests.support.waiting import EventLog  # noqa: E402

EXTENSION = "8101"
# what the agent sees, noted in the host's epoch clock (ms) as it appears
WATCH = """() => {
  window.seen = [];
  const now = () => performance.timeOrigin + performance.now();
  const call = document.getElementById("phone-call"), pop = document.getElementById("pop");
  new MutationObserver(() => {
    if (call.dataset.call === "ringing") seen.push(["ring", now()]);
  }).observe(call, {attributes: true, attributeFilter: ["data-call"]});
  new MutationObserver(() => {
    if (!pop.hidden) seen.push(["pop", now()]);
  }).observe(pop, {attributes: true, attributeFilter: ["hidden"]});
}"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def settings_for(name: str, workdir: Path) -> Settings:
    return load_settings(
        None,
        ami={"secret": secrets.token_urlsafe(16), "port": free_port(), "node": name},
        agi={"port": free_port()},
        http={"port": free_port()},
        speech={"port": free_port()},
        database={"url": f"sqlite+aiosqlite:///{workdir / 'cti.db'}"},
        recorder={"spool_path": str(workdir / "spool.jsonl")},
        asterisk={"instance": name},
        ivr={"inbound_flow": None, "survey_flow": None},
        ui={"queues": ["support"]},
        dialplan={
            "sip_port": free_port(socket.SOCK_DGRAM),
            "wss_port": free_port(),
            "agents": [{"extension": EXTENSION, "name": "Bench agent", "phone": "browser"}],
        },
    )


@contextlib.contextmanager
def asterisk(settings: Settings) -> Any:
    chroot = AsteriskChroot(settings.asterisk.chroot)
    if not chroot.complete:
        sys.exit("the Asterisk chroot is not built: run scripts/bootstrap (as root) first")
    instance = AsteriskInstance(chroot, settings.asterisk.instance, settings)
    instance.digests_file.unlink(missing_ok=True)
    rotate(instance.digests_file, EXTENSION)
    instance.up()
    try:
        yield instance
    finally:
        instance.stop()


async def desk_page(page: Page, base: str) -> None:
    await page.goto(f"{base}/ui/login")
    await page.fill("#username", "bench")
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in")
    await page.wait_for_url(f"{base}/ui/*")
    await page.goto(f"{base}/ui/desktop")
    await page.wait_for_selector('#phone-state[data-state="registered"]', timeout=15_000)
    await page.click("#go-available")
    await page.wait_for_selector('#state[data-state="available"]', timeout=10_000)
    await page.evaluate(WATCH)


async def one_call(
    settings: Settings, ami: AmiClient, events: EventLog, page: Page, n: int
) -> tuple[float, float]:
    """(ring ms, pop ms) after Asterisk's AgentCalled of one call."""
    await page.evaluate("seen.length = 0")
    call = await place_customer_call(
        ami,
        context=settings.dialplan.inbound_context,
        number=f"+8613800{n:06d}",
        name=f"Bench caller {n}",
        pre_wait=0,
        patience=30,
    )

    def rang(m: Message) -> bool:
        return m.get("Event") == "AgentCalled" and call.uniqueid in (
            m.get("Linkedid"),
            m.get("Uniqueid"),
        )

    called = await events.wait_for(rang, 15, what="AgentCalled")
    both = "() => ['ring', 'pop'].every((w) => seen.some(([what]) => what === w))"
    await page.wait_for_function(both)
    seen: list[list[Any]] = await page.evaluate("seen")
    at = float(called["Timestamp"]) * 1000
    ring = next(t for what, t in seen if what == "ring") - at
    pop = next(t for what, t in seen if what == "pop") - at
    await ami.send_action("Hangup", {"Channel": str(called["Channel"])})
    await page.wait_for_selector('#phone-call[data-call="idle"]', timeout=10_000)
    await page.wait_for_selector("#pop", state="hidden", timeout=10_000)
    return ring, pop


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Debian's chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(f"bench{os.getpid()}", Path(tmp))
        with asterisk(settings):
            async with (
                cti_served(settings, ("bench", "agent", EXTENSION)),
                launched(chromium) as browser,
            ):
                log = EventLog()
                ami = AmiClient(settings.ami, on_event=log)
                task = asyncio.create_task(ami.run())
                try:
                    await ami.wait_connected(10)
                    context = await browser.new_context(ignore_https_errors=True)
                    base = f"http://127.0.0.1:{settings.http.port}"
                    await context.grant_permissions(["microphone"], origin=base)
                    page = await context.new_page()
                    await desk_page(page, base)
                    rings, pops = [], []
                    for n in range(args.calls):
                        ring, pop = await one_call(settings, ami, log, page, n)
                        rings.append(ring)
                        pops.append(pop)
                finally:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{args.calls} calls, one agent, load average {load}")
    print("from Asterisk's AgentCalled            p50 ms   p99 ms   max ms")
    for label, values in (("browser phone ringing in the page", rings), ("screen pop shown", pops)):
        print(
            f"{label:<38} {statistics.median(values):7.1f}  {pct(values, 0.99):7.1f}"
            f"  {max(values):7.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
