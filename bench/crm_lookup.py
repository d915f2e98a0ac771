"""Caller-ID lookup latency on a realistic CRM: lookup_by_caller_id against a bare indexed query.

    .venv/bin/python bench/crm_lookup.py [--customers N] [--lookups K]
                                         [--database sqlite|postgresql|both]

Seeds N customers (default 1,000,000) with :func:`crm_core.seed.seed_crm` into a fresh SQLite
file in a temporary directory and/or a throw-away PostgreSQL cluster (the test suite's
:class:`tests.support.postgres.PostgresServer`), then times K caller-ID lookups the way the
CTI server makes them (a session per lookup from one engine): existing numbers in the forms
trunks and agents deliver them ("+8613812345678", "13812345678", "010 6552 8888",
"0086...", "8613812345678", "+44 ..."), plus about 10 % unknown numbers. In the same run and
the same way, interleaved with the lookups, it times the floor: ``SELECT customer_id FROM
phones WHERE e164 = :n`` with the number already normalized. It prints p50 and p99 of both,
their p99 ratio beside the targets (p99 < 2 ms, ratio <= 1.5), and per database the peak
memory of the lookup phase alone: this process's resident set (SQLite's page cache included,
a PostgreSQL server's memory not), its peak reset when the lookups begin (Linux's
``/proc/self/clear_refs``), so that seeding and the other database do not count. It prints
figures and never fails on them.

``--session shared`` reuses one session for every query instead (what a batch job does);
``--profile`` prints where the lookups spend their time (cProfile, cumulative).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberFormat
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: the repo root is the import root
    sys.path.insert(0, str(ROOT))

from crm_core.customers import lookup_by_caller_id  # noqa: E402
from crm_core.database import make_engine  # noqa: E402
from crm_core.migrate import upgrade  # noqa: E402
from crm_core.models import Phone  # noqa: E402
from crm_core.seed import seed_crm  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402

REGION = "CN"
TARGET_P99_MS = 2.0
TARGET_RATIO = 1.5
UNKNOWN_SHARE = 0.1
UNUSED_PREFIX = "198"  # a valid Chinese mobile prefix the seeder never gives out
WARM_UP = 300
BARE = text("SELECT customer_id FROM phones WHERE e164 = :n")


@dataclass(frozen=True)
class Probe:
    """One caller ID to look up and the stored form the bare query searches for."""

    raw: str
    e164: str
    known: bool


def caller_forms(e164: str) -> list[str]:
    """The ways a number reaches us from trunks, Asterisk and agents (region CN)."""
    number = phonenumbers.parse(e164)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    abroad = phonenumbers.format_out_of_country_calling_number(number, REGION)  # "00 44 ..."
    forms = [e164, international, abroad, phonenumbers.normalize_digits_only(abroad)]
    if number.country_code == 86:
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        forms += [national, phonenumbers.normalize_digits_only(national), e164[1:]]
    elif number.country_code != 1:
        # the "+" lost on the way; not for +1, whose "1..." digits read as a Chinese mobile
        forms.append(e164[1:])
    return forms


async def probes(engine: AsyncEngine, count: int, rng: random.Random) -> list[Probe]:
    """``count`` caller IDs: random stored numbers in random forms, ~10 % unknown numbers."""
    async with engine.connect() as connection:
        low, high = (await connection.execute(select(func.min(Phone.id), func.max(Phone.id)))).one()
        unknown = round(count * UNKNOWN_SHARE)
        ids = [rng.randint(low, high) for _ in range(count - unknown)]
        stored: list[str] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = await connection.execute(select(Phone.id, Phone.e164).where(Phone.id.in_(chunk)))
            by_id = dict(rows.all())
            stored += [by_id[i] for i in chunk if i in by_id]
    found = [Probe(rng.choice(caller_forms(e164)), e164, known=True) for e164 in stored]
    strangers = [f"+86{UNUSED_PREFIX}{rng.randrange(10**8):08d}" for _ in range(unknown)]
    found += [Probe(rng.choice(caller_forms(e164)), e164, known=False) for e164 in strangers]
    rng.shuffle(found)
    return found


def percentile(sorted_ns: list[int], fraction: float) -> float:
    """Nearest-rank percentile of nanosecond timings, in milliseconds."""
    index = min(len(sorted_ns) - 1, max(0, round(fraction * len(sorted_ns)) - 1))
    return sorted_ns[index] / 1e6


@dataclass
class Timings:
    lookup_ns: list[int]
    bare_ns: list[int]
    outcomes: Counter[str]


async def measure(
    engine: AsyncEngine, items: list[Probe], *, shared_session: bool, profile: bool
) -> Timings:
    factory = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def per_call() -> AsyncIterator[AsyncSession]:
        async with factory() as session:
            yield session

    shared: AsyncSession | None = factory() if shared_session else None

    @asynccontextmanager
    async def reuse() -> AsyncIterator[AsyncSession]:
        assert shared is not None
        yield shared
        shared.expunge_all()  # a long-lived session must not pile up customers

    session_for = reuse if shared_session else per_call

    async def lookup(probe: Probe) -> str:
        async with session_for() as session:
            return (await lookup_by_caller_id(session, probe.raw, REGION)).status

    async def bare(probe: Probe) -> str:
        async with session_for() as session:
            rows = (await session.execute(BARE, {"n": probe.e164})).scalars().all()
        return "unknown" if not rows else "found" if len(rows) == 1 else "ambiguous"

    async def timed(
        call: Callable[[Probe], Coroutine[Any, Any, str]], probe: Probe, into: list[int]
    ) -> str:
        began = time.perf_counter_ns()
        status = await call(probe)
        into.append(time.perf_counter_ns() - began)
        return status

    try:
        for probe in items[:WARM_UP]:  # connections, statement caches, the database's pages
            await lookup(probe)
            await bare(probe)
        timings = Timings([], [], Counter())
        profiler = cProfile.Profile() if profile else None
        for index, probe in enumerate(items):
            if profiler is not None:
                profiler.enable()
            # alternate which goes first, so neither always finds the other's cache warm
            if index % 2:
                await timed(bare, probe, timings.bare_ns)
                status = await timed(lookup, probe, timings.lookup_ns)
            else:
                status = await timed(lookup, probe, timings.lookup_ns)
                await timed(bare, probe, timings.bare_ns)
            if profiler is not None:
                profiler.disable()
            timings.outcomes[status + ("" if probe.known else " (of unknown numbers)")] += 1
        if profiler is not None:
            print("\n  where the time goes (lookup and bare query, cumulative):")
            pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(22)
        return timings
    finally:
        if shared is not None:
            await shared.close()


async def explain(engine: AsyncEngine, e164: str) -> list[str]:
    """The database's plan for the lookup's join (the statement lookup_by_caller_id runs)."""
    sqlite = engine.dialect.name == "sqlite"
    statement = (
        "SELECT phones.e164, customers.id, customers.name, customers.tier, customers.language "
        "FROM phones JOIN customers ON customers.id = phones.customer_id "
        "WHERE phones.e164 IN (:a, :b) "
        "AND customers.merged_into_id IS NULL AND customers.deleted_at IS NULL"
    )
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    async with engine.connect() as connection:
        rows = await connection.execute(text(prefix + statement), {"a": e164, "b": e164[1:]})
        return [str(row[-1]) for row in rows]


@asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    """A fresh, empty database URL of ``kind``, removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="cti-bench-") as directory:
            yield f"sqlite+aiosqlite:///{Path(directory) / 'crm.db'}"
        return
    reason = PostgresServer.unavailable_reason()
    if reason is not None:
        raise SystemExit(f"postgresql: {reason}")
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="cti-bench-pg-")))
    try:
        server.start()
        yield server.create_database("bench")
    finally:
        server.stop()


def peak_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _status_kib(field: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS: now, VmHWM: peak); None off Linux."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def _reset_peak() -> bool:
    """Start VmHWM afresh from the current resident set (Linux 4.0+)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class PhaseMemory:
    """Resident memory over one phase: before it, and its peak when that can be measured."""

    before_kib: int | None = None
    peak_kib: int | None = None

    def describe(self) -> str:
        if self.before_kib is None:
            return "not measurable here (no /proc/self/status)"
        before = self.before_kib / 1024
        if self.peak_kib is None:
            return f"{before:,.0f} MiB resident before; peak not measurable (no clear_refs)"
        peak = self.peak_kib / 1024
        return f"{peak:,.0f} MiB resident at peak, {peak - before:+,.0f} MiB over the {before:,.0f}"


@contextmanager
def phase_memory() -> Iterator[PhaseMemory]:
    """Measure the peak resident memory of the ``with`` block alone."""
    gc.collect()  # what seeding left behind is not the lookups' memory
    memory = PhaseMemory(before_kib=_status_kib("VmRSS"))
    reset = _reset_peak()
    yield memory
    if reset:
        memory.peak_kib = _status_kib("VmHWM")


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


async def run(kind: str, args: argparse.Namespace) -> None:
    print(f"\n== {kind}: seeding {args.customers:,} customers ...", flush=True)
    async with database(kind) as url:
        engine = make_engine(url)
        try:
            await upgrade(engine)
            step = max(1, args.customers // 10)
            marks = iter(range(step, args.customers + step, step))
            mark = next(marks)

            def progress(done: int) -> None:
                nonlocal mark
                if done >= mark:
                    print(f"   {done:>12,} customers", flush=True)
                    while done >= mark:
                        mark = next(marks, args.customers + 1)

            report = await seed_crm(engine, args.customers, seed=args.seed, progress=progress)
            print(
                f"   seeded in {report.seconds:.1f} s: {report.customers:,} customers "
                f"({report.organisations:,} organisations), {report.phones:,} phones, "
                f"{report.transactions:,} transactions, {report.interactions:,} interactions, "
                f"{report.cases:,} cases; tiers {report.tiers}"
            )
            rng = random.Random(args.seed)  # noqa: S311 - sampling, not secrets
            items = await probes(engine, args.lookups, rng)
            for line in await explain(engine, items[0].e164):
                print(f"   plan: {line}")
            with phase_memory() as memory:
                timings = await measure(
                    engine, items, shared_session=args.session == "shared", profile=args.profile
                )
        finally:
            await engine.dispose()
    lookup_ns, bare_ns = sorted(timings.lookup_ns), sorted(timings.bare_ns)
    lookup_p50, lookup_p99 = percentile(lookup_ns, 0.5), percentile(lookup_ns, 0.99)
    bare_p50, bare_p99 = percentile(bare_ns, 0.5), percentile(bare_ns, 0.99)
    ratio = lookup_p99 / bare_p99
    outcomes = ", ".join(f"{name} {count:,}" for name, count in sorted(timings.outcomes.items()))
    print(f"   {len(items):,} lookups ({args.session} session): {outcomes}")
    print(f"   {'':24}{'p50':>10}{'p99':>10}")
    print(
        f"   {'lookup_by_caller_id':24}{lookup_p50:>8.3f}ms{lookup_p99:>8.3f}ms"
        f"   target p99 < {TARGET_P99_MS:g} ms: {verdict(lookup_p99 < TARGET_P99_MS)}"
    )
    print(f"   {'bare indexed SELECT':24}{bare_p50:>8.3f}ms{bare_p99:>8.3f}ms")
    print(
        f"   ratio lookup p99 / bare p99: {ratio:.2f}"
        f"   target <= {TARGET_RATIO:g}: {verdict(ratio <= TARGET_RATIO)}"
    )
    print(f"   memory of the lookups: {memory.describe()}")
    print(
        f"   peak memory of this process so far, seeding included (ru_maxrss): "
        f"{peak_memory_mib():,.0f} MiB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--session", choices=("per-lookup", "shared"), default="per-lookup")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="cProfile the timed lookups")
    args = parser.parse_args()
    if args.customers < 1 or args.lookups < 1:
        parser.error("--customers and --lookups must be positive")
    kinds = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    for kind in kinds:
        asyncio.run(run(kind, args))


if __name__ == "__main__":
    main()
