"""Recorded call-centre traffic for the what-if simulator: the Anonymous Bank, August 1999.

One row per call (see ``call-centre_field_description.md`` beside the data). What the
simulator takes from it:

* **Arrivals**: calls that reached the queue arrive at ``q_start``. Calls an agent took at
  once leave the voice unit straight into service (``ser_start``); they arrive then, and the
  data cannot tell their priority (a known bug: it is recorded as 0 for them), so their class
  is ``None``: they are routed as standard callers and counted only in the "all" row.
  Calls that hung up in the voice unit, ``PHANTOM`` rows and calls "served" by
  ``NO_SERVER`` never reached an agent: dropped.
* **Class**: the recorded priority 0, 1 or 2, routed as tiers ``prospect``, ``standard`` and
  ``gold``. Class 2 are the bank's priority customers (credited 90 virtual seconds); class 0,
  which the documentation says was treated as class 1, is 95 % prospective customers (NW) and
  internet users (IN), and the agents' choices show them 90 s behind class 1
  (:func:`observed_lead`, the ``bank-observed`` policy). A policy without a ``prospect`` tier
  routes them as its default tier.
* **Handle time**: ``ser_time`` of served calls; a caller who hung up had none, so one is
  drawn from the served calls of the same service type.
* **After-call time**: the data records no wrap-up, but it shows agents leaving gaps
  between two services while callers of a type they serve were waiting: time they were not
  ready (wrap-up, a word with a colleague, a short break, no longer than ``break_after``;
  24 s on average in August). Every simulated call is followed by such a gap, drawn from all
  of them; without it the replay has too much capacity (in the first week, class 1 and 2
  waits come out at 70-80 % of those observed).
* **Patience**: see :mod:`cti_server.routing.patience`.
* **Staffing**: the agents named in the data, each on duty from the start of a service to the
  end of their last one unless they served nobody for longer than ``break_after`` seconds (a
  break or the end of a shift; 10 minutes: of 5, 10, 15, 20 and 30, the one that brought the
  first week of August nearest its recorded class 0 figures under ``bank-observed``). Their
  skill levels grow with the share of their calls of a type over the whole file (1..10); in each
  shift they take only the types they served in it: the bank put its agents on prospects or on
  internet users day by day (AVI: prospects only on 1-3 August, internet users only on the 4th
  and 5th), and an agent with a month's skills would serve both queues every day. Within a
  shift too: an agent who took a call straight from the voice unit (free and ready) while a
  caller of another of the shift's types was waiting was not taking that type then, and is
  off it from their service of it before that moment to their next one (or the shift's start
  or end). Such moments are rare between two services of a type and several times as frequent
  outside them (:mod:`cti_server.routing.simulator` has the figures).
"""

from __future__ import annotations

import csv
import gzip
import io
import random
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date
from itertools import accumulate, pairwise
from pathlib import Path
from typing import Literal

from cti_server.routing.patience import PatienceModel

CLASS_TIERS = {0: "prospect", 1: "standard", 2: "gold"}
DEFAULT_BREAK_S = 10 * 60.0
DAY = 86400.0

Outcome = Literal["served", "abandoned"]


class TrafficError(ValueError):
    """A traffic file that cannot be read; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class TrafficCall:
    id: str
    arrival: float
    """Seconds since midnight of the first day in the file."""
    klass: int | None
    """Recorded priority 0, 1 or 2; None when the data cannot tell (served at once)."""
    kind: str
    """Service type (PS, PE, IN, NE, NW, TT), the skill the call needs."""
    handle: float
    after_call: float
    """Seconds the agent stays not ready after the call (drawn from the data, see below)."""
    patience: float
    observed_wait: float
    observed: Outcome
    customer: str | None


@dataclass(frozen=True, slots=True)
class Shift:
    agent: str
    start: float
    end: float
    kinds: frozenset[str] | None = None
    """The service types the agent took in this shift (or this part of it, see above); None:
    every type of their skills. Consecutive parts of a shift abut (one's end is the next's
    start)."""


@dataclass(frozen=True, slots=True)
class Traffic:
    calls: tuple[TrafficCall, ...]
    shifts: tuple[Shift, ...]
    skills: dict[str, dict[str, int]]
    """Per agent: service type to level."""
    days: tuple[date, ...]


@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    day: int
    klass: int | None
    kind: str
    arrival: float
    wait: float
    served: bool
    service_start: float
    handle: float
    agent: str | None
    customer: str | None


def _clock(value: str) -> float:
    hours, minutes, seconds = value.split(":")
    return int(hours) * 3600.0 + int(minutes) * 60.0 + int(seconds)


def _after(moment: float, reference: float) -> float:
    """``moment`` (a time of day) on the day of ``reference`` or the next, never before it."""
    return moment + DAY if moment < reference - 60 else moment


def _rows(lines: Iterable[str], name: str) -> Iterator[tuple[date, _Row]]:
    first: date | None = None
    reader = csv.DictReader(lines)
    for record in reader:
        try:
            day = date.fromisoformat(record["date"])
            first = first or day
            row = _row(record, day, first)
        except KeyError as exc:
            raise TrafficError(f"{name}: no column {exc} (see the field description)") from None
        except (ValueError, AttributeError) as exc:
            raise TrafficError(f"{name}: line {reader.line_num}: {exc}") from None
        if row is not None:
            yield day, row


def _row(record: dict[str, str], day: date, first: date) -> _Row | None:
    offset = (day - first).days * DAY
    queued = record["q_start"] != "0:00:00"
    served = record["outcome"] == "AGENT"
    if record["outcome"] == "PHANTOM" or not (queued or served):
        return None
    if served and record["server"] == "NO_SERVER":
        return None  # "served" by no agent (a few hundred, seconds long): not agent work
    queued_at = _clock(record["q_start"])
    start = 0.0
    if served:
        service = _clock(record["ser_start"])
        start = offset + (_after(service, queued_at) if queued else service)
    return _Row(
        id=f"{record['date']}/{record['vru+line']}/{record['call_id']}",
        day=(day - first).days,
        klass=int(record["priority"]) if queued else None,
        kind=record["type"],
        arrival=offset + queued_at if queued else start,
        wait=float(record["q_time"]) if queued else 0.0,
        served=served,
        service_start=start,
        handle=float(record["ser_time"]),
        agent=record["server"] if served else None,
        customer=record["customer_id"] if record["customer_id"] not in ("", "0") else None,
    )


def _read(path: Path) -> list[tuple[date, _Row]]:
    try:
        raw = path.read_bytes()
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        lines = io.StringIO(text.decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise TrafficError(f"{path}: cannot read: {exc}") from None
    rows = list(_rows(lines, path.name))
    if not rows:
        raise TrafficError(f"{path.name}: no call reached an agent or the queue")
    return rows


def parse_days(spec: str) -> list[date]:
    """``2024-01-01`` or ``FIRST..LAST`` (inclusive) as a list of dates."""
    first, _, last = spec.partition("..")
    try:
        start = date.fromisoformat(first)
        end = date.fromisoformat(last) if last else start
    except ValueError:
        raise TrafficError(f"days {spec!r}: expected YYYY-MM-DD or FIRST..LAST") from None
    if end < start:
        raise TrafficError(f"days {spec!r}: the last day is before the first")
    return [date.fromordinal(n) for n in range(start.toordinal(), end.toordinal() + 1)]


def load_traffic(
    path: Path,
    days: Iterable[date] | None = None,
    *,
    break_after: float = DEFAULT_BREAK_S,
    seed: int = 1999,
) -> Traffic:
    """The calls and the staffing of ``days`` (all days if None) in the CSV (or .csv.gz) file.

    Deterministic for a given ``seed``. Skills and patience are estimated on every day in the
    file, the calls and shifts are those of ``days``.
    """
    everything = _read(path)
    wanted = set(days) if days is not None else {d for d, _ in everything}
    rows = [row for day, row in everything if day in wanted]
    if not rows:
        raise TrafficError(f"{path.name}: no calls on the days asked for")
    all_rows = [row for _, row in everything]
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
    patience = PatienceModel.fit(
        (r.klass, r.kind, r.wait, not r.served) for r in all_rows if r.klass is not None
    )
    gaps = _not_ready_gaps(all_rows, break_after) or [0.0]
    handles: defaultdict[str, list[float]] = defaultdict(list)
    for r in all_rows:
        if r.served:
            handles[r.kind].append(r.handle)
            handles[""].append(r.handle)  # for a type nobody was served in
    calls = tuple(
        TrafficCall(
            id=r.id,
            arrival=r.arrival,
            klass=r.klass,
            kind=r.kind,
            handle=r.handle
            if r.served
            else rng.choice(handles.get(r.kind) or handles[""] or [0.0]),
            patience=patience.sample(r.klass, r.kind, r.wait, abandoned=not r.served, rng=rng),
            after_call=rng.choice(gaps),
            observed_wait=r.wait,
            observed="served" if r.served else "abandoned",
            customer=r.customer,
        )
        for r in sorted(rows, key=lambda r: (r.arrival, r.id))
    )
    return Traffic(
        calls=calls,
        shifts=tuple(_shifts(rows, break_after)),
        skills=_skills(all_rows),
        days=tuple(sorted(wanted)),
    )


def _shifts(rows: list[_Row], break_after: float) -> Iterator[Shift]:
    waiting = _Waiting(rows)
    at_once: defaultdict[str, list[tuple[float, str]]] = defaultdict(list)
    for r in rows:
        if r.agent is not None and r.klass is None:
            at_once[r.agent].append((r.service_start, r.kind))
    for agent, spans in sorted(_services(rows).items()):
        (start, end, kind), *rest = spans
        kinds = {kind}
        shift = [spans[0]]
        for begin, finish, kind in rest:
            if begin - end > break_after:
                yield from _by_type(
                    Shift(agent, start, end, frozenset(kinds)), shift, at_once, waiting
                )
                start, kinds, shift = begin, set(), []
            end = max(end, finish)
            kinds.add(kind)
            shift.append((begin, finish, kind))
        yield from _by_type(Shift(agent, start, end, frozenset(kinds)), shift, at_once, waiting)


def _by_type(
    shift: Shift,
    spans: list[tuple[float, float, str]],
    at_once: dict[str, list[tuple[float, str]]],
    waiting: _Waiting,
) -> Iterator[Shift]:
    """``shift`` in consecutive parts, each with the types the agent took in it.

    An agent who took a call straight from the voice unit (so was free and ready) while a caller
    of another type of the shift was waiting did not take that type then: they are off it from
    their service of it before that moment to their next one (or the shift's start or end).
    """
    every = shift.kinds or frozenset()
    off: list[tuple[float, float, str]] = []
    for moment, taken in at_once.get(shift.agent, []):
        if not shift.start <= moment <= shift.end:
            continue
        for kind in every - {taken}:
            if waiting.at(kind, moment):
                before = [finish for begin, finish, k in spans if k == kind and begin < moment]
                after = [begin for begin, _, k in spans if k == kind and begin > moment]
                off.append((max(before, default=shift.start), min(after, default=shift.end), kind))
    cuts = sorted({shift.start, shift.end, *(t for a, b, _ in off for t in (a, b))})
    parts: list[Shift] = []
    for begin, end in pairwise(cuts):
        middle = (begin + end) / 2
        kinds = every - {kind for a, b, kind in off if a <= middle <= b}
        if parts and parts[-1].kinds == kinds and parts[-1].end == begin:
            parts[-1] = replace(parts[-1], end=end)
        elif kinds:
            parts.append(Shift(shift.agent, begin, end, kinds))
    return iter(parts)


class _Waiting:
    """Who was waiting in each service type's queue, as recorded."""

    def __init__(self, rows: list[_Row]) -> None:
        queued: defaultdict[str, list[tuple[float, float]]] = defaultdict(list)
        for r in rows:
            if r.klass is not None and r.wait > 0:
                queued[r.kind].append((r.arrival, r.arrival + r.wait))
        self._queued = {kind: sorted(spans) for kind, spans in queued.items()}
        self._arrivals = {kind: [a for a, _ in spans] for kind, spans in self._queued.items()}
        self._longest = max((b - a for s in self._queued.values() for a, b in s), default=0.0)

    def at(self, kind: str, moment: float) -> bool:
        """Whether a caller of ``kind`` had been waiting before ``moment`` and still was after."""
        arrivals = self._arrivals.get(kind, [])
        first = bisect_left(arrivals, moment - self._longest)
        last = bisect_left(arrivals, moment)
        return any(left > moment for _, left in self._queued[kind][first:last]) if last else False


def _skills(rows: list[_Row]) -> dict[str, dict[str, int]]:
    served: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        if r.agent is not None:
            served[r.agent][r.kind] += 1
    skills = {}
    for agent, kinds in served.items():
        most = max(kinds.values())
        skills[agent] = {kind: max(1, round(10 * n / most)) for kind, n in kinds.items()}
    return skills


def _services(rows: list[_Row]) -> dict[str, list[tuple[float, float, str]]]:
    """Per agent: (start, end, service type) of each service, in order."""
    services: defaultdict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for r in rows:
        if r.agent is not None:
            services[r.agent].append((r.service_start, r.service_start + r.handle, r.kind))
    for spans in services.values():
        spans.sort()
    return services


def _not_ready_gaps(rows: list[_Row], break_after: float) -> list[float]:
    """Gaps (shorter than a break) between an agent's consecutive services while callers of a
    type the agent serves were waiting (at the gap's start, middle and end)."""
    changes: defaultdict[str, list[tuple[float, int]]] = defaultdict(list)
    kinds: defaultdict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r.klass is not None and r.wait > 0:
            changes[r.kind] += [(r.arrival, 1), (r.arrival + r.wait, -1)]
        if r.agent is not None:
            kinds[r.agent].add(r.kind)
    queues = {}
    for kind, steps in changes.items():
        steps.sort()
        queues[kind] = ([t for t, _ in steps], list(accumulate(step for _, step in steps)))

    def waiting(kind: str, moment: float) -> int:
        times, counts = queues.get(kind, ([], []))
        index = bisect_right(times, moment) - 1
        return counts[index] if index >= 0 else 0

    gaps = []
    for agent, spans in _services(rows).items():
        for (_, end, _), (begin, _, _) in pairwise(spans):
            gap = begin - end
            if not 0 <= gap <= break_after:
                continue
            moments = (end + 0.5, (end + begin) / 2, begin - 0.5) if gap >= 1 else (end,)
            if all(any(waiting(k, m) for k in kinds[agent]) for m in moments):
                gaps.append(gap)
    return gaps


@dataclass(frozen=True, slots=True)
class Lead:
    """How far ahead the centre put one class of callers over another, read from its choices."""

    seconds: float
    """The head start that explains the most choices (the smallest such, to ``step``)."""
    choices: int
    """Services where the agent chose between a waiting caller of each class."""
    explained: float
    """Share of those choices the head start explains."""


def observed_lead(
    path: Path,
    days: Iterable[date] | None = None,
    *,
    ahead: int,
    behind: int,
    step: float = 5.0,
    most: float = 900.0,
) -> Lead:
    """The head start class ``ahead`` had over class ``behind`` in the recorded decisions.

    At each service of a caller of either class, the agent chose between the longest-waiting
    caller of each class (among the service types the agent took that day). A head start of
    ``H`` s explains the choice when the ``ahead`` caller was taken while the other had waited
    less than ``H`` s longer, or the other was taken while it had waited ``H`` s longer or more.
    """
    everything = _read(path)
    wanted = set(days) if days is not None else {d for d, _ in everything}
    rows = [row for day, row in everything if day in wanted]
    kinds: defaultdict[tuple[str, int], set[str]] = defaultdict(set)
    for r in rows:
        if r.agent is not None:
            kinds[r.agent, r.day].add(r.kind)
    queued = sorted(
        (r for r in rows if r.klass in (ahead, behind) and r.wait > 0), key=lambda r: r.arrival
    )
    arrivals = [r.arrival for r in queued]
    longest = max((r.wait for r in queued), default=0.0)
    gaps: list[tuple[float, bool]] = []  # (how much later the ahead caller came, taken?)
    for served in queued:
        if served.agent is None:
            continue
        moment, types = served.service_start, kinds[served.agent, served.day]
        oldest: dict[int, _Row] = {}
        start = bisect_right(arrivals, moment - longest - 1)
        for r in queued[start : bisect_right(arrivals, moment)]:
            waiting = r is served or r.arrival + r.wait > moment
            if waiting and r.kind in types and r.klass is not None:
                oldest.setdefault(r.klass, r)
                if len(oldest) == 2:
                    break
        if len(oldest) == 2 and served.klass is not None and oldest[served.klass] is served:
            gaps.append((oldest[ahead].arrival - oldest[behind].arrival, served.klass == ahead))
    if not gaps:
        raise TrafficError(f"{path.name}: no choice between classes {ahead} and {behind}")
    best, explained = 0.0, -1
    for n in range(int(most / step) + 1):
        count = sum(taken == (later < n * step) for later, taken in gaps)
        if count > explained:
            best, explained = n * step, count
    return Lead(seconds=best, choices=len(gaps), explained=explained / len(gaps))
