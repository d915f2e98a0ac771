"""The contacts a forecast learns from, and their counts per queue and interval.

Two sources give the same plain :class:`Contact` records: the CRM's interactions (every call
that reached a queue, answered or not) and a traffic file in the bank's format (read by
:func:`cti_server.routing.traffic.load_traffic`). Times are local wall-clock times (the
calendar's time zone): the daily pattern follows the local clock, not UTC.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Protocol

from cti_server.routing.traffic import Traffic
from cti_server.staffing.erlang import StaffingError

ALL_QUEUES = "all"
"""The queue name under which every queue's contacts are counted together too."""


@dataclass(frozen=True, slots=True)
class Contact:
    arrived: datetime
    """Local wall-clock time (naive) the caller reached the queue."""
    queue: str
    waited_s: float
    """Seconds in the queue until answered or until they hung up."""
    answered: bool
    handle_s: float | None
    """Seconds an agent spent on the call (answered calls)."""


@dataclass(frozen=True, slots=True)
class Load:
    """What one queue saw in one interval."""

    offered: int = 0
    answered: int = 0
    handle_total_s: float = 0.0

    @property
    def handle_s(self) -> float | None:
        """Mean handle time of the calls answered, or None when none was."""
        return self.handle_total_s / self.answered if self.answered else None

    def __add__(self, other: Load) -> Load:
        return Load(
            self.offered + other.offered,
            self.answered + other.answered,
            self.handle_total_s + other.handle_total_s,
        )


class InteractionRow(Protocol):
    """The columns of ``crm_core.models.Interaction`` a forecast reads."""

    @property
    def arrived_at(self) -> datetime | None: ...
    @property
    def queued_at(self) -> datetime | None: ...
    @property
    def answered_at(self) -> datetime | None: ...
    @property
    def ended_at(self) -> datetime | None: ...
    @property
    def queue(self) -> str | None: ...


def from_interactions(rows: Iterable[InteractionRow], zone: tzinfo) -> Iterator[Contact]:
    """The CRM's interactions that reached a queue, at local times in ``zone``.

    Naive datetimes (SQLite returns them) are taken as UTC, as the CRM writes them.
    """
    for row in rows:
        entered = row.queued_at or row.arrived_at
        if row.queue is None or entered is None:
            continue
        left = row.answered_at or row.ended_at or entered
        handle = None
        if row.answered_at is not None and row.ended_at is not None:
            handle = max(0.0, (row.ended_at - row.answered_at).total_seconds())
        yield Contact(
            arrived=_local(entered, zone),
            queue=row.queue,
            waited_s=max(0.0, (left - entered).total_seconds()),
            answered=row.answered_at is not None,
            handle_s=handle,
        )


def _local(moment: datetime, zone: tzinfo) -> datetime:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(zone).replace(tzinfo=None)


def from_traffic(traffic: Traffic, first_day: date) -> Iterator[Contact]:
    """The calls of a traffic file (loaded with every day, so that ``first_day`` is the
    file's first day: arrivals count seconds from its midnight), queue = service type."""
    midnight = datetime.combine(first_day, datetime.min.time())
    for call in traffic.calls:
        answered = call.observed == "served"
        yield Contact(
            arrived=midnight + timedelta(seconds=call.arrival),
            queue=call.kind,
            waited_s=call.observed_wait,
            answered=answered,
            handle_s=call.handle if answered else None,
        )


@dataclass(frozen=True, slots=True)
class History:
    """Per queue (and ``all``), per interval start: the load seen; days with no call at all
    are absent from ``loads`` but present in ``days`` when the range covered them."""

    minutes: int
    days: tuple[date, ...]
    loads: dict[str, dict[datetime, Load]]

    @property
    def queues(self) -> list[str]:
        return sorted(q for q in self.loads if q != ALL_QUEUES)

    def load(self, queue: str, start: datetime) -> Load:
        return self.loads.get(queue, {}).get(start, Load())

    def slots(self, day: date) -> list[datetime]:
        """The interval starts of ``day``."""
        midnight = datetime.combine(day, datetime.min.time())
        return [midnight + timedelta(minutes=m) for m in range(0, 24 * 60, self.minutes)]

    def between(self, first: date, last: date) -> History:
        """The same history restricted to ``first..last``."""
        days = tuple(d for d in self.days if first <= d <= last)
        return History(
            self.minutes,
            days,
            {
                queue: {s: load for s, load in loads.items() if first <= s.date() <= last}
                for queue, loads in self.loads.items()
            },
        )


def count(contacts: Iterable[Contact], minutes: int = 30, days: Iterable[date] = ()) -> History:
    """Contacts per queue and ``minutes``-long interval (15, 30 or another divisor of an hour)."""
    if minutes <= 0 or 60 % minutes:
        raise StaffingError(f"interval of {minutes} minutes: it must divide an hour (15, 30, 60)")
    loads: defaultdict[str, defaultdict[datetime, Load]] = defaultdict(lambda: defaultdict(Load))
    seen: set[date] = set(days)
    for contact in contacts:
        moment = contact.arrived
        start = moment.replace(
            minute=moment.minute - moment.minute % minutes, second=0, microsecond=0
        )
        answered = contact.answered and contact.handle_s is not None
        one = Load(1, int(answered), (contact.handle_s or 0.0) if answered else 0.0)
        for queue in (contact.queue, ALL_QUEUES):
            loads[queue][start] += one
        seen.add(start.date())
    span = _every_day(seen)
    return History(minutes, span, {q: dict(v) for q, v in loads.items()})


def _every_day(days: set[date]) -> tuple[date, ...]:
    if not days:
        return ()
    first, last = min(days), max(days)
    return tuple(first + timedelta(days=n) for n in range((last - first).days + 1))
