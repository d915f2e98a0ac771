"""AMI event throughput: our whole AMI pipeline against panoramisk's bare parser, same bytes.

    .venv/bin/python bench/ami_pipeline.py [--repeat N] [--runs R] [--profile]

Builds one realistic AMI byte stream from every recorded call in the shared data folder
(``../shared/data/ami_recordings/**/*.json``, Asterisk 13+ and the noisy Asterisk 11 set; each
file is one call, a JSON list of events): the banner, then each event as ``Key: value`` lines
(``Event`` first, as Asterisk sends it) ended by a blank line. The recordings are repeated N
times (by default enough for at least 200,000 events); every repetition of every file gets its
own suffix on each ``*Uniqueid*``/``*Linkedid*`` value, so no two calls merge. The stream is cut
into 4096-byte chunks (a TCP read) before any timing, and the same chunks are fed to:

1. panoramisk: ``panoramisk.ami_protocol.AMIProtocol.data_received`` with a factory whose
   ``dispatch`` does nothing: decoding, framing and ``Message`` parsing only (the floor);
2. ours: ``_AmiProtocol.data_received`` of an :class:`AmiClient` (decoding, framing, parsing
   into its bounded inbox), then what its consumer task does with each chunk's messages
   (``AmiClient.process_queued``: replies matched, then ``on_event``, the server's
   ``translate`` then ``Tracker.apply``), the tracker publishing to a
   :class:`MemoryBus` on which a :class:`Recorder` listens: its journal append (a JSON line
   written and flushed to a spool file in a temporary directory) happens in the publish path
   and is timed; its database writes (``Recorder.run``) are not run.

Each side is run R times (default 3) on fresh objects, after one untimed warm-up that also
checks both saw every event; the best run of each is reported: events, calls, seconds,
events/s, CPU ms per call, their ratio (target: ours >= 0.5 x panoramisk), journalled updates
and the peak RSS. It prints figures and never fails on them. When the ratio is under the
target, or with ``--profile``, it prints where our pipeline spends its time (cProfile).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import logging
import math
import pstats
import re
import resource
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: the repo root is the import root
    sys.path.insert(0, str(ROOT))

from cti_server.bus import MemoryBus  # noqa: E402
from cti_server.config import AmiSettings  # noqa: E402
from cti_server.events import CallStarted, DomainEvent  # noqa: E402
from cti_server.recorder.recorder import Recorder  # noqa: E402
from cti_server.recorder.spool import Spool  # noqa: E402
from cti_server.telephony.ami_client import AmiClient, _AmiProtocol  # noqa: E402
from cti_server.telephony.ami_events import translate  # noqa: E402
from cti_server.tracker.tracker import Tracker  # noqa: E402

RECORDINGS = ROOT.parent / "shared" / "data" / "ami_recordings"
BANNER = "Asterisk Call Manager/2.10.3\r\n"
CHUNK = 4096
MIN_EVENTS = 200_000
TARGET_RATIO = 0.5
ID_KEY = re.compile(r"(uniqueid|linkedid)\d*$", re.IGNORECASE)  # Uniqueid, DestLinkedid, Uniqueid1
MARK = "\x00"  # where a repetition's id suffix goes; never in AMI text
# no connection is made: the secret is never sent anywhere
SETTINGS = AmiSettings(host="127.0.0.1", port=5038, secret="x")  # noqa: S106


@dataclass(frozen=True)
class Stream:
    chunks: list[bytes]
    events: int
    calls: int
    files: int
    repeat: int
    size: int


def load_calls() -> list[list[dict[str, Any]]]:
    """Every recorded call (one JSON file each), in a stable order."""
    calls = []
    for path in sorted(RECORDINGS.rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        calls.append([m for m in data if isinstance(m, dict) and m.get("Event")])
    return calls


def wire(event: dict[str, Any]) -> str:
    """One event as Asterisk writes it; id values carry MARK where the repetition's suffix goes.

    ``content`` is panoramisk's body attribute saved with the recording, not a header (always
    empty for events). A CR inside a value would cut the line, so it becomes a space (none of
    the recordings has one; a few Asterisk 11 values end in a bare LF, kept as sent).
    """
    lines = [f"Event: {event['Event']}"]
    for key, value in event.items():
        if key in ("Event", "content"):
            continue
        text = str(value).replace("\r", " ")
        if text and ID_KEY.search(key):
            text += MARK
        lines.append(f"{key}: {text}")
    return "\r\n".join(lines) + "\r\n\r\n"


def build_stream(repeat: int | None) -> Stream:
    calls = load_calls()
    per_pass = sum(len(call) for call in calls)
    if per_pass == 0:
        sys.exit(f"no recorded AMI events under {RECORDINGS}")
    if repeat is None:
        repeat = math.ceil(MIN_EVENTS / per_pass)
    templates = ["".join(wire(event) for event in call) for call in calls]
    # cut as it is built: the whole stream is never held twice (keeps the peak RSS meaningful)
    pending = bytearray(BANNER.encode("utf-8"))
    chunks: list[bytes] = []
    size = len(pending)
    for rep in range(repeat):
        for index, template in enumerate(templates):
            data = template.replace(MARK, f"-{rep}.{index}").encode("utf-8")
            size += len(data)
            pending += data
            full = len(pending) - len(pending) % CHUNK
            chunks.extend(bytes(pending[i : i + CHUNK]) for i in range(0, full, CHUNK))
            del pending[:full]
    if pending:
        chunks.append(bytes(pending))
    return Stream(chunks, per_pass * repeat, len(calls) * repeat, len(calls), repeat, size)


# -- the floor: panoramisk's protocol, parsing only ---------------------------------------------


class NullFactory:
    """What AMIProtocol.handle_message needs of its Manager: a ``dispatch`` that does nothing."""

    def __init__(self) -> None:
        self.dispatched = 0
        self.counting = False

    def dispatch(self, message: Message) -> None:
        if self.counting:  # the untimed warm-up checks every event came through
            self.dispatched += 1


def panoramisk_protocol(factory: NullFactory) -> AMIProtocol:
    """An AMIProtocol as ``connection_made`` leaves it, without a transport (never written to)."""
    protocol = AMIProtocol()
    protocol.factory = factory
    protocol.queue = deque()
    protocol.responses = {}
    protocol.encoding = "utf8"  # panoramisk.Manager's default
    protocol.version = None  # read from the banner, as on a real connection
    protocol.log = logging.getLogger("panoramisk.ami_protocol")
    protocol.closed = False
    return protocol


# -- ours: the server's AMI pipeline --------------------------------------------------------------


@dataclass
class Pipeline:
    protocol: _AmiProtocol
    client: AmiClient
    tracker: Tracker
    bus: MemoryBus
    spool: Spool


def pipeline(spool_path: Path) -> Pipeline:
    """Wired as ``cti_server.app.build_app`` wires it, minus the database and the network."""
    bus = MemoryBus()
    tracker = Tracker(bus.publish)
    node = SETTINGS.node

    def on_ami_event(message: Message) -> None:
        event = translate(message, node)
        if event is not None:
            tracker.apply(event)

    client = AmiClient(SETTINGS, on_event=on_ami_event)
    spool = Spool(spool_path)
    # never used: Recorder.run (the database writes) is not part of the measurement
    sessions: async_sessionmaker[AsyncSession] = async_sessionmaker()
    Recorder(bus, sessions, spool, region="CN", schema_ready=asyncio.Event())
    return Pipeline(_AmiProtocol(client), client, tracker, bus, spool)


def receive_and_process(target: Pipeline) -> Callable[[bytes], None]:
    """One TCP read, then the consumer's turn: the inbox holds one chunk's messages at most."""
    data_received = target.protocol.data_received
    process_queued = target.client.process_queued

    def receive(chunk: bytes) -> None:
        data_received(chunk)
        process_queued()

    return receive


# -- measuring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float


def feed(receive: Callable[[bytes], None], chunks: list[bytes]) -> Run:
    wall, cpu = time.perf_counter(), time.process_time()
    for chunk in chunks:
        receive(chunk)
    return Run(time.perf_counter() - wall, time.process_time() - cpu)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def report(name: str, run: Run, stream: Stream) -> None:
    print(
        f"{name:<11} {stream.events:>9,} {stream.calls:>7,} {run.seconds:>9.3f} "
        f"{stream.events / run.seconds:>12,.0f} {run.cpu_seconds * 1000 / stream.calls:>13.3f}"
    )


def profile_ours(stream: Stream, spool_dir: Path, top: int) -> None:
    target = pipeline(spool_dir / "profile.jsonl")
    profiler = cProfile.Profile()
    profiler.enable()
    feed(receive_and_process(target), stream.chunks)
    profiler.disable()
    target.spool.close()
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        print(f"\n-- our pipeline under cProfile, top {top} by {order} --")
        print(out.getvalue().split("\n", 4)[-1].strip("\n"))


async def bench(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    stream = build_stream(args.repeat)
    print(
        f"stream: {stream.files} recorded calls x {stream.repeat} = {stream.calls:,} calls, "
        f"{stream.events:,} events, {stream.size / 1e6:.1f} MB in {len(stream.chunks):,} chunks "
        f"of {CHUNK} bytes (built in {time.perf_counter() - started:.1f} s; "
        f"peak RSS {peak_rss_mb():.0f} MB)"
    )
    with tempfile.TemporaryDirectory(prefix="ami-bench-") as directory:
        spool_dir = Path(directory)

        # untimed warm-up: both sides see every event
        factory = NullFactory()
        factory.counting = True
        floor = panoramisk_protocol(factory)
        feed(floor.data_received, stream.chunks)
        warm = pipeline(spool_dir / "warm-up.jsonl")
        started_calls: list[DomainEvent] = []
        warm.bus.listen((CallStarted,), started_calls.append)
        feed(receive_and_process(warm), stream.chunks)
        warm.spool.close()
        print(
            f"warm-up: panoramisk dispatched {factory.dispatched:,} events (protocol "
            f"{floor.version}); ours handled {warm.client.status.events:,} (protocol "
            f"{warm.client.status.asterisk_version}), the tracker applied "
            f"{warm.tracker.applied:,} typed events and started {len(started_calls):,} calls "
            f"(one per linkedid; Asterisk 11 has none, so one per channel there), "
            f"{len(warm.tracker.live_calls()):,} left live"
        )
        del warm, floor, started_calls

        theirs: list[Run] = []
        ours: list[Run] = []
        journalled = published = 0
        for index in range(args.runs):  # interleaved, so both see the same machine
            theirs.append(feed(panoramisk_protocol(NullFactory()).data_received, stream.chunks))
            target = pipeline(spool_dir / f"run-{index}.jsonl")
            ours.append(feed(receive_and_process(target), stream.chunks))
            target.spool.close()
            journalled, published = len(target.spool), target.bus.published
            (spool_dir / f"run-{index}.jsonl").unlink()
        best_theirs = min(theirs, key=lambda r: r.seconds)
        best_ours = min(ours, key=lambda r: r.seconds)

        print(f"\nbest of {args.runs} runs each, same {len(stream.chunks):,} chunks:")
        print(
            f"{'':<11} {'events':>9} {'calls':>7} {'seconds':>9} {'events/s':>12} "
            f"{'CPU ms/call':>13}"
        )
        report("panoramisk", best_theirs, stream)
        report("ours", best_ours, stream)
        ratio = best_theirs.seconds / best_ours.seconds
        print(f"ratio ours/panoramisk: {ratio:.2f}x (target >= {TARGET_RATIO}x)")
        print(
            "all runs, seconds: panoramisk "
            + " ".join(f"{r.seconds:.3f}" for r in theirs)
            + " | ours "
            + " ".join(f"{r.seconds:.3f}" for r in ours)
        )
        print(f"bus events published: {published:,}; journalled updates: {journalled:,}")
        print(f"peak RSS: {peak_rss_mb():.0f} MB")

        if args.profile or ratio < TARGET_RATIO:
            profile_ours(stream, spool_dir, args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--repeat",
        type=int,
        help=f"passes over the recordings (default: enough for {MIN_EVENTS:,} events)",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each side; best kept")
    parser.add_argument("--profile", action="store_true", help="cProfile our pipeline anyway")
    parser.add_argument("--top", type=int, default=25, help="functions shown by --profile")
    args = parser.parse_args()
    if (args.repeat is not None and args.repeat < 1) or args.runs < 1 or args.top < 1:
        parser.error("--repeat, --runs and --top must be positive")
    if not RECORDINGS.is_dir():
        sys.exit(f"no recordings: {RECORDINGS} is missing")
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
