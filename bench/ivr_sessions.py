"""IVR sessions over FastAGI: our server walking the real IVR, against a bare panoramisk echo.

    .venv/bin/python bench/ivr_sessions.py [--sessions N] [--concurrency C] [--runs R]
                                           [--serial S]

Starts two servers on loopback, in this one process:

1. ours: :class:`FastAgiServer` with the route ``inbound`` running the real :class:`IvrEngine`
   over :class:`FastAgiChannel` on ``ivr_flows/main.yaml``. The CRM lookups are in memory:
   every other caller ID belongs to a customer (gold or silver, English or Chinese); the
   account numbers that unknown callers type belong to nobody. No database is involved;
2. the floor: a bare ``panoramisk.fast_agi.Application`` whose ``echo`` route sends as many
   ``VERBOSE "x" 1`` commands as ours sent for the same session (passed in ``agi_arg_1``),
   served by ``asyncio.start_server(app.handler, ...)``.

A driver plays Asterisk for each session: it connects, sends an AGI request header (network
script, caller ID ``+86138...``, unique ID, channel, ...) ended by a blank line, then answers
every command it reads with a plausible ``200 result=...``: menus are one ``GET OPTION`` (the
prompt and the wait for a key); the language menu's and the main menu's are answered with key
``1`` (``result=49``), so strangers choose English and every walk goes billing, then to the
queue by tier (gold: ``priority=high``); ``GET DATA`` with an unknown account number;
``GET FULL VARIABLE`` with ``result=1 (value)``. The walks are counted at the end: a change of
the engine's commands that the answers below no longer fit shows there (e.g. every walk
ending with the operator), not as faster figures.

A step's latency is the server's processing time for it, as Asterisk sees it: from the
driver's write (the request header, or its answer to the previous command) to reading the
next command. The last answer up to the server closing the connection is reported apart
("close"). Each side first runs an untimed warm-up, then R runs (default 3) of N sessions
(default 2,000), C at a time (default 100), interleaved; the best run of each by wall time is
reported: sessions/s, the process's CPU per session (the driver included), per-step p50 and
p99 and their ratios. Then S sessions (default 200) one at a time give the unloaded step
latency. Last, leaks: sessions, tasks, file descriptors and session objects still alive, and
the RSS. It prints figures and never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import re
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panoramisk.fast_agi import Application

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: the repo root is the import root
    sys.path.insert(0, str(ROOT))

from cti_server.asterisk.data import data_dir  # noqa: E402
from cti_server.config import AgiSettings  # noqa: E402
from cti_server.ivr.channels.fastagi import FastAgiChannel  # noqa: E402
from cti_server.ivr.engine import Customer, IvrEngine, IvrResult  # noqa: E402
from cti_server.ivr.flow import Flow, load_flow  # noqa: E402
from cti_server.telephony.fastagi import AgiSession, FastAgiServer  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

HOST = "127.0.0.1"
KEY = "bench-fastagi-key"  # our FastAGI server and its played Asterisk share it
OURS = "inbound"
ECHO = "echo"
TIMEOUT = 10.0  # a silent server ends the session as a failure, never hangs the bench
WARM_UP = 200
UNKNOWN_ACCOUNT = b"99999999"  # what unknown callers type: an account nobody has
ECHO_COMMAND = 'VERBOSE "x" 1'


# --- the CRM, in memory ------------------------------------------------------------------------


def caller_id(index: int) -> str:
    return f"+86138{index:08d}"


def known(index: int) -> bool:
    return index % 2 == 0


class Directory:
    """Customers by caller ID and by account: every other caller is one."""

    def __init__(self, sessions: int) -> None:
        self.by_number: dict[str, Customer] = {}
        self.by_account_number: dict[str, Customer] = {}
        for index in range(0, sessions, 2):
            customer = Customer(
                customer_id=10_000_000 + index,
                name=f"Customer {index}",
                tier="gold" if index % 4 == 0 else "silver",
                language="zh" if index % 3 == 0 else "en",
            )
            self.by_number[caller_id(index)] = customer
            self.by_account_number[str(customer.customer_id)] = customer

    async def by_caller_id(self, number: str) -> Customer | None:
        return self.by_number.get(number)

    async def by_account(self, account: str) -> Customer | None:
        return self.by_account_number.get(account)


# --- the two servers ---------------------------------------------------------------------------


def walk(result: IvrResult) -> str:
    """How a walk ended, e.g. ``transfer support billing priority=high``."""
    parts = [result.outcome, result.queue, result.attributes.get("intent", "-")]
    if "priority" in result.attributes:
        parts.append(f"priority={result.attributes['priority']}")
    return " ".join(part for part in parts if part)


class IvrRoute:
    """The ``inbound`` route: the real engine over FastAgiChannel; only the outcomes are kept."""

    def __init__(self, flow: Flow, directory: Directory) -> None:
        self.flow = flow
        self.engine = IvrEngine(directory.by_caller_id, directory.by_account)
        self.walks: Counter[str] = Counter()

    async def __call__(self, session: AgiSession) -> None:
        channel = FastAgiChannel(session)
        caller = session.env.get("agi_callerid", "")
        self.walks[walk(await self.engine.run(self.flow, channel, caller))] += 1


async def echo(request: Any) -> None:  # a panoramisk Request: untyped
    for _ in range(int(request.headers.get("agi_arg_1", "1"))):
        await request.send_command(ECHO_COMMAND)


# --- the driver: Asterisk's side ---------------------------------------------------------------


def request(script: str, port: int, index: int, commands: int) -> bytes:
    """The AGI environment Asterisk sends on a FastAGI connection, ended by a blank line."""
    lines = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        f"agi_request: agi://{HOST}:{port}/{script}",
        f"agi_channel: PJSIP/trunk-{index:08x}",
        "agi_language: en",
        "agi_type: PJSIP",
        f"agi_uniqueid: 1700000000.{index}",
        "agi_version: 18.20.0",
        f"agi_callerid: {caller_id(index)}",
        f"agi_calleridname: Caller {index}",
        "agi_callingpres: 0",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        "agi_dnid: 4008001234",
        "agi_rdnis: unknown",
        "agi_context: inbound",
        "agi_extension: s",
        "agi_priority: 2",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        f"agi_threadid: {140000000000000 + index}",
        f"agi_arg_1: {commands}",
    ]
    return ("\n".join(lines) + "\n\n").encode()


# answers by command, first match wins; SET VARIABLE, VERBOSE and anything else: "result=1"
ANSWERS: list[tuple[bytes, bytes]] = [
    (b"GET OPTION cti/main_menu ", b"200 result=49 endpos=1234\n"),  # key "1": billing
    (b"GET OPTION cti/choose_language ", b"200 result=49 endpos=1234\n"),  # "1": English
    (b"GET OPTION", b"200 result=0 endpos=1234\n"),  # any other menu: no key
    (b"STREAM FILE", b"200 result=0 endpos=1234\n"),
    (b"GET DATA", b"200 result=" + UNKNOWN_ACCOUNT + b"\n"),
    (b"GET FULL VARIABLE", b"200 result=1 (value)\n"),
    (b"GET VARIABLE", b"200 result=1 (value)\n"),
    (b"WAIT FOR DIGIT", b"200 result=49\n"),
    (b"CHANNEL STATUS", b"200 result=6\n"),  # AST_STATE_UP
]


def answer(command: bytes) -> bytes:
    """A plausible answer from Asterisk to one command line; the server's challenge is answered
    as our Asterisk does, with the bench's key."""
    challenge = re.fullmatch(
        rb'GET FULL VARIABLE "\$\{SHA1\(\$\{CTI_AGI_KEY\}:([0-9a-f]{32})\)\}"\n?', command
    )
    if challenge:
        digest = hashlib.sha1(f"{KEY}:{challenge.group(1).decode()}".encode()).hexdigest()  # noqa: S324
        return b"200 result=1 (" + digest.encode() + b")\n"
    for prefix, reply in ANSWERS:
        if command.startswith(prefix):
            return reply
    return b"200 result=1\n"


@dataclass
class Session:
    commands: list[str]
    steps: list[float]  # seconds: header or answer written -> next command read
    close: float  # seconds: last answer written -> the server's close read


async def play_asterisk(port: int, header: bytes) -> Session:
    reader, writer = await asyncio.open_connection(HOST, port)
    commands: list[str] = []
    steps: list[float] = []
    try:
        writer.write(header)
        sent = time.perf_counter()
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), TIMEOUT)
            now = time.perf_counter()
            if not line:
                return Session(commands, steps, now - sent)
            steps.append(now - sent)
            commands.append(line.decode("utf-8", "replace").rstrip("\n"))
            writer.write(answer(line))
            sent = time.perf_counter()
            await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@dataclass
class Run:
    label: str
    sessions: list[Session | None]
    seconds: float
    cpu: float
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def done(self) -> list[Session]:
        return [s for s in self.sessions if s is not None]

    def steps(self) -> list[float]:
        return [step for session in self.done for step in session.steps]

    def closes(self) -> list[float]:
        return [session.close for session in self.done]


async def drive(
    label: str, port: int, header: Callable[[int], bytes], sessions: int, concurrency: int
) -> Run:
    """``sessions`` sessions, ``concurrency`` at a time, each worker taking the next index."""
    run = Run(label, [None] * sessions, 0.0, 0.0)
    indices = iter(range(sessions))

    async def worker() -> None:
        for index in indices:
            try:
                session = await play_asterisk(port, header(index))
            except (OSError, TimeoutError) as exc:
                run.failures[type(exc).__name__] += 1
                continue
            if not session.commands:
                run.failures["closed before any command"] += 1
                continue
            run.sessions[index] = session

    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, sessions))))
    run.seconds = time.perf_counter() - started
    run.cpu = time.process_time() - cpu
    return run


# --- figures -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def rss_mb() -> float:
    """The resident set now, in MiB."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class GcWatch:
    """Counts the cyclic garbage collector's full (generation 2) passes and their longest pause.

    A full pass stops every session at once: it shows up in the p99 of whichever side runs.
    """

    def __init__(self) -> None:
        self.full = 0
        self.longest = 0.0
        self._started = 0.0

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.full += 1
            self.longest = max(self.longest, time.perf_counter() - self._started)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def live(kind: type) -> int:
    return sum(1 for obj in gc.get_objects() if isinstance(obj, kind))


def row(name: str, ours: float, theirs: float, unit: str = "", digits: int = 0) -> None:
    ratio = ours / theirs if theirs else float("nan")
    print(f"{name:<26} {ours:>14,.{digits}f} {theirs:>16,.{digits}f} {ratio:>9.2f}x  {unit}")


def describe(run: Run) -> str:
    failures = ", ".join(f"{n} {kind}" for kind, n in run.failures.items()) or "none"
    return f"{len(run.done):,} done, failures: {failures}"


def short(command: str) -> str:
    return " ".join(command.split()[:3])


# --- the bench ---------------------------------------------------------------------------------


async def settle(baseline: int) -> int:
    """Tasks above ``baseline`` once closing connections had up to 2 s to finish."""
    for _ in range(200):
        if len(asyncio.all_tasks()) <= baseline:
            break
        await asyncio.sleep(0.01)
    return len(asyncio.all_tasks()) - baseline


async def bench(args: argparse.Namespace) -> None:  # noqa: PLR0915 - one linear report
    flow = load_flow(data_dir("ivr_flows") / "main.yaml")
    fds_before = open_fds()
    directory = Directory(max(args.sessions, args.serial, WARM_UP))
    route = IvrRoute(flow, directory)
    ours_port = free_port()
    server = FastAgiServer(
        AgiSettings(host=HOST, port=ours_port, max_sessions=max(500, args.concurrency)), key=KEY
    )
    server.add_route(OURS, route)
    await server.start()
    app = Application(loop=asyncio.get_running_loop())
    app.add_route(ECHO, echo)
    floor = await asyncio.start_server(app.handler, HOST, 0)
    echo_port: int = floor.sockets[0].getsockname()[1]
    tasks_before = len(asyncio.all_tasks())

    def ours_header(index: int) -> bytes:
        return request(OURS, ours_port, index, 0)

    counts: dict[int, int] = {}

    def echo_header(index: int) -> bytes:
        return request(ECHO, echo_port, index, counts.get(index, 1))

    async def ours_run(sessions: int, concurrency: int) -> Run:
        run = await drive("ours", ours_port, ours_header, sessions, concurrency)
        for index, session in enumerate(run.sessions):
            if session is not None:
                counts.setdefault(index, len(session.commands))
        return run

    async def echo_run(sessions: int, concurrency: int) -> Run:
        return await drive("panoramisk", echo_port, echo_header, sessions, concurrency)

    try:
        # untimed warm-up; ours first: it says how many commands each session takes
        warm_ours = await ours_run(min(WARM_UP, args.sessions), args.concurrency)
        warm_echo = await echo_run(min(WARM_UP, args.sessions), args.concurrency)
        print(
            f"IVR sessions over FastAGI on loopback, one process, Python "
            f"{sys.version.split()[0]}: flow {flow.name!r}, "
            f"{args.sessions:,} sessions per run, {args.concurrency} at a time"
        )
        print(f"warm-up: ours {describe(warm_ours)}; panoramisk {describe(warm_echo)}")
        for index in (0, 1):
            session = warm_ours.sessions[index] if index < len(warm_ours.sessions) else None
            if session is not None:
                kind = "known caller  " if known(index) else "unknown caller"
                print(
                    f"  {kind}: {len(session.commands)} commands: "
                    + " | ".join(short(c) for c in session.commands)
                )
        del warm_ours, warm_echo
        rss_warm = rss_mb()

        ours: list[Run] = []
        theirs: list[Run] = []
        with GcWatch() as collector:
            for _ in range(args.runs):  # interleaved, so both see the same machine
                ours.append(await ours_run(args.sessions, args.concurrency))
                theirs.append(await echo_run(args.sessions, args.concurrency))
        commands_differ = sum(
            1
            for run in ours
            for index, session in enumerate(run.sessions)
            if session is not None and len(session.commands) != counts.get(index)
        )
        echo_differ = sum(
            1
            for run in theirs
            for index, session in enumerate(run.sessions)
            if session is not None and len(session.commands) != counts.get(index)
        )
        best_ours = min(ours, key=lambda r: r.seconds)
        best_theirs = min(theirs, key=lambda r: r.seconds)

        serial_ours = await ours_run(args.serial, 1)
        serial_echo = await echo_run(args.serial, 1)
        rss_end = rss_mb()

        print(f"\nbest of {args.runs} runs each (by wall time):")
        print(f"{'':<26} {'ours (IVR)':>14} {'panoramisk echo':>16} {'ratio':>10}")
        row("sessions", len(best_ours.done), len(best_theirs.done))
        ours_steps, their_steps = best_ours.steps(), best_theirs.steps()
        row("commands (steps)", len(ours_steps), len(their_steps))
        row("wall seconds", best_ours.seconds, best_theirs.seconds, "s", 3)
        row(
            "sessions/s",
            len(best_ours.done) / best_ours.seconds,
            len(best_theirs.done) / best_theirs.seconds,
        )
        row(
            "CPU per session",
            best_ours.cpu / max(1, len(best_ours.done)) * 1e6,
            best_theirs.cpu / max(1, len(best_theirs.done)) * 1e6,
            "us (whole process, driver included)",
        )
        for label, share in (("p50", 0.50), ("p99", 0.99)):
            row(
                f"step {label} (C={args.concurrency})",
                percentile(ours_steps, share) * 1e6,
                percentile(their_steps, share) * 1e6,
                "us",
            )
        for label, share in (("p50", 0.50), ("p99", 0.99)):
            row(
                f"close {label} (C={args.concurrency})",
                percentile(best_ours.closes(), share) * 1e6,
                percentile(best_theirs.closes(), share) * 1e6,
                "us",
            )
        for label, share in (("p50", 0.50), ("p99", 0.99)):
            row(
                f"step {label} (C=1)",
                percentile(serial_ours.steps(), share) * 1e6,
                percentile(serial_echo.steps(), share) * 1e6,
                "us",
            )
        added = percentile(serial_ours.steps(), 0.5) - percentile(serial_echo.steps(), 0.5)
        print(
            f"ours adds {added * 1e6:,.0f} us per step at p50 unloaded "
            f"({len(serial_ours.done)} and {len(serial_echo.done)} sessions one at a time)"
        )
        print(
            "all runs, sessions/s: ours "
            + " ".join(f"{len(r.done) / r.seconds:,.0f}" for r in ours)
            + " | panoramisk "
            + " ".join(f"{len(r.done) / r.seconds:,.0f}" for r in theirs)
        )
        print(
            f"full GC passes during the timed runs: {collector.full}, longest "
            f"{collector.longest * 1e3:.0f} ms (each pauses every session of the side running)"
        )
        for run in (*ours, *theirs, serial_ours, serial_echo):
            if run.failures:
                print(f"{run.label}: {describe(run)}")
        print(
            f"sessions whose command count differs from the first: ours {commands_differ}, "
            f"echo {echo_differ}"
        )
        print("IVR walks (all sessions, warm-up included; all billing is the intended walk):")
        for outcome, n in route.walks.most_common():
            print(f"  {n:>7,}  {outcome}")
        strays = sum(n for outcome, n in route.walks.items() if " billing" not in outcome)
        if strays:
            print(f"WARNING: {strays:,} walks did not reach billing: the answers no longer fit")
    finally:
        floor.close()
        await floor.wait_closed()
        leaked_tasks = await settle(tasks_before)
        status = server.status()
        await server.stop()

    gc.collect()
    print(
        f"leaks: ours {status['active']} sessions active after the runs "
        f"({status['requests']:,} requests, {status['rejected']} rejected); "
        f"{leaked_tasks} tasks over the baseline; "
        f"{open_fds() - fds_before} file descriptors over the baseline; "
        f"alive: {live(AgiSession)} AgiSession, {live(FastAgiChannel)} FastAgiChannel, "
        f"{live(asyncio.StreamWriter)} StreamWriter, {live(asyncio.Transport)} transports"
    )
    print(
        f"RSS: {rss_warm:.0f} MiB after the warm-up, {rss_end:.0f} MiB after all runs (which "
        f"keeps every session's commands and timings); "
        f"peak RSS {peak_rss_mb():.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=2000, help="sessions per run and side")
    parser.add_argument("--concurrency", type=int, default=100, help="sessions at a time")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each side; best kept")
    parser.add_argument("--serial", type=int, default=200, help="sessions one at a time")
    args = parser.parse_args()
    if min(args.sessions, args.concurrency, args.runs, args.serial) < 1:
        parser.error("--sessions, --concurrency, --runs and --serial must be positive")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
