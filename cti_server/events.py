"""Domain events: the vocabulary the parts of the server speak to each other.

Small frozen dataclasses. Each has a ``version`` so that a consumer in another process can tell
an old shape from a new one when events cross Redis.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal, NamedTuple, Protocol


def _now() -> datetime:
    return datetime.now(UTC)


class _OfACall(Protocol):
    @property
    def node(self) -> str: ...

    @property
    def linkedid(self) -> str: ...


class CallState(StrEnum):
    """A call's state in the live model (the tracker's, read by the router and the UI)."""

    ARRIVED = "arrived"  # in the dialplan / IVR, not yet in a queue
    QUEUED = "queued"
    OFFERED = "offered"  # an agent's phone rings
    ANSWERED = "answered"
    ENDED = "ended"


class AgentState(StrEnum):
    """An agent's state as the tracker and ``AgentStateChanged`` say it."""

    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class Utterance:
    """One speaker's utterance of a call, times in seconds (any origin, the same for all)."""

    text: str
    speaker: str = ""
    start: float = 0.0
    end: float = 0.0


CallOutcome = Literal["answered", "abandoned", "unanswered", "ivr_only", "merged"]
"""How a call ended, for the CRM and the figures (``merged``: a picker's own channel)."""
HungUpBy = Literal["caller", "agent", "transfer", "system", ""]
"""Who ended a call ("caller" is the calling side; "" when nobody can tell)."""
HandoverKind = Literal["attended", "blind", "blonde", "pickup", "forward", "redirect", "park"]
"""How a new party took the customer over (``park``: retrieved from a parking lot)."""
SegmentHow = Literal[
    "answer", "attended", "blind", "blonde", "pickup", "forward", "redirect", "park"
]
"""How a party came to talk to the customer: the first answered, the others were handed it."""
IvrOutcome = Literal["transfer", "hangup", "caller_gone", "callback"]
"""How a caller left the IVR: handed to a queue or agent, hung up by the flow, gone, or to be
called back (a callback or a voicemail)."""


class CallKey(NamedTuple):
    """One call across every node: Asterisk's linkedid is unique only on its own node. Its text
    form ``node:linkedid`` is the key of the call's interaction in the CRM."""

    node: str
    linkedid: str

    def __str__(self) -> str:
        return f"{self.node}:{self.linkedid}"

    @classmethod
    def of(cls, event: _OfACall) -> CallKey:
        """The call an event is about."""
        return cls(event.node, event.linkedid)

    @classmethod
    def parse(cls, text: str) -> CallKey:
        """The inverse of ``str(key)``; a linkedid may hold ``:``, a node may not."""
        node, colon, linkedid = text.partition(":")
        if not colon or not node or not linkedid:
            raise ValueError(f"not a call key (node:linkedid): {text!r}")
        return cls(node, linkedid)


_TRAILING_DIGITS = re.compile(r"(\d{2,10})$")


def extension_of(name: str) -> str:
    """The extension a party's name in these events stands for, "" when it names none: a device
    (``PJSIP/1002``, ``Local/8411@cti-sim-agent-long``; a channel's device, not the channel) or a
    queue member name, whose trailing digits are the extension (``agent-1001``, ``sim-8001``)."""
    if "/" in name:
        number = name.partition("/")[2].partition("@")[0].partition("/")[0]
        return number if number and all(c.isdigit() or c in "+*#" for c in number) else ""
    match = _TRAILING_DIGITS.search(name)
    return match.group(1) if match else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    version: ClassVar[int] = 1
    at: datetime = field(default_factory=_now)

    def to_dict(self) -> dict[str, Any]:
        data = {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in dataclasses.asdict(self).items()
        }
        return {"type": type(self).__name__, "version": self.version, "data": data}


@dataclass(frozen=True, slots=True, kw_only=True)
class AmiLinkChanged(DomainEvent):
    """The CTI server gained or lost its AMI link to an Asterisk node."""

    node: str
    connected: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CallArrived(DomainEvent):
    """A customer call reached the inbound context and asked the CTI server what to do."""

    node: str
    linkedid: str
    uniqueid: str
    channel: str
    caller_number: str
    caller_name: str
    dialed: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted(DomainEvent):
    """The tracker saw the first channel of a new call (one per linkedid)."""

    node: str
    linkedid: str
    caller_number: str
    caller_name: str
    dialed: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallQueued(DomainEvent):
    node: str
    linkedid: str
    queue: str
    position: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRinging(DomainEvent):
    """A call is offered to an agent: the moment the screen pop must be there."""

    node: str
    linkedid: str
    queue: str
    agent: str
    caller_number: str
    caller_name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered(DomainEvent):
    node: str
    linkedid: str
    queue: str
    agent: str
    waited_seconds: float
    caller_channel: str = ""  # Asterisk's channel names, for taps (live transcription)
    agent_channel: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(DomainEvent):
    """The last leg of the call hung up; ``outcome`` says how it went for the customer."""

    node: str
    linkedid: str
    outcome: CallOutcome
    hung_up_by: HungUpBy
    caller_number: str
    caller_name: str
    dialed: str
    queue: str
    agent: str
    arrived_at: datetime
    queued_at: datetime | None
    offered_at: datetime | None
    answered_at: datetime | None
    chain: list[dict[str, Any]] = field(default_factory=list)
    """The parties the customer talked to, in order (see :class:`CallTransferred`): one
    JSON-ready segment each, ``{"party", "extension", "agent", "how", "by", "started_at",
    "ended_at", "seconds"}``; ``how`` is ``answer`` for the first answerer (``agent`` above),
    else the hand-over's kind. Empty for a call nobody answered."""

    merged_into: str = ""
    """Outcome "merged": this was no call of its own but became part of that call (linkedid),
    like the channel of a phone that picked up a colleague's ringing call."""

    version: ClassVar[int] = 2  # 2: ``chain``, ``merged_into``


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTransferred(DomainEvent):
    """A new party took the customer over, however it happened: a transfer (attended, blind or
    blonde; from a desktop, a phone's feature code or another AMI client), a pickup, a
    forwarding phone or an AMI ``Redirect``. The target's desk pops on it, with who handed the
    customer over and what was said so far.

    Parties are devices (``PJSIP/1002``; a Local channel where no phone stands behind it),
    with their extension (``1002``) and, for queue members, the agent name; "" if unknown.
    """

    node: str
    linkedid: str
    kind: HandoverKind
    from_party: str  # the party the customer leaves (for a pickup: the phone that rang)
    from_extension: str
    from_agent: str
    to_party: str  # the party that talks to the customer now
    to_extension: str
    to_agent: str
    by: str  # the device that made the hand-over ("" when Asterisk does not say)
    caller_number: str
    caller_name: str
    queue: str
    customer_channel: str = ""  # Asterisk's channel names, for taps (live transcription)
    party_channel: str = ""
    segment: int = 0  # the new party's place in the call's chain (0: the first answerer)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferNoted(DomainEvent):
    """Why an agent's desktop transferred the call (a note typed with the transfer): every
    server keeps it, so the desk the customer reaches shows it whichever server serves it."""

    node: str
    linkedid: str
    by_extension: str
    by_name: str
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStateChanged(DomainEvent):
    node: str
    agent: str
    state: str  # logged_out, available, ringing, on_call, wrap_up, paused
    reason: str
    linkedid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WrapUpStarted(DomainEvent):
    """Published by the agent control (``telephony.agent_control``) once an agent whose part of
    a call is over has been paused for wrap-up: their desk shows the form for ``seconds``."""

    node: str
    linkedid: str
    extension: str
    seconds: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WrapUpEnded(DomainEvent):
    """Published by the agent control when an agent's wrap-up is over and they were made
    available: the agent sent it, or its deadline passed (``timed_out``: the desk stores what
    it knows with the default disposition)."""

    node: str
    linkedid: str
    extension: str
    timed_out: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class IvrFinished(DomainEvent):
    """The caller left the IVR: handed to a queue, hung up by the flow, or gone."""

    node: str
    linkedid: str
    flow: str
    outcome: IvrOutcome
    queue: str
    attributes: dict[str, str]
    path: list[dict[str, Any]]
    inputs: dict[str, str]  # secret ones already masked
    customer_id: int | None
    recordings: list[str] = field(default_factory=list)  # where Asterisk wrote them


class IdentifiedBy(StrEnum):
    """How a caller came to be named a customer: how far the desk may trust it."""

    CALLER_ID = "caller_id"  # the number the call came from (anyone can send any number)
    IVR = "ivr"  # the IVR identified them: account number, PIN


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerIdentified(DomainEvent):
    """Who is calling, decided once per call by the caller identification
    (:mod:`cti_server.ivr.identification`): by caller ID when the call first shows its number,
    and again when the IVR identifies the caller otherwise. The router, the desk's pop and the
    recorder take the customer from here instead of asking the CRM themselves.

    ``customer_id``: the one customer, None when nobody is known or several share the number
    (``matches``: every customer with the number, for the agent to choose); ``lookup``: the
    CRM's answer for the number (found, ambiguous, unknown); ``number``: the number as the CRM
    writes it (E.164), "" if it is none; ``name`` and ``tier``: the one customer's, as the
    lookup read them ("" when none, or when the IVR identified the caller), so that a consumer
    that only shows who is calling needs no read of its own."""

    node: str
    linkedid: str
    caller_number: str
    customer_id: int | None
    by: IdentifiedBy
    lookup: str
    number: str = ""
    matches: list[int] = field(default_factory=list)
    name: str = ""
    tier: str = ""

    def __post_init__(self) -> None:  # from Redis, ``by`` arrives as its text
        object.__setattr__(self, "by", IdentifiedBy(self.by))


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackRequested(DomainEvent):
    """The caller chose a callback over waiting (their place becomes a follow-up task), or
    left a voicemail (``kind="voicemail"``, with its ``recording``) to be called back."""

    node: str
    linkedid: str
    caller_number: str
    queue: str
    estimated_wait: float
    customer_id: int | None
    kind: str = "callback"
    recording: str = ""
    position: int = 0  # the caller's place in ``queue`` when offered (1: next); 0: unknown
    joined_at: datetime | None = None  # when they called: callbacks are due in this order


@dataclass(frozen=True, slots=True, kw_only=True)
class SurveyAnswered(DomainEvent):
    """The caller rated the call (1-5) after the agent hung up, maybe with a spoken comment."""

    node: str
    linkedid: str
    score: int
    comment: str = ""  # the recording, where Asterisk wrote it


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRouted(DomainEvent):
    """The router gave a waiting call to the agent at ``extension``; ``decision`` is the
    explanation (candidates, scores, the rule that decided), stored on the interaction. (An
    ``agent`` in the other events is a queue member's name, ``agent-1001``.)"""

    node: str
    linkedid: str
    extension: str
    rule: str
    decision: dict[str, Any]

    version: ClassVar[int] = 2  # 2: ``agent`` (an extension) is named ``extension``


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRangOut(DomainEvent):
    """A routed call rang out at ``extension``: its agent went not ready with ``reason`` and the
    call waits again; ``no_answer`` lists every ring-out of this call so far."""

    node: str
    linkedid: str
    extension: str
    reason: str
    no_answer: list[dict[str, Any]]

    version: ClassVar[int] = 2  # 2: ``agent`` (an extension) is named ``extension``


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTranscribed(DomainEvent):
    """A call's transcript, both speakers, redacted: ``live`` (decoded while it ran) or
    ``post_call`` (from its recordings); segments as :class:`crm_core.schemas.SegmentIn`.
    ``failed``: no transcript will come (no recording, a decoder error)."""

    node: str
    linkedid: str
    language: str
    mode: str
    segments: list[dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptPartial(DomainEvent):
    """What a speaker is saying right now, for supervisors' pages and the live complaint watch;
    ``final``: an utterance Vosk closed (else still being said). Never stored."""

    node: str
    linkedid: str
    speaker: str
    text: str
    final: bool = False
    start: float = 0.0
    end: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ComplaintDetected(DomainEvent):
    """The complaint detector found dissatisfaction in a call: ``during_call`` it alerts
    supervisors; after the call (the whole redacted transcript and the call's facts) it is
    stored with the interaction and opens a complaint case with its evidence."""

    node: str
    linkedid: str
    probability: float
    threshold: float
    category: str
    severity: str
    language: str
    evidence: list[dict[str, Any]]
    during_call: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CallHandling(DomainEvent):
    """How a call went for the customer once answered, told when their channel hangs up: the
    seconds they were on hold (not the queue wait before the answer), the times they were
    passed to another party, and how many of those passed them back to one they had left."""

    node: str
    linkedid: str
    hold_seconds: float
    transfers: int
    returns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CallQualityReported(DomainEvent):
    """How a call sounded to the browser phone at ``extension``, as its desk page measured it
    (:class:`crm_core.call_quality.CallQualityIn`'s fields; ``final`` once the call is over,
    else a summary so far): stored on the call's interaction, per extension."""

    node: str
    linkedid: str
    extension: str
    quality: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class InteractionRecorded(DomainEvent):
    """The recorder wrote a call's interaction to the CRM: parts that read the call's history
    (the complaint watch asks for a repeat call) wait for this instead of polling the database.
    ``outcome``: the interaction's kind as stored (inbound_call, abandoned, ivr_only);
    ``ended``: the write holds the call's end."""

    node: str
    linkedid: str
    interaction_id: int
    outcome: str
    ended: bool
    customer_id: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeResynced(DomainEvent):
    """The tracker was made equal to Asterisk's live calls on ``node`` as they were ``at``:
    a call the CRM still has open for it that is not in ``live`` ended unseen."""

    node: str
    live: list[str]


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.__name__: cls
    for cls in (
        AmiLinkChanged,
        CallArrived,
        CallStarted,
        CallQueued,
        AgentRinging,
        CallAnswered,
        CallEnded,
        CallTransferred,
        TransferNoted,
        AgentStateChanged,
        WrapUpStarted,
        WrapUpEnded,
        IvrFinished,
        CustomerIdentified,
        SurveyAnswered,
        CallbackRequested,
        CallTranscribed,
        TranscriptPartial,
        ComplaintDetected,
        CallRouted,
        CallRangOut,
        NodeResynced,
        CallHandling,
        InteractionRecorded,
        CallQualityReported,
    )
}


class UnknownEvent(ValueError):
    """A serialized event of a type or version this process does not know."""


def _agent_is_extension(data: dict[str, Any]) -> dict[str, Any]:
    return {("extension" if k == "agent" else k): v for k, v in data.items()}


_EARLIER: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("CallRouted", 1): _agent_is_extension,
    ("CallRangOut", 1): _agent_is_extension,
}
"""Earlier versions still read (a process not yet upgraded shares the bus): their data in
today's shape."""


def event_from_dict(payload: dict[str, Any]) -> DomainEvent:
    """The inverse of :meth:`DomainEvent.to_dict`, for events that crossed a process boundary."""
    cls = EVENT_TYPES.get(str(payload.get("type")))
    version = payload.get("version")
    earlier = _EARLIER.get((str(payload.get("type")), version if isinstance(version, int) else 0))
    if cls is None or (version != cls.version and earlier is None):
        raise UnknownEvent(f"unknown event {payload.get('type')!r} v{payload.get('version')}")
    data = dict(payload["data"]) if earlier is None else earlier(dict(payload["data"]))
    for name, kind in cls.__annotations__.items():
        if "datetime" in str(kind) and isinstance(data.get(name), str):
            data[name] = datetime.fromisoformat(data[name])
    data["at"] = datetime.fromisoformat(data["at"])
    return cls(**data)
