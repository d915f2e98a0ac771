"""What a party taking a call over is told, so that the customer does not repeat themselves:
who handed the customer over and how, why (the note typed at the desktop that made the
transfer), and what was said so far (the call's live transcript, redacted, and its complaint
facts).

Everything here is derived from bus events: the finished utterances of ``TranscriptPartial``,
``ComplaintDetected`` during the call and ``CallHandling``, collected for every call the bus
carries until its ``CallEnded``, not only for the calls this process's tracker follows. With
several servers on Redis, the target's desk may be served by a process whose AMI link never saw
the call: it has heard the same events, so it shows the same transcript. The desktop's note is
typed into one server's socket and crosses to the others as ``TransferNoted`` (see
:class:`Notes`).

The transcript is redacted again when it is shown, as one time-ordered sequence of both
speakers (the live text was redacted utterance by utterance where it was made; a card read in
two breaths across utterances is caught here too), with the redaction that serves the rest of
the server (:class:`cti_server.control.Redaction`); raw digits never reach a desk.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import User
from crm_core.text_rules import unsafe_character
from cti_server.control import Redaction
from cti_server.events import (
    CallEnded,
    CallHandling,
    CallKey,
    ComplaintDetected,
    DomainEvent,
    TranscriptPartial,
    Utterance,
)

MAX_CALLS = 2000  # live calls followed; the oldest forgotten when their end is never seen
MAX_LINES = 200  # finished utterances kept per call (the newest), 500 characters at most
MAX_COMPLAINTS = 10  # live complaint alerts kept per call
MAX_NOTE = 500  # characters of a transfer's note
ENDED_KEPT = 2000  # ended calls remembered, so that a late utterance does not revive one

# the tracker's kinds of hand-over, as the desk says them
HOW = {
    "attended": "attended transfer",
    "blind": "blind transfer",
    "blonde": "transfer completed while your phone rang",
    "pickup": "picked up",
    "forward": "forwarded",
    "redirect": "redirected",
    "park": "taken from a parking space",
}

# how the panel introduces the party the customer came from
LEAD = {
    "pickup": "Picked up from",
    "forward": "Forwarded by",
    "redirect": "Redirected from",
    "park": "Parked by",
}

Record = dict[str, Any]


def how(kind: str) -> str:
    """A hand-over's kind in words; an unknown kind (a newer tracker) is said as it is."""
    return HOW.get(kind, kind.replace("_", " ") or "handed over")


@dataclass
class _Line:
    speaker: str
    text: str
    start: float
    end: float


@dataclass
class _SaidOnACall:
    """What was said on one live call, its live complaint alerts and handling facts."""

    lines: deque[_Line] = field(default_factory=lambda: deque(maxlen=MAX_LINES))
    complaints: deque[Record] = field(default_factory=lambda: deque(maxlen=MAX_COMPLAINTS))
    handling: Record | None = None


class SaidSoFar:
    """What was said on each live call and what the complaint watch made of it, by call."""

    TRACKED = (TranscriptPartial, ComplaintDetected, CallHandling, CallEnded)

    def __init__(self, redaction: Redaction) -> None:
        self._redaction = redaction
        self._calls: OrderedDict[CallKey, _SaidOnACall] = OrderedDict()
        self._ended: OrderedDict[CallKey, None] = OrderedDict()

    def apply(self, event: DomainEvent) -> None:
        if isinstance(event, CallEnded):
            key = CallKey.of(event)
            self._calls.pop(key, None)
            self._ended[key] = None
            while len(self._ended) > ENDED_KEPT:
                self._ended.popitem(last=False)
        elif isinstance(event, TranscriptPartial):
            if event.final and event.text.strip():
                line = _Line(event.speaker[:16], event.text[:500], event.start, event.end)
                self._call(event.node, event.linkedid).lines.append(line)
        elif isinstance(event, ComplaintDetected):
            if event.during_call:
                self._call(event.node, event.linkedid).complaints.append(self._complaint(event))
        elif isinstance(event, CallHandling):
            self._call(event.node, event.linkedid).handling = {
                "hold_seconds": round(max(0.0, event.hold_seconds)),
                "transfers": event.transfers,
                "returns": event.returns,
            }

    def _call(self, node: str, linkedid: str) -> _SaidOnACall:
        key = CallKey(node, linkedid)
        call = self._calls.get(key)
        if call is None:
            call = _SaidOnACall()
            if key not in self._ended:  # a late word of an ended call is not kept
                self._calls[key] = call
                while len(self._calls) > MAX_CALLS:
                    self._calls.popitem(last=False)
        return call

    def _complaint(self, event: ComplaintDetected) -> Record:
        words = [
            str(e["text"])[:200] for e in event.evidence if isinstance(e, dict) and e.get("text")
        ]
        cues = [str(e.get("cue", ""))[:60] for e in event.evidence if isinstance(e, dict)]
        return {
            "category": event.category[:40],
            "severity": event.severity[:20],
            "probability": round(min(1.0, max(0.0, event.probability)), 2),
            "said": [self._redacted([Utterance(text)])[0] for text in words],
            "cues": [cue for cue in cues if cue],
        }

    def _redacted(self, utterances: list[Utterance]) -> list[str]:
        return self._redaction(utterances, {u.speaker for u in utterances})

    def transcript(self, node: str, linkedid: str) -> list[Record]:
        """The call's finished utterances so far, in time order, redacted together."""
        call = self._calls.get(CallKey(node, linkedid))
        if call is None:
            return []
        lines = sorted(call.lines, key=lambda line: line.start)
        texts = self._redacted([Utterance(x.text, x.speaker, x.start, x.end) for x in lines])
        return [
            {"speaker": line.speaker, "text": text, "start": round(line.start, 1)}
            for line, text in zip(lines, texts, strict=True)
        ]

    def facts(self, node: str, linkedid: str) -> Record:
        """The complaint watch's live alerts on the call, and its handling facts if told."""
        call = self._calls.get(CallKey(node, linkedid))
        if call is None:
            return {"complaints": [], "handling": None}
        return {"complaints": list(call.complaints), "handling": call.handling}


@dataclass(frozen=True)
class Note:
    """Why a desktop transferred a call: shown to the party the tracker names next."""

    text: str
    by_extension: str
    by_name: str


class Notes:
    """The notes of transfers made from this server's desks, by call, until taken or ended.

    A note is typed into one server's socket and kept there; the others keep it from the
    ``TransferNoted`` that server publishes, for a target desk they serve."""

    def __init__(self) -> None:
        self._notes: OrderedDict[CallKey, Note] = OrderedDict()

    def keep(self, key: CallKey, note: Note) -> None:
        self._notes[key] = note
        self._notes.move_to_end(key)
        while len(self._notes) > MAX_CALLS:
            self._notes.popitem(last=False)

    def peek(self, key: CallKey) -> Note | None:
        return self._notes.get(key)

    def take(self, key: CallKey, from_extension: str) -> Note | None:
        """The note for the hand-over away from ``from_extension``: one made at that desk."""
        note = self._notes.get(key)
        if note is None or (from_extension and note.by_extension != from_extension):
            return None
        del self._notes[key]
        return note

    def forget(self, key: CallKey) -> None:
        self._notes.pop(key, None)


def checked_note(value: object) -> str:
    """A transfer's note as the desk sends it: text, short, without spoofing characters."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError("note: text expected")
    note = value.strip()
    if len(note) > MAX_NOTE:
        raise ValueError(f"note: at most {MAX_NOTE} characters")
    unsafe = unsafe_character(note)
    if unsafe is not None:
        raise ValueError(f"note: {unsafe} is not allowed")
    return note


async def user_name(db: AsyncSession, extension: str) -> str | None:
    """The display name of the active user with ``extension``, if any."""
    if not extension:
        return None
    found = await db.execute(
        select(User.display_name).where(User.extension == extension, User.active.is_(True))
    )
    return found.scalars().first()


def party_label(name: str | None, extension: str, device: str) -> str:
    """``Alice (8101)``; ``8101`` when no user has the extension; the device when no extension."""
    if name and extension:
        return f"{name} ({extension})"
    return name or extension or device or "unknown"


def panel(
    said: SaidSoFar,
    key: CallKey,
    *,
    kind: str,
    from_name: str | None,
    from_extension: str,
    from_device: str,
    note: Note | None,
    at: datetime,
) -> Record:
    """The hand-over panel of the target's pop: who, how, why, and what was said so far."""
    return {
        "kind": kind,
        "how": how(kind),
        "lead": LEAD.get(kind, "Handed over by"),
        "from": {
            "name": from_name or "",
            "extension": from_extension,
            "label": party_label(from_name, from_extension, from_device),
        },
        "note": note.text if note is not None else "",
        "at": at.isoformat(),
        "transcript": said.transcript(*key),
        **said.facts(*key),
    }
