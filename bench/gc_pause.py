"""How long a full garbage collection holds the event loop in the server, with and without its
start-up heap frozen (:mod:`cti_server.health.heap`).

    .venv/bin/python bench/gc_pause.py [--rounds N]

Builds the whole application as ``cti serve`` does (not started: no Asterisk needed) beside a live
model's worth of fresh objects, then times full collections, the plain heap and the frozen one in
turn, in the same run. A full pass holds the interpreter, so its time is time the event loop
stands still; on a machine where other processes take the cores the wall time is a multiple of it.
Prints figures, never fails on them.
"""

from __future__ import annotations

import argparse
import gc
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from cti_server.app import build_app
from cti_server.config import AgiSettings, AmiSettings, DatabaseSettings, Settings


def _full_pass_ms() -> float:
    started = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - started) * 1000


def _live_model() -> list[dict[str, object]]:
    """A live model's worth of fresh objects: 20,000 calls with their events."""
    return [{"call": n, "events": [n, str(n)], "caller": {"id": n}} for n in range(20_000)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(
            ami=AmiSettings(secret=secrets.token_hex(8), port=1),  # never connects
            agi=AgiSettings(port=1),
            database=DatabaseSettings(url=f"sqlite+aiosqlite:///{Path(scratch) / 'crm.db'}"),
        )
        app = build_app(settings)
        plain, frozen = [], []
        for _ in range(args.rounds):
            gc.freeze()  # as the server does once it is up: what it built at start
            live = _live_model()  # made since: walked either way
            frozen.append(_full_pass_ms())
            walked_frozen = len(gc.get_objects())
            gc.unfreeze()
            plain.append(_full_pass_ms())
            walked_plain = len(gc.get_objects())
            del live
        del app
    print(f"objects walked by a full pass: {walked_plain:,} plain, {walked_frozen:,} frozen")
    p, f = statistics.median(plain), statistics.median(frozen)
    print(f"full collection, median of {args.rounds}: plain {p:.1f} ms, frozen {f:.1f} ms")
    print(f"ratio plain / frozen: {p / max(f, 0.001):.1f}x (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
