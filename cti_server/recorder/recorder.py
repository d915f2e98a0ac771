"""The recorder: every call the tracker sees becomes an interaction in the CRM, as it happens.

Each event becomes a typed journal entry (:mod:`cti_server.recorder.entries`), the journal (the
spool) holds it ahead of the database, and the CRM's own services store it: the customer comes
from ``CustomerIdentified`` (the recorder never asks who is calling), callbacks and complaint
cases are :mod:`crm_core` rules. What was stored is published (``InteractionRecorded``) for the
parts that read a call's history.

Writes are idempotent by (node, linkedid). When the database cannot take a write, it and every
later one go to the durable spool, in order, and are replayed when the database answers again:
nothing is lost and nothing overtakes an older write.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.call_records import CallRules, CallUpdate, record_call
from crm_core.callbacks import CallbackRequest
from crm_core.cases import CaseSla
from crm_core.complaint_intake import Detection
from crm_core.interactions import end_unseen, forget_merged
from crm_core.text_rules import neutralised
from crm_core.value import ValuePolicy
from cti_server.bus import Bus
from cti_server.events import (
    AgentRinging,
    CallAnswered,
    CallbackRequested,
    CallEnded,
    CallQualityReported,
    CallQueued,
    CallRangOut,
    CallRouted,
    CallStarted,
    CallTranscribed,
    ComplaintDetected,
    CustomerIdentified,
    DomainEvent,
    IdentifiedBy,
    InteractionRecorded,
    IvrFinished,
    NodeResynced,
    SurveyAnswered,
    extension_of,
)
from cti_server.recorder.entries import (
    CallMerged,
    CallsEndedUnseen,
    InteractionUpdate,
    SpoolEntry,
    entry_from_stored,
    stored,
)
from cti_server.recorder.spool import Spool

log = logging.getLogger(__name__)

_KIND_BY_OUTCOME = {"abandoned": "abandoned", "ivr_only": "ivr_only"}


def _clean(text: str, limit: int = 200) -> str:
    """Caller-supplied text made storable, never refused: each character that text may not hold
    (control, bidirectional, zero-width: ``crm_core.text_rules``) and each line break becomes a
    space; length bounded."""
    return neutralised(text, one_line=True)[:limit]


def _caller(number: str, name: str = "") -> dict[str, str]:
    """The caller's number and name, once known (a Local channel learns them just after it is
    created). Stored as received, bar the characters ``_clean`` turns into spaces: markup is
    escaped where shown."""
    known: dict[str, str] = {}
    if number:
        known["caller_number"] = _clean(number, 64)
    if name:
        known["caller_name"] = _clean(name, 200)
    return known


class _OfACall(Protocol):
    @property
    def node(self) -> str: ...

    @property
    def linkedid(self) -> str: ...


def _entry(event: _OfACall, **parts: Any) -> InteractionUpdate:
    """The update of the call ``event`` is about."""
    return InteractionUpdate(node=event.node, linkedid=event.linkedid, **parts)


def _update(event: CallStarted | AgentRinging | CallEnded, **fields: Any) -> InteractionUpdate:
    """Fields of an event that knows the caller's number and name."""
    fields |= _caller(event.caller_number, event.caller_name)
    return _entry(event, fields=fields)


def _identified(event: CustomerIdentified) -> InteractionUpdate | None:
    """The call's customer: the IVR's identification is the call's; the caller ID's only
    while the call has none (the IVR's may have come first)."""
    if event.customer_id is None:
        return None  # nobody, or several for the agent to choose from: nothing to store
    if event.by is IdentifiedBy.IVR:
        fields = {"customer_id": event.customer_id}
        return _entry(event, fields=fields)
    return _entry(event, identified=event.customer_id)


def _ivr_update(event: IvrFinished) -> InteractionUpdate:
    fields: dict[str, Any] = {
        "ivr_path": [{**step, "input": _clean(str(step.get("input", "")))} for step in event.path],
        "ivr_inputs": {k: _clean(v) for k, v in event.inputs.items()},
        "routing": {
            "ivr_flow": event.flow,
            "ivr_outcome": event.outcome,
            "attributes": event.attributes,
        },
    }
    if event.customer_id is not None:
        fields["customer_id"] = event.customer_id
    if event.recordings:
        fields["recordings"] = [_clean(path, 300) for path in event.recordings]
    return _entry(event, fields=fields)


def _callback(event: CallbackRequested) -> InteractionUpdate:
    request = CallbackRequest(
        caller_number=event.caller_number[:64],
        queue=event.queue[:64],
        estimated_wait=round(event.estimated_wait),
        customer_id=event.customer_id,
        requested_at=event.at,
        kind=event.kind,  # checked by the model: callback or voicemail
        recording=_clean(event.recording, 300),
        position=event.position,
        joined_at=event.joined_at or event.at,
    )
    return _entry(event, callback=request)


def _complaint(event: ComplaintDetected) -> InteractionUpdate:
    found = Detection(
        probability=event.probability,
        category=event.category,
        severity=event.severity,
        evidence=event.evidence,
    )
    return _entry(event, complaint=found)


def interaction_update(event: DomainEvent) -> SpoolEntry | None:  # noqa: PLR0911
    """What one tracker event brings the CRM, as a journal entry; None: nothing to store."""
    if isinstance(event, NodeResynced):  # not one interaction: the node's calls ended unseen
        return CallsEndedUnseen(node=event.node, live=event.live, seen_at=event.at)
    if isinstance(event, IvrFinished):
        return _ivr_update(event)
    if isinstance(event, CustomerIdentified):
        return _identified(event)
    if isinstance(event, CallRouted | CallRangOut):  # merged beside the IVR's keys
        routing = (
            {"decision": event.decision}
            if isinstance(event, CallRouted)
            else {"no_answer": event.no_answer}
        )
        return _entry(event, fields={"routing": routing})
    if isinstance(event, ComplaintDetected):
        # during the call: an alert for supervisors; the finding after the call is stored
        return None if event.during_call else _complaint(event)
    if isinstance(event, CallTranscribed):
        if event.mode == "failed":
            return None  # nothing to store; the complaint watch judges the facts
        fields: dict[str, Any] = {"segments": event.segments}
        return _entry(event, fields=fields)
    if isinstance(event, CallbackRequested):
        return _callback(event)
    if isinstance(event, CallQualityReported):  # beside the other browser phones' summaries
        return _entry(event, fields={"quality": {event.extension: event.quality}})
    if isinstance(event, SurveyAnswered):
        survey: dict[str, Any] = {"survey_score": event.score}
        if event.comment:
            survey["recordings"] = [_clean(event.comment, 300)]
        return _entry(event, fields=survey)
    if isinstance(event, CallEnded) and event.outcome == "merged":
        # no call of its own: part of the call it picked up
        return CallMerged(node=event.node, linkedid=event.linkedid, merged_into=event.merged_into)
    return _call_update(event)


def _call_update(event: DomainEvent) -> InteractionUpdate | None:
    """A milestone of the call itself (arrived, queued, offered, answered, ended)."""
    when = event.at.isoformat()
    if isinstance(event, CallStarted):
        return _update(event, arrived_at=when, kind="inbound_call", dialed=_clean(event.dialed, 64))
    if isinstance(event, CallQueued):
        fields = {"queued_at": when, "queue": _clean(event.queue, 64)}
        return _entry(event, fields=fields)
    if isinstance(event, AgentRinging):
        return _update(event, offered_at=when, agent_name=_clean(event.agent, 80))
    if isinstance(event, CallAnswered):
        answered: dict[str, Any] = {"answered_at": when}
        if event.queue:
            answered["queue"] = _clean(event.queue, 64)
        if event.agent:
            answered["agent_name"] = _clean(event.agent, 80)
        return _entry(
            event,
            fields=answered,
            agent_member=event.agent or None,
        )
    if not isinstance(event, CallEnded):
        return None
    ended: dict[str, Any] = {
        "ended_at": when,
        "kind": _KIND_BY_OUTCOME.get(event.outcome, "inbound_call"),
    }
    if event.hung_up_by:
        ended["ended_by"] = event.hung_up_by
    if event.agent:  # the first answerer, whoever had the call last
        ended["agent_name"] = _clean(event.agent, 80)
    if event.queue:
        ended["queue"] = _clean(event.queue, 64)
    if event.chain:
        ended["parties"] = [_party(segment) for segment in event.chain]
    return _update(event, **ended)


def _party(segment: dict[str, Any]) -> dict[str, Any]:
    """One segment of ``CallEnded.chain`` in the CRM's words (``PartyIn``, bar the agent's
    user id, looked up when written: the user may be created while the write waits)."""

    def text(key: str, limit: int) -> str | None:
        return _clean(str(segment.get(key) or ""), limit) or None

    return {
        "party": text("party", 120) or "",
        "extension": text("extension", 16),
        "agent_name": text("agent", 80),
        "how": segment.get("how"),
        "by_party": text("by", 120),
        "started_at": segment.get("started_at"),
        "ended_at": segment.get("ended_at"),
        "seconds": segment.get("seconds"),
    }


class Recorder:
    TRACKED = (
        CallStarted,
        CallQueued,
        AgentRinging,
        CallAnswered,
        CallEnded,
        IvrFinished,
        CustomerIdentified,
        SurveyAnswered,
        CallbackRequested,
        CallRouted,
        CallRangOut,
        CallTranscribed,
        ComplaintDetected,
        NodeResynced,
        CallQualityReported,
    )

    def __init__(
        self,
        bus: Bus,
        sessions: async_sessionmaker[AsyncSession],
        spool: Spool,
        *,
        region: str,
        retry_seconds: float = 1.0,
        schema_ready: asyncio.Event | None = None,
        case_sla: CaseSla | None = None,
        value_policy: ValuePolicy | None = None,
    ) -> None:
        self._sessions = sessions
        self._publish = bus.publish
        self._rules = CallRules(region, case_sla or CaseSla(), value_policy or ValuePolicy())
        self._spool = spool
        self._retry = retry_seconds
        self._schema_ready = schema_ready
        self._wake = asyncio.Event()
        self.written = 0
        self.failed_writes = 0
        self._failing = False
        self._behind = bool(spool)  # writes left from before a restart, or held by an outage
        bus.listen(self.TRACKED, self._journal)

    @property
    def spooled(self) -> int:
        return len(self._spool)

    def status(self) -> dict[str, Any]:
        """Not ok while writes wait for a database that refuses them."""
        return {
            "ok": not self._failing,
            "written": self.written,
            "spooled": self.spooled,
            "failed_writes": self.failed_writes,
        }

    def _journal(self, event: DomainEvent) -> None:
        """Called as the tracker publishes: into the journal before anything can be lost."""
        entry = interaction_update(event)
        if entry is not None:
            self._spool.append(stored(entry))
            self._wake.set()

    async def run(self) -> None:
        """Write journalled updates to the CRM in order, until cancelled."""
        try:
            while True:
                if self._spool:
                    self._spool.sync()
                    if not await self._drain():
                        await asyncio.sleep(self._retry)  # the database is away: try again
                        continue
                self._wake.clear()
                if not self._spool:
                    await self._wake.wait()
        finally:
            self._spool.close()

    async def _drain(self) -> bool:
        """Write the spooled updates in order; False when one of them could not be written.

        Updates journalled while the drain awaits the database are not a failure: they wait for
        the next round (counting them as failing made ``/status`` flap on a busy, healthy server).
        """
        done = 0
        failed = False
        for update in self._spool.entries():
            if not await self._write(update):
                failed = True
                break
            done += 1
        self._spool.drop(done)
        self._failing = failed
        if done and self._behind:
            log.info("replayed %d spooled interaction writes", done)
        elif done:
            log.debug("wrote %d interaction updates", done)
        self._behind = failed
        return not failed

    async def _write(self, raw: dict[str, Any]) -> bool:
        if self._schema_ready is not None and not self._schema_ready.is_set():
            return False  # migrations still running: keep it in the spool
        closed: list[str] = []
        recorded: InteractionRecorded | None = None
        try:
            entry = entry_from_stored(raw)
            async with self._sessions() as session, session.begin():
                if isinstance(entry, CallsEndedUnseen):  # after a resync: ended unheard
                    closed = await end_unseen(session, entry.node, entry.live, entry.seen_at)
                elif isinstance(entry, CallMerged):
                    await forget_merged(session, entry.node, entry.linkedid, entry.merged_into)
                else:
                    recorded = await self._record(session, entry)
        except ValidationError:
            log.exception("interaction update refused by the CRM schema; dropped: %s", raw)
            return True  # retrying cannot help; it must not block the ones after it
        except (DBAPIError, OSError) as exc:
            self.failed_writes += 1
            what = (
                "the calls ended unseen"
                if isinstance(entry, CallsEndedUnseen)
                else f"interaction {entry.linkedid}"
            )
            log.warning("database unavailable for %s: %s", what, exc)
            return False
        if closed:
            log.warning(
                "%d calls of %s ended while no server listened; closed: %s",
                len(closed),
                entry.node,
                ", ".join(closed[:20]),
            )
        self.written += 1
        if recorded is not None:
            self._publish(recorded)
        return True

    async def _record(
        self, session: AsyncSession, update: InteractionUpdate
    ) -> InteractionRecorded:
        """One event's update, stored by the CRM's rules."""
        parties = update.fields.get("parties") or []
        call = CallUpdate(
            fields=update.crm_fields(),
            caller_customer=update.identified,
            caller_number=update.caller,
            answered_by=extension_of(update.agent_member or "") or None,
            party_agents=[extension_of(p.get("agent_name") or "") or None for p in parties],
            callback=update.callback,
            complaint=update.complaint,
        )
        row = await record_call(session, call, self._rules)
        return InteractionRecorded(
            node=update.node,
            linkedid=update.linkedid,
            interaction_id=row.id,
            outcome=row.kind,
            ended=row.ended_at is not None,
            customer_id=row.customer_id,
        )
