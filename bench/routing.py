"""Routing decision latency with 1,000 agents and 1,000 waiting calls, beside a full scan.

    .venv/bin/python bench/routing.py [--agents N] [--calls N] [--seed S]

Two situations, each measured per assignment with the decision core
(:func:`cti_server.routing.core.assignments`) and, in the same run, with the full scan that
checks every call against every agent (:mod:`cti_server.routing.reference`):

* **one agent freed**: all calls waiting, one agent just became available, the others busy
  or paused: what the live router does most of the time. One whole ``decide()`` per
  assignment, every index and heap built from scratch, as the pure core always does.
* **all agents free**: every agent available at once (a morning start, a reload): one
  ``decide()`` hands out up to a thousand calls; each assignment is timed as it is produced.

Both give identical assignments (checked here too). It prints figures beside the target
(p99 < 1 ms per assignment) and never fails on them.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: the repo root is the import root
    sys.path.insert(0, str(ROOT))

from cti_server.events import AgentState  # noqa: E402
from cti_server.routing.core import assignments  # noqa: E402
from cti_server.routing.model import Agent, Assignment, WaitingCall  # noqa: E402
from cti_server.routing.policy import Policy, builtin_policy  # noqa: E402
from cti_server.routing.reference import full_scan_assignments  # noqa: E402

NOW = 1_000_000.0
SKILLS = [f"skill{n:02d}" for n in range(20)]
TIERS = ["platinum", "gold", "silver", "standard", "standard", "standard"]

Decider = Callable[[Sequence[WaitingCall], Sequence[Agent], Policy, float], Iterator[Assignment]]


def centre(rng: random.Random, agents: int, calls: int) -> tuple[list[Agent], list[WaitingCall]]:
    """A large centre: 20 skills, three languages, an overflow group, a realistic mix."""
    staff = [
        Agent(
            f"agent{n:04d}",
            skills={s: rng.randint(1, 10) for s in rng.sample(SKILLS, rng.randint(1, 4))},
            languages=frozenset(
                ["zh"] * (rng.random() < 0.9) + ["en"] * (rng.random() < 0.3) or ["yue"]
            ),
            idle_since=NOW - rng.uniform(0, 600),
            occupancy=rng.random(),
            group="overflow" if rng.random() < 0.1 else "agents",
        )
        for n in range(agents)
    ]
    waiting = [
        WaitingCall(
            f"call{n:04d}",
            queued_at=NOW - rng.uniform(0, 300),
            tier=rng.choice(TIERS),
            value_score=rng.random(),
            skills=frozenset(rng.sample(SKILLS, 1 if rng.random() < 0.8 else 2)),
            language="zh" if rng.random() < 0.85 else "en",
            preferred_agent=rng.choice(staff).id if rng.random() < 0.1 else None,
            callback=rng.random() < 0.05,
        )
        for n in range(calls)
    ]
    return staff, waiting


def one_freed(rng: random.Random, staff: list[Agent]) -> list[Agent]:
    busy = [AgentState.ON_CALL, AgentState.ON_CALL, AgentState.WRAP_UP, AgentState.PAUSED]
    freed = rng.randrange(len(staff))
    return [a if i == freed else replace(a, state=rng.choice(busy)) for i, a in enumerate(staff)]


def time_decisions(
    decider: Decider,
    situations: Sequence[list[Agent]],
    calls: list[WaitingCall],
    policy: Policy,
) -> tuple[list[float], list[Assignment]]:
    """Seconds per assignment: a whole decide() when it makes one (the others made none)."""
    latencies: list[float] = []
    made: list[Assignment] = []
    for agents in situations:
        started = time.perf_counter()
        result = list(decider(calls, agents, policy, NOW))
        elapsed = time.perf_counter() - started
        if result:
            latencies.append(elapsed / len(result))
            made += result
    return latencies, made


def time_each(
    decider: Decider, agents: list[Agent], calls: list[WaitingCall], policy: Policy
) -> tuple[list[float], list[Assignment]]:
    """Seconds for each assignment as one decide() produces them (setup in the first)."""
    latencies: list[float] = []
    made: list[Assignment] = []
    produced = decider(calls, agents, policy, NOW)
    while True:
        started = time.perf_counter()
        assignment = next(produced, None)
        elapsed = time.perf_counter() - started
        if assignment is None:
            return latencies, made
        latencies.append(elapsed)
        made.append(assignment)


def percentile(values: list[float], q: int) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


def line(name: str, core: list[float], scan: list[float]) -> str:
    c50, c99 = percentile(core, 50) * 1e3, percentile(core, 99) * 1e3
    s50, s99 = percentile(scan, 50) * 1e3, percentile(scan, 99) * 1e3
    return (
        f"{name:<18} {c50:>9.3f} {c99:>9.3f}   {s50:>9.2f} {s99:>9.2f}   "
        f"{s50 / c50:>6.0f}x {s99 / c99:>6.0f}x   {len(core):>5} / {len(scan):<5}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--freed", type=int, default=500, help="one-agent-freed decisions")
    parser.add_argument("--freed-scan", type=int, default=30, help="the same, full scan")
    args = parser.parse_args()

    rng = random.Random(args.seed)  # noqa: S311 - a reproducible centre, not a secret
    policy = builtin_policy("default")
    staff, calls = centre(rng, args.agents, args.calls)
    situations = [one_freed(rng, staff) for _ in range(args.freed)]

    core_freed, made_freed = time_decisions(assignments, situations, calls, policy)
    scan_freed, made_scan = time_decisions(
        full_scan_assignments, situations[: args.freed_scan], calls, policy
    )
    core_all, made_all = time_each(assignments, staff, calls, policy)
    scan_all, made_all_scan = time_each(full_scan_assignments, staff, calls, policy)
    same = made_all == made_all_scan and made_scan == made_freed[: len(made_scan)]

    print(f"routing decisions: {args.agents} agents, {args.calls} waiting calls, policy default")
    print(
        f"{'':<18} {'core, ms per assignment':>19}   {'full scan, ms':>19}   "
        f"{'full scan / core':>15}   {'assignments':>13}"
    )
    print(
        f"{'situation':<18} {'p50':>9} {'p99':>9}   {'p50':>9} {'p99':>9}   "
        f"{'p50':>7} {'p99':>7}   {'core / scan':>13}"
    )
    print(line("one agent freed", core_freed, scan_freed))
    print(line("all agents free", core_all, scan_all))
    worst = max(percentile(core_freed, 99), percentile(core_all, 99)) * 1e3
    print(
        f"target p99 < 1 ms per assignment: {'met' if worst < 1 else 'NOT met'} "
        f"(worst p99 {worst:.3f} ms); same assignments as the full scan: "
        f"{'yes' if same else 'NO'}"
    )
    print(
        f"all agents free: one decide() of {len(made_all)} assignments took "
        f"{sum(core_all) * 1e3:.1f} ms (full scan {sum(scan_all) * 1e3:.0f} ms)"
    )


if __name__ == "__main__":
    main()
