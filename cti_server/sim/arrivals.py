"""When simulated customers call, how long they wait for an agent, how long the agent talks.

Either a Poisson process at a steady rate (the demo), or a replay of one day of the Anonymous
Bank's real calls (``callcenter_traffic``), ``speed`` times faster. Sped up, a caller's wait
for an agent and the agent's talk shrink by the same factor; the IVR in front cannot, so every
caller's patience is the IVR's time plus their scaled patience in the queue.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

IVR_SECONDS = 12.0  # the main flow, keys included, before the queue
MIN_TALK = 3.0
MIN_QUEUE_PATIENCE = 5.0


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float
    """Seconds from the start of the run."""
    patience: float
    """Seconds the caller stays on the line without an agent (IVR included)."""
    talk: float
    """Seconds the agent talks."""
    klass: int | None = None
    """The bank's priority class (0-2) when replayed; None otherwise."""


def poisson(
    rate_per_minute: float,
    rng: random.Random,
    *,
    mean_patience: float = 60.0,
    mean_talk: float = 20.0,
) -> Iterator[Arrival]:
    """Endless arrivals at ``rate_per_minute``; patience and talk exponential around means."""
    if rate_per_minute <= 0:
        raise ValueError("the arrival rate must be positive")
    at = 0.0
    while True:
        at += rng.expovariate(rate_per_minute / 60.0)
        yield Arrival(
            at=at,
            patience=IVR_SECONDS + max(MIN_QUEUE_PATIENCE, rng.expovariate(1 / mean_patience)),
            talk=max(MIN_TALK, rng.expovariate(1 / mean_talk)),
        )


def bank_day(path: Path, day: date, speed: float) -> list[Arrival]:
    """The calls of ``day`` in the bank data, arriving ``speed`` times faster."""
    from cti_server.routing.traffic import load_traffic  # noqa: PLC0415 - reads a large file

    if speed <= 0:
        raise ValueError("the speed must be positive")
    calls = sorted(load_traffic(path, [day]).calls, key=lambda c: c.arrival)
    if not calls:
        raise ValueError(f"{path.name}: no calls on {day.isoformat()}")
    start = calls[0].arrival
    return [
        Arrival(
            at=(call.arrival - start) / speed,
            patience=IVR_SECONDS + max(MIN_QUEUE_PATIENCE, call.patience / speed),
            talk=max(MIN_TALK, call.handle / speed),
            klass=call.klass,
        )
        for call in calls
    ]
