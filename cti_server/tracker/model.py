"""The live model: calls (one per linkedid, with legs), agents and queues, as state machines.

Each entity changes state only through :func:`move`, which knows the legal transitions; an
illegal one is logged and ignored, never fatal (events arrive late, twice, or after a resync).
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from cti_server.events import (
    AgentState,
    CallOutcome,
    CallState,
    HandoverKind,
    HungUpBy,
    SegmentHow,
)

log = logging.getLogger(__name__)


CALL_TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    CallState.ARRIVED: frozenset(
        {CallState.QUEUED, CallState.OFFERED, CallState.ANSWERED, CallState.ENDED}
    ),
    CallState.QUEUED: frozenset({CallState.OFFERED, CallState.ANSWERED, CallState.ENDED}),
    CallState.OFFERED: frozenset(
        {CallState.QUEUED, CallState.OFFERED, CallState.ANSWERED, CallState.ENDED}
    ),
    CallState.ANSWERED: frozenset({CallState.QUEUED, CallState.ENDED}),  # transfer to a queue
    CallState.ENDED: frozenset(),
}

AGENT_TRANSITIONS: dict[AgentState, frozenset[AgentState]] = {
    AgentState.LOGGED_OUT: frozenset({AgentState.AVAILABLE, AgentState.PAUSED}),
    AgentState.AVAILABLE: frozenset(
        {
            AgentState.RINGING,
            AgentState.ON_CALL,
            AgentState.PAUSED,
            AgentState.LOGGED_OUT,
            AgentState.WRAP_UP,  # the phone went idle just before app_queue's AgentComplete
        }
    ),
    AgentState.RINGING: frozenset(
        {AgentState.ON_CALL, AgentState.AVAILABLE, AgentState.PAUSED, AgentState.LOGGED_OUT}
    ),
    AgentState.ON_CALL: frozenset(
        {AgentState.WRAP_UP, AgentState.AVAILABLE, AgentState.PAUSED, AgentState.LOGGED_OUT}
    ),
    AgentState.WRAP_UP: frozenset(
        {
            AgentState.AVAILABLE,
            AgentState.PAUSED,
            AgentState.RINGING,
            AgentState.ON_CALL,
            AgentState.LOGGED_OUT,
        }
    ),
    AgentState.PAUSED: frozenset(
        {AgentState.AVAILABLE, AgentState.LOGGED_OUT, AgentState.ON_CALL, AgentState.RINGING}
    ),
}

S = TypeVar("S", CallState, AgentState)


def move(current: S, target: S, table: dict[S, frozenset[S]], what: str, name: str = "") -> bool:
    """True if ``current`` may become ``target``; an illegal step is logged, not raised. The
    entity is ``what`` (call, agent) ``name``, put together only to be logged."""
    if current == target:
        return False
    if target in table[current]:
        return True
    log.info("ignored illegal transition of %s %s: %s -> %s", what, name, current, target)
    return False


@dataclass
class Leg:
    uniqueid: str
    channel: str
    state: str
    created_at: datetime
    hung_up_at: datetime | None = None
    cause: int = 0


HANDOVER_KINDS = ("attended", "blind", "blonde", "pickup", "forward", "redirect", "park")
"""How a new party can take the customer over; the first answerer's segment says "answer"
unless it took the call by a pickup or a forward."""


@dataclass
class Segment:
    """One party the customer talked to: who, from when to when, and how they got the customer.

    ``leg`` is the party's channel (uniqueid) while the segment is open; ``party`` is its device
    (``PJSIP/1002``; a Local channel where no phone stands behind it)."""

    leg: str
    how: SegmentHow
    by: str
    started_at: datetime
    began: int = 0  # the tracker's event count when it began
    party: str = ""
    extension: str = ""
    agent: str = ""
    ended_at: datetime | None = None
    published: bool = False  # its CallTransferred went out (the first answer's needs none)
    came_from: str = ""  # for a first party by pickup or forward: the phone that rang
    bridge: str = ""  # the customer's bridge when it began (a Local pair may leave it)
    fixed: bool = False  # who the party is is settled (the leg now stands for another)
    queued: bool = False  # app_queue connected the party (it tells the end: AgentComplete)
    wrapped: bool = False  # the party's wrap-up for it has begun

    @property
    def seconds(self) -> float:
        if self.ended_at is None:
            return 0.0
        return round(max(0.0, (self.ended_at - self.started_at).total_seconds()), 3)

    def as_dict(self) -> dict[str, Any]:
        return {
            "party": self.party,
            "extension": self.extension,
            "agent": self.agent,
            "how": self.how,
            "by": self.by,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "seconds": self.seconds,
        }


@dataclass
class HandoverLabel:
    """What Asterisk said of a hand-over under way (a transfer, pickup, forward or park), kept
    until the customer is with a new party: the bridges say *that* it happened, this says how."""

    kind: HandoverKind
    by: str  # the device that made it
    target: str = ""  # the target's leg, when known
    from_party: str = ""  # the device the customer leaves, when it is not the current party
    merge: bool = False  # the target's own call is absorbed (a pickup's picker)


@dataclass
class Call:
    node: str
    linkedid: str
    caller_uniqueid: str
    caller_number: str
    caller_name: str
    dialed: str
    arrived_at: datetime
    state: CallState = CallState.ARRIVED
    legs: dict[str, Leg] = field(default_factory=dict)
    queue: str = ""
    agent: str = ""
    answerer: str = ""  # channel that answered, when no queue agent did
    queued_at: datetime | None = None
    offered_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    abandoned: bool = False
    dialled_out: bool = False
    caller_bridge: str = ""
    bridge_leaves: dict[str, list[str]] = field(default_factory=dict)  # bridge -> leg uniqueids
    hung_up_by: HungUpBy = ""
    waits: list[str] = field(default_factory=list)
    """Queues the caller waits for now, outermost first: a caller withdrawn from a waiting queue
    into an agent's queue (routing) waits for both until answered or gone."""
    waiting_leg: str = ""  # uniqueid of the channel in the queue: its hang-up ends the waits
    reached: dict[str, str] = field(default_factory=dict)
    """Dialling leg -> the phone (not a Local channel) its answered dial reached, uniqueids."""
    reach_pending: dict[str, str] = field(default_factory=dict)
    """Far half of a Local pair whose answered dial reached no phone yet -> the leg that dialled
    the pair: the far half's own dial may end ANSWER after the dial through the pair did."""
    caller_party: str = ""
    """The caller side's phone: the caller's own leg, or for an originated call (whose first leg
    is a Local channel) the phone its other half reached (a click-to-dial's agent); a Local
    caller whose other half reaches no phone stands for the caller (see ``stand_ins``)."""
    answerer_leg: str = ""
    """The phone that answered the caller's dial (or the agent's leg AgentConnect names, when
    no answered dial was seen), or took over by transfer."""
    stand_ins: set[str] = field(default_factory=set)
    """Local channels standing for a party whose far half reached no phone (it answered itself:
    a simulated customer or agent, an application): the party is that Local leg until a phone
    is found behind it."""
    last_left: dict[str, int] = field(default_factory=dict)
    """Leg -> when (the tracker's event count) it last left a bridge: the phone of the two that
    left first ended the conversation (hang-up events of the two come in either order)."""
    answered_in: set[str] = field(default_factory=set)
    """Queues that answered the call: back in one by a transfer, it is neither offered nor
    answered nor abandoned there again (the queue's figures count calls, not segments)."""
    queue_answered: bool = False  # an agent answered it from a queue (CallAnswered was told)
    originated: bool = False
    """The customer is the side that answered (a click-to-dial), not the caller's."""
    cancelled: dict[str, str] = field(default_factory=dict)
    """Dialling leg -> the device its last dial that ended CANCEL rang (a pickup's rung phone)."""
    chain: list[Segment] = field(default_factory=list)
    """The parties the customer talked to, in order; the last is the current one."""
    label: HandoverLabel | None = None
    merged_into: str = ""
    """The call (linkedid) this one became part of: a pickup's picker (not a call of its own)."""
    holds: set[tuple[str, str]] = field(default_factory=set)  # (uniqueid, source) held now
    held_since: datetime | None = None
    hold_seconds: float = 0.0

    @property
    def party(self) -> str:
        """The device the customer talks to now (or last did); "" before an answer."""
        return self.chain[-1].party if self.chain else ""

    @property
    def returns(self) -> int:
        """Hand-overs that brought the customer back to a party they had left."""
        parties = [s.party for s in self.chain]
        return sum(1 for i, who in enumerate(parties) if who and who in parties[:i])

    def chain_dicts(self) -> list[dict[str, Any]]:
        return [segment.as_dict() for segment in self.chain]

    @property
    def outcome(self) -> CallOutcome:
        if self.answered_at is not None:
            return "answered"
        if self.queued_at is not None or self.abandoned:
            return "abandoned"
        if self.dialled_out or self.offered_at is not None:
            return "unanswered"
        return "ivr_only"

    def live_legs(self) -> list[Leg]:
        return [leg for leg in self.legs.values() if leg.hung_up_at is None]


@dataclass
class Agent:
    """A queue member, keyed by its interface (e.g. ``PJSIP/1001`` or a Local channel)."""

    node: str
    interface: str
    name: str
    state: AgentState = AgentState.LOGGED_OUT
    reason: str = ""
    since: datetime | None = None
    queues: set[str] = field(default_factory=set)
    linkedid: str = ""
    calls_taken: int = 0
    wrapup_seconds: int = 0  # the member's own wrap-up time, when Asterisk says one (0: queue's)
    wrapup_until: datetime | None = None


WAIT_BANDS = (5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
"""Upper bounds (seconds) of the bands answered callers' waits are counted in: fine around the
usual service-level targets (10 to 60 s), coarse beyond."""
HANDLE_BANDS = (30.0, 60.0, 120.0, 180.0, 240.0, 300.0, 450.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0)
"""Upper bounds (seconds) of the bands handle (talk) times are counted in."""


@dataclass
class Durations:
    """Durations counted in bands (a bound counts in its own band), with their sum: what a
    Prometheus histogram exposes, so that the average (sum / count) and percentiles of several
    queues or servers can be added up, which averages cannot."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    """One per bound, then one for the durations above the last bound."""
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, durations up to it) per bound, ending with (inf, count)."""
        running, result = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            result.append((bound, running))
        return result


@dataclass
class QueueStats:
    """One queue's live figures and counters since the server started (or the day began).

    The figures count callers, not the segments app_queue sees: a caller who leaves the queue
    without hanging up (withdrawn by the router to ring an agent, a ``Queue()`` timeout and
    re-entry, an overflow) still waits for it, from their first join, until an agent answers
    them (answered here too, with that whole wait) or they hang up (abandoned).
    """

    node: str
    name: str
    service_level_seconds: int = 20
    waiting: dict[str, datetime] = field(default_factory=dict)
    """Callers waiting for this queue (linkedid -> when their wait began), whether in it now or
    momentarily elsewhere (ringing an agent, between two heartbeat checks)."""
    present: set[str] = field(default_factory=set)
    """Those of ``waiting`` inside the queue in Asterisk right now (what a withdraw can reach)."""
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_within_sl: int = 0
    total_wait_answered: float = 0.0
    total_talk: float = 0.0
    completed: int = 0
    answer_waits: Durations = field(default_factory=lambda: Durations(WAIT_BANDS))
    """The waits of answered callers (the whole wait for this queue), for ``/metrics``."""
    handle_times: Durations = field(default_factory=lambda: Durations(HANDLE_BANDS))
    """The talk times app_queue reported when its calls completed, for ``/metrics``."""

    def record_answer(self, waited: float) -> None:
        """An agent answered a caller who had waited ``waited`` seconds for this queue."""
        self.answered += 1
        self.total_wait_answered += waited
        if waited <= self.service_level_seconds:
            self.answered_within_sl += 1
        self.answer_waits.observe(waited)

    def record_completed(self, talk_seconds: float) -> None:
        """An agent's call from this queue ended after ``talk_seconds`` of talk."""
        self.completed += 1
        self.total_talk += talk_seconds
        self.handle_times.observe(talk_seconds)

    def longest_wait(self, now: datetime) -> float:
        if not self.waiting:
            return 0.0
        return max((now - joined).total_seconds() for joined in self.waiting.values())

    @property
    def asa(self) -> float:
        """Average speed of answer, seconds."""
        return self.total_wait_answered / self.answered if self.answered else 0.0

    @property
    def aht(self) -> float:
        """Average handle (talk) time, seconds."""
        return self.total_talk / self.completed if self.completed else 0.0

    @property
    def abandon_rate(self) -> float:
        ended = self.answered + self.abandoned
        return self.abandoned / ended if ended else 0.0

    @property
    def service_level(self) -> float:
        """Share of calls answered within the service-level time, of those answered or abandoned."""
        ended = self.answered + self.abandoned
        return self.answered_within_sl / ended if ended else 1.0
