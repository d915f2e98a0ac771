"""The recorder: every call the tracker sees becomes an interaction in the CRM, as it happens.

Writes are idempotent by (node, linkedid). When the database cannot take a write, it and every
later one go to the durable spool, in order, and are replayed when the database answers again:
nothing is lost and nothing overtakes an older write.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.cases import CaseSla, add_signal, open_case_from_signal
from crm_core.customers import create_customer, lookup_by_caller_id
from crm_core.errors import InvalidInput
from crm_core.interactions import end_unseen, forget_merged, record_interaction
from crm_core.models import ComplaintCase, ComplaintSignal, FollowUp, Interaction, User
from crm_core.phones import is_withheld
from crm_core.schemas import CustomerIn, InteractionIn, PartyIn
from crm_core.text_rules import neutralised
from crm_core.value import ValuePolicy
from cti_server.bus import Bus
from cti_server.events import (
    AgentRinging,
    CallAnswered,
    CallbackRequested,
    CallEnded,
    CallQueued,
    CallRangOut,
    CallRouted,
    CallStarted,
    CallTranscribed,
    ComplaintDetected,
    DomainEvent,
    IvrFinished,
    NodeResynced,
    SurveyAnswered,
)
from cti_server.recorder.spool import Spool

log = logging.getLogger(__name__)

# each happens once; a resync's approximate report of one must not move it
_NOT_FIELDS = ("lookup", "agent", "callback", "complaint")  # handled beside the interaction
MILESTONES = ("arrived_at", "queued_at", "offered_at", "answered_at")
_KIND_BY_OUTCOME = {"abandoned": "abandoned", "ivr_only": "ivr_only"}
_EXTENSION = re.compile(r"(\d{2,10})$")
_CHAIN = TypeAdapter(list[PartyIn])


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
        known.update(caller_number=_clean(number, 64), lookup=number[:64])
    if name:
        known["caller_name"] = _clean(name, 200)
    return known


def _ivr_update(event: IvrFinished) -> dict[str, Any]:
    update: dict[str, Any] = {
        "node": event.node,
        "linkedid": event.linkedid,
        "ivr_path": [{**step, "input": _clean(str(step.get("input", "")))} for step in event.path],
        "ivr_inputs": {k: _clean(v) for k, v in event.inputs.items()},
        "routing": {
            "ivr_flow": event.flow,
            "ivr_outcome": event.outcome,
            "attributes": event.attributes,
        },
    }
    if event.customer_id is not None:
        update["customer_id"] = event.customer_id
    if event.recordings:
        update["recordings"] = [_clean(path, 300) for path in event.recordings]
    return update


def interaction_update(event: DomainEvent) -> dict[str, Any] | None:  # noqa: PLR0911, PLR0912
    """The CRM fields one tracker event brings, as a spoolable dict (``lookup``: find caller)."""
    if isinstance(event, NodeResynced):  # not one interaction: the node's calls ended unseen
        return {"node": event.node, "end_unseen": event.live, "seen_at": event.at.isoformat()}
    if isinstance(event, IvrFinished):
        return _ivr_update(event)
    if isinstance(event, CallRouted):  # merged beside the IVR's keys (see Recorder._write)
        return {
            "node": event.node,
            "linkedid": event.linkedid,
            "routing": {"decision": event.decision},
        }
    if isinstance(event, CallRangOut):
        return {
            "node": event.node,
            "linkedid": event.linkedid,
            "routing": {"no_answer": event.no_answer},
        }
    if isinstance(event, ComplaintDetected):
        if event.during_call:
            return None  # an alert for supervisors; the finding after the call is stored
        return {
            "node": event.node,
            "linkedid": event.linkedid,
            "complaint": {
                "probability": event.probability,
                "category": event.category,
                "severity": event.severity,
                "evidence": event.evidence,
            },
        }
    if isinstance(event, CallTranscribed):
        if event.mode == "failed":
            return None  # nothing to store; the complaint watch judges the facts
        return {"node": event.node, "linkedid": event.linkedid, "segments": event.segments}
    if isinstance(event, CallbackRequested):
        return {
            "node": event.node,
            "linkedid": event.linkedid,
            "callback": {
                "caller_number": event.caller_number[:64],
                "queue": event.queue[:64],
                "estimated_wait": round(event.estimated_wait),
                "customer_id": event.customer_id,
                "requested_at": event.at.isoformat(),
                "kind": event.kind,
                "recording": _clean(event.recording, 300),
                "position": event.position,
                "joined_at": (event.joined_at or event.at).isoformat(),
            },
        }
    if isinstance(event, SurveyAnswered):
        survey: dict[str, Any] = {
            "node": event.node,
            "linkedid": event.linkedid,
            "survey_score": event.score,
        }
        if event.comment:
            survey["recordings"] = [_clean(event.comment, 300)]
        return survey
    if not isinstance(event, CallStarted | CallQueued | AgentRinging | CallAnswered | CallEnded):
        return None
    base: dict[str, Any] = {"node": event.node, "linkedid": event.linkedid}
    when = event.at.isoformat()
    if isinstance(event, CallStarted):
        return {
            **base,
            "arrived_at": when,
            "kind": "inbound_call",
            "dialed": _clean(event.dialed, 64),
            **_caller(event.caller_number, event.caller_name),
        }
    if isinstance(event, CallQueued):
        return {**base, "queued_at": when, "queue": _clean(event.queue, 64)}
    if isinstance(event, AgentRinging):
        return {
            **base,
            "offered_at": when,
            "agent_name": _clean(event.agent, 80),
            **_caller(event.caller_number, event.caller_name),
        }
    if isinstance(event, CallAnswered):
        answered = {**base, "answered_at": when}
        if event.queue:
            answered["queue"] = _clean(event.queue, 64)
        if event.agent:
            answered.update(agent_name=_clean(event.agent, 80), agent=event.agent)
        return answered
    if event.outcome == "merged":  # no call of its own: part of the call it picked up
        return {**base, "merged_into": event.merged_into}
    update: dict[str, Any] = {
        **base,
        "ended_at": when,
        "kind": _KIND_BY_OUTCOME.get(event.outcome, "inbound_call"),
        **_caller(event.caller_number, event.caller_name),
    }
    if event.hung_up_by:
        update["ended_by"] = event.hung_up_by
    if event.agent:  # the first answerer, whoever had the call last
        update["agent_name"] = _clean(event.agent, 80)
    if event.queue:
        update["queue"] = _clean(event.queue, 64)
    if event.chain:
        update["parties"] = [_party(segment) for segment in event.chain]
    return update


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
        SurveyAnswered,
        CallbackRequested,
        CallRouted,
        CallRangOut,
        CallTranscribed,
        ComplaintDetected,
        NodeResynced,
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
        self._case_sla = case_sla or CaseSla()
        self._value_policy = value_policy or ValuePolicy()
        self._spool = spool
        self._region = region
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
        update = interaction_update(event)
        if update is not None:
            self._spool.append(update)
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

    async def _write(self, update: dict[str, Any]) -> bool:
        if self._schema_ready is not None and not self._schema_ready.is_set():
            return False  # migrations still running: keep it in the spool
        unseen = "end_unseen" in update
        closed: list[str] = []
        try:
            async with self._sessions() as session, session.begin():
                if unseen:  # after a resync: the node's calls that ended while nobody listened
                    seen = datetime.fromisoformat(update["seen_at"])
                    closed = await end_unseen(session, update["node"], update["end_unseen"], seen)
                elif "merged_into" in update:
                    into = str(update["merged_into"])
                    await forget_merged(session, update["node"], update["linkedid"], into)
                else:
                    await self._record(session, update)
        except ValidationError:
            log.exception("interaction update refused by the CRM schema; dropped: %s", update)
            return True  # retrying cannot help; it must not block the ones after it
        except (DBAPIError, OSError) as exc:
            self.failed_writes += 1
            what = "the calls ended unseen" if unseen else f"interaction {update['linkedid']}"
            log.warning("database unavailable for %s: %s", what, exc)
            return False
        if closed:
            log.warning(
                "%d calls of %s ended while no server listened; closed: %s",
                len(closed),
                update["node"],
                ", ".join(closed[:20]),
            )
        self.written += 1
        return True

    async def _record(self, session: AsyncSession, update: dict[str, Any]) -> None:
        """One tracker event's fields on its interaction, with what they imply beside it."""
        fields = {k: v for k, v in update.items() if k not in _NOT_FIELDS}
        if "lookup" in update and not await self._has_customer(session, update):
            found = await lookup_by_caller_id(session, update["lookup"], self._region)
            if found.status == "found":
                fields["customer_id"] = found.customers[0].id
        if "routing" in fields:
            fields["routing"] = await self._merged_routing(session, update)
        if update.get("agent"):
            agent_id = await self._agent_id(session, update["agent"])
            if agent_id is not None:
                fields["agent_id"] = agent_id
        if "parties" in update:
            fields["parties"] = await self._parties(session, update)
        row = await record_interaction(  # recomputes the customer's value once it is known
            session,
            InteractionIn.model_validate(fields),
            keep_existing=MILESTONES,
            policy=self._value_policy,
        )
        if "callback" in update:
            await callback_task(session, row.id, update["callback"], self._region)
        if "complaint" in update:
            await complaint_case(session, row, update["complaint"], self._region, self._case_sla)

    @staticmethod
    async def _has_customer(session: AsyncSession, update: dict[str, Any]) -> bool:
        customer_id = await session.scalar(
            select(Interaction.customer_id).where(
                Interaction.external_key == f"{update['node']}:{update['linkedid']}"
            )
        )
        return customer_id is not None

    @staticmethod
    async def _merged_routing(session: AsyncSession, update: dict[str, Any]) -> dict[str, Any]:
        """The IVR's keys and the router's sit side by side in ``routing``: a write replaces only
        the keys it brings."""
        stored = await session.scalar(
            select(Interaction.routing).where(
                Interaction.external_key == f"{update['node']}:{update['linkedid']}"
            )
        )
        return {**(stored or {}), **update["routing"]}

    @classmethod
    async def _parties(cls, session: AsyncSession, update: dict[str, Any]) -> list[PartyIn] | None:
        """The call's chain with each party's user (by extension, else as the answerer's is
        found). A chain the CRM refuses is left out, not the call: its other fields are
        written, and the refusal is logged."""
        parties = []
        for party in update["parties"]:
            agent_id = await cls._user_of_extension(session, party.get("extension"))
            if agent_id is None and party.get("agent_name"):
                agent_id = await cls._agent_id(session, party["agent_name"])
            parties.append({**party, "agent_id": agent_id})
        try:
            return _CHAIN.validate_python(parties)
        except ValidationError as exc:
            log.warning(
                "the chain of interaction %s refused by the CRM schema; written without it: %s",
                update["linkedid"],
                exc,
            )
            return None

    @staticmethod
    async def _user_of_extension(session: AsyncSession, extension: str | None) -> int | None:
        if not extension:
            return None
        user_id: int | None = await session.scalar(
            select(User.id).where(User.extension == extension).order_by(User.id).limit(1)
        )
        return user_id

    @staticmethod
    async def _agent_id(session: AsyncSession, agent: str) -> int | None:
        """A queue member (``PJSIP/1001``, ``sim-1001``) is the user with that extension."""
        match = _EXTENSION.search(agent)
        if match is None:
            return None
        user_id: int | None = await session.scalar(
            select(User.id).where(User.extension == match.group(1))
        )
        return user_id


def _follow_up_note(request: dict[str, Any]) -> str:
    if request.get("kind") == "voicemail":
        return f"Voicemail left in the IVR for {request['queue']}: {request.get('recording', '')}"
    place = f"number {request['position']} in line, " if request.get("position") else ""
    return (
        f"Callback instead of waiting in {request['queue']} ({place}estimated wait "
        f"{request['estimated_wait']} s); keeps the place from "
        f"{request.get('joined_at') or request['requested_at']}"
    )


async def customer_for_caller(session: AsyncSession, number: str, region: str) -> int:
    """The customer with this number, or a new one: a stranger who asks for something (a
    callback, a complaint worked) needs a record to be called back on."""
    found = await lookup_by_caller_id(session, number, region)
    if found.status == "found":
        return found.customers[0].id
    phones = [] if is_withheld(number) else [{"number": number}]
    try:
        data = CustomerIn.model_validate({"name": f"Caller {number}"[:200], "phones": phones})
        return (await create_customer(session, data, region)).id
    except (ValidationError, InvalidInput):
        data = CustomerIn.model_validate({"name": "Unknown caller"})
        return (await create_customer(session, data, region)).id


async def complaint_case(
    session: AsyncSession, row: Interaction, found: dict[str, Any], region: str, sla: CaseSla
) -> ComplaintCase:
    """The detector's finding, stored once per interaction (journal replays), and a case
    opened with its evidence for service managers to work."""
    signal = await session.scalar(
        select(ComplaintSignal).where(ComplaintSignal.interaction_id == row.id)
    )
    if signal is None:
        signal = await add_signal(
            session,
            interaction_id=row.id,
            probability=float(found["probability"]),
            category=str(found["category"]),
            severity=str(found["severity"]),
            evidence=list(found.get("evidence", [])),
        )
    if row.customer_id is None:
        row.customer_id = await customer_for_caller(session, row.caller_number or "", region)
        await session.flush()
    return await open_case_from_signal(session, signal.id, sla)


async def callback_task(
    session: AsyncSession, interaction_id: int, request: dict[str, Any], region: str
) -> FollowUp:
    """The follow-up that keeps a caller's place: once per interaction (journal replays)."""
    kind = str(request.get("kind") or "callback")
    existing = await session.scalar(
        select(FollowUp).where(FollowUp.interaction_id == interaction_id, FollowUp.kind == kind)
    )
    if existing is not None:
        return existing
    customer_id = request.get("customer_id")
    if customer_id is None:  # a stranger asks to be called back: they become a customer
        customer_id = await customer_for_caller(session, request["caller_number"], region)
    # the caller's place: due at the time they called, so callbacks come first-called first
    joined = datetime.fromisoformat(request.get("joined_at") or request["requested_at"])
    task = FollowUp(
        customer_id=customer_id,
        interaction_id=interaction_id,
        kind=kind,
        due_at=joined,
        note=_follow_up_note(request),
        queue=str(request["queue"])[:64],
        queue_position=int(request.get("position") or 0) or None,
        joined_at=joined,
        estimated_wait=int(request["estimated_wait"]),
    )
    session.add(task)
    await session.flush()
    return task
