"""Screen pops: the caller's CRM record, fetched while they are still in the IVR, ready to push
the moment an agent's phone rings.

``CustomerIdentified`` (who is calling, decided once per call by the caller identification)
starts reading the customer's record; ``IvrFinished`` adds what the caller did (secrets masked);
a later ``CustomerIdentified`` by the IVR (an account number, say) replaces the record;
``AgentRinging`` only assembles what is already there. The router's word (``CallRouted``: why
this agent; ``CallRangOut``: who let the call ring out) is kept as it is published and joins
the pop, or follows a pop already on show as an update.
"""

from __future__ import annotations

import asyncio
import contextlib
import json.encoder
import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui.routing_words import decision_words, no_answer_words
from agent_ui.ws import Prepared, compact_json, encoded_as_made
from crm_core.cases import open_cases_of
from crm_core.customers import customers_by_ids, get_customer
from crm_core.errors import NotFound
from crm_core.interactions import mask_secrets, timeline
from crm_core.models import Customer
from cti_server.events import (
    AgentRinging,
    CallKey,
    CallRangOut,
    CallRouted,
    CallTransferred,
    CustomerIdentified,
    IdentifiedBy,
    IvrFinished,
)

log = logging.getLogger(__name__)

READY_DEADLINE = 3.0  # a look-up still running at ring time gets this long
LAST_INTERACTIONS = 5
MAX_CALLS = 20000
# what the IVR learned that routing goes by; the calendar's attributes stay in the IVR panel
ROUTING_KEYS = ("intent", "skill", "language", "tier", "priority", "queue")

Record = dict[str, Any]


def customer_view(row: Customer, organisation: str | None) -> Record:
    """What the pop shows of a customer."""
    return {
        "id": row.id,
        "name": row.name,
        "tier": row.tier_override or row.tier,
        "value": {
            "lifetime_value": str(row.lifetime_value),
            "recency": row.recency_score,
            "frequency": row.frequency_score,
            "monetary": row.monetary_score,
            "reason": row.tier_reason,
        },
        "phones": [p.e164 for p in row.phones],
        "account_number": row.account_number,
        "organisation": organisation,
        "language": row.language,
    }


@dataclass
class CallPop:
    """What one call's pop is made of, gathered before the ring: who is calling (as published),
    the reading of their record, the IVR's answers, the customer's tier once shown."""

    key: CallKey
    identity: CustomerIdentified | None = None
    identified: asyncio.Event = field(default_factory=asyncio.Event)
    lookup: asyncio.Task[Record] | None = None
    ivr: Record | None = None
    routed: Record = field(default_factory=dict)  # the router's word, in the agent's words
    tier: str = ""
    encoded: tuple[Record, str] | None = None  # the record read, and its JSON
    read: tuple[asyncio.Task[Record], Record] | None = None  # a look-up done, and its record
    # the record, with what else the pop says that is known before the ring, and the members
    # of its JSON object (no braces)
    ahead: tuple[Record, Record, str] | None = None


def _encode_ahead(call: CallPop, lookup: asyncio.Task[Record]) -> None:
    """The record's JSON, made as soon as it is read (the caller still in the IVR): the ring
    then encodes only the call's few fields (:class:`agent_ui.ws.Prepared`)."""
    if lookup is call.lookup and not lookup.cancelled() and lookup.exception() is None:
        record = lookup.result()
        call.read = (lookup, record)
        call.encoded = (record, compact_json(record))
        _before_the_ring(call, record)  # the rest of what is known now, encoded with it


def _before_the_ring(call: CallPop, record: Record) -> tuple[Record, str | None]:
    """The pop's fields known before the ring (the record, the IVR's answers, the router's word
    so far, how far the caller is trusted), with their JSON object's members (no braces) when
    the record's was made ahead:
    made as the record is read (again at the ring when the IVR or the router said more since),
    so that a ring encodes only the call's own few fields."""
    ahead = call.ahead
    if ahead is not None and ahead[0] is record:
        return ahead[1], ahead[2]
    attributes = call.ivr["attributes"] if call.ivr else {}
    known = {
        "ivr": call.ivr,
        "routing": routing_reason(attributes, call.routed),
        "identity": identity(attributes),
    }
    fields = {**record, **known}
    encoded = call.encoded
    if encoded is None or encoded[0] is not record:
        return fields, None
    members = (encoded[1][1:-1], compact_json(known)[1:-1])
    call.ahead = (record, fields, ",".join(m for m in members if m))
    return fields, call.ahead[2]


CALL_FIELDS = ("node", "linkedid", "queue", "caller_number", "caller_name", "at", "state")
"""A ring's pop's ``call``, as :meth:`PopService._assemble` makes it and the desks set its state."""
_RING_TEXT = ('{"type":"pop","call":{', *(f'"{k}":' for k in CALL_FIELDS))
_STATE_TEXT = (',"agent_state":{"state":', ',"reason":')
_string = json.encoder.encode_basestring_ascii  # a string's JSON, as json.dumps writes it


def ring_text(pop: Record, agent_state: Record | None = None) -> str:
    """The JSON of a ring's pop just assembled (:meth:`PopService.ready`, its call's state set
    since), with the agent's state (``{"state", "reason"}``) if any: the text of
    :func:`agent_ui.ws.encoded_as_made`, its own few fields written by a template of their
    known shape rather than walked by the encoder (at 1,000 rings at once, some 3 us of each
    pop). A pop of another shape, or a value not a string, is encoded the general way."""
    if (
        not isinstance(pop, Prepared)
        or (own := pop.own) is None
        or tuple(own) != ("type", "call")
        or own["type"] != "pop"
        or tuple(own["call"]) != CALL_FIELDS
        or (agent_state is not None and tuple(agent_state) != ("state", "reason"))
    ):
        return _as_made(pop, agent_state)
    call, c = own["call"], _RING_TEXT
    try:
        parts = [
            c[0], c[1], _string(call["node"]), ",", c[2], _string(call["linkedid"]),
            ",", c[3], _string(call["queue"]), ",", c[4], _string(call["caller_number"]),
            ",", c[5], _string(call["caller_name"]), ",", c[6], _string(call["at"]),
            ",", c[7], _string(call["state"]), "}",
        ]  # fmt: skip
        if agent_state is not None:
            parts += (_STATE_TEXT[0], _string(agent_state["state"]))
            parts += (_STATE_TEXT[1], _string(agent_state["reason"]), "}")
    except TypeError:  # a value not a string
        return _as_made(pop, agent_state)
    parts.append("}")
    return pop.joined("".join(parts))


def _as_made(pop: Record, agent_state: Record | None) -> str:
    if agent_state is None:
        return encoded_as_made(pop)
    return encoded_as_made(pop, agent_state=agent_state)


def routing_reason(attributes: dict[str, str], written: Record) -> Record:
    """Why this call came to this agent: the IVR's routing attributes, then the router's word."""
    return {**{k: attributes[k] for k in ROUTING_KEYS if attributes.get(k)}, **written}


def identity(attributes: dict[str, str]) -> Record:
    """How far the desk may trust who the caller says they are. Caller ID names a customer but
    anyone can send any number: only a PIN typed in the IVR proves it, and a PIN locked by too
    many wrong tries (over every call) is the desk's cue for extra care."""
    if attributes.get("verified") == "pin":
        return {"verified": True, "note": "verified: PIN typed in the IVR"}
    if attributes.get("pin_locked") == "yes":
        return {"verified": False, "note": "not verified: IVR PIN locked after wrong tries"}
    if attributes.get("pin_verified") == "no":
        return {"verified": False, "note": "not verified: wrong PIN in the IVR"}
    return {"verified": False, "note": "not verified: caller ID only, ask a security question"}


def _read_already(call: CallPop) -> asyncio.Task[Record] | None:
    """The look-up of the caller's record, if it is done (the common case: read while they
    were in the IVR): the ring then costs no wait at all."""
    lookup = call.lookup
    return lookup if call.identified.is_set() and lookup is not None and lookup.done() else None


class PopService:
    """Customer records by call, looked up ahead of the ring."""

    def __init__(self, db: async_sessionmaker[AsyncSession], region: str) -> None:
        self._db = db
        self._region = region
        self._calls: dict[tuple[str, str], CallPop] = {}  # by CallKey (a tuple: either finds)
        self._finishing: set[asyncio.Task[Record]] = set()

    # -- events -------------------------------------------------------------------------------

    def identified(self, event: CustomerIdentified, *, read_now: bool = True) -> None:
        """Who is calling: their record is read now (``read_now``: a desk is signed in to pop),
        else when the call rings."""
        call = self._call(CallKey.of(event))
        call.identity = event
        call.identified.set()
        if read_now or call.lookup is not None:
            self._read(call, event)

    def _read(self, call: CallPop, event: CustomerIdentified) -> None:
        call.lookup = asyncio.get_running_loop().create_task(
            self._record_of_caller(event, call.lookup), name=f"pop-{call.key}"
        )
        call.lookup.add_done_callback(partial(_encode_ahead, call))

    def ivr_finished(self, event: IvrFinished) -> None:
        call = self._call(CallKey.of(event))
        call.ivr = {
            "flow": event.flow,
            "path": [
                {
                    "step": str(step.get("step", "")),
                    "type": str(step.get("type", "")),
                    "input": str(step.get("input", "")),
                }
                for step in event.path
            ],
            "inputs": mask_secrets({k: str(v) for k, v in event.inputs.items()}),
            "attributes": {k: str(v) for k, v in event.attributes.items()},
        }
        call.ahead = None  # the pop's routing and identity follow the IVR's answers

    def routed(self, event: CallRouted | CallRangOut) -> Record:
        """Keep the router's word on a call for its pops; what it adds to them."""
        said: Record = dict(
            decision_words(event.decision)
            if isinstance(event, CallRouted)
            else no_answer_words(event.no_answer)
        )
        call = self._call(CallKey.of(event))
        call.routed.update(said)
        call.ahead = None  # the pop's routing says more now
        return said

    def ended(self, node: str, linkedid: str) -> None:
        """Forget the call. A look-up still running is left to finish, not cancelled: a query
        cancelled mid-way can leave its connection holding the database (a SQLite reader kept
        its lock and blocked every write after it)."""
        call = self._calls.pop(CallKey(node, linkedid), None)
        if call is not None and call.lookup is not None and not call.lookup.done():
            self._finishing.add(call.lookup)
            call.lookup.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Record]) -> None:
        self._finishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("look-up of an ended call failed: %s", task.exception())

    def lookups(self) -> list[asyncio.Task[Record]]:
        """The look-ups started and not yet forgotten (for a benchmark that waits on them)."""
        return [c.lookup for c in self._calls.values() if c.lookup is not None]

    def tier_of(self, node: str, linkedid: str) -> str:
        call = self._calls.get(CallKey(node, linkedid))
        return call.tier if call is not None else ""

    async def pop_for(self, event: AgentRinging | CallTransferred) -> Record:
        """The whole pop of a call for whoever it reaches (a ringing agent, a transfer's
        target): the customer, their value, history and open cases, the IVR's answers, the
        router's word; from the look-up already done, if any."""
        call = self._call(CallKey(event.node, event.linkedid))
        try:  # a call that never passed the IVR is identified as it rings
            read = _read_already(call)
            record = read.result() if read is not None else await self._in_time(call)
        except (TimeoutError, OSError) as exc:
            log.warning("pop for %s without the CRM record: %s", event.linkedid, exc)
            record = {"lookup": "unavailable", "number": event.caller_number, "matches": []}
        return self._assemble(call, event, record)

    def ready(self, event: AgentRinging) -> Record | None:
        """The pop of a call whose record is read already (the common case: read while the
        caller was in the IVR), made without waiting; None while it is not (:meth:`pop_for`
        then waits for it, or says why it is missing)."""
        call = self._calls.get((event.node, event.linkedid))
        if call is None:
            return None
        done = call.read
        if done is not None and done[0] is call.lookup:  # the look-up in force, done and read
            return self._assemble(call, event, done[1])
        read = _read_already(call)
        if read is None or read.cancelled() or read.exception() is not None:
            return None
        return self._assemble(call, event, read.result())

    def key_of(self, event: AgentRinging) -> CallKey:
        """The key of the call ``event`` is about: the one kept here while the call is followed
        (a ring then makes no new object that its desk keeps and the garbage collector walks,
        at 1,000 rings at once)."""
        call = self._calls.get((event.node, event.linkedid))
        return call.key if call is not None else CallKey.of(event)

    def _assemble(
        self, call: CallPop, event: AgentRinging | CallTransferred, record: Record
    ) -> Record:
        customer = record.get("customer")
        call.tier = customer["tier"] if customer else ""
        fields, encoded = _before_the_ring(call, record)
        own = {
            "type": "pop",
            "call": {
                "node": event.node,
                "linkedid": event.linkedid,
                "queue": event.queue,
                "caller_number": event.caller_number,
                "caller_name": event.caller_name,
                "at": event.at.isoformat(),
            },
        }
        return Prepared.made(own, fields, encoded) if encoded is not None else {**own, **fields}

    async def record_of(self, customer_id: int) -> Record:
        """A customer chosen or created by the agent, as the pop shows it."""
        async with self._db() as db:
            return await self._record(db, customer_id, "found", [])

    # -- look-ups -----------------------------------------------------------------------------

    async def _in_time(self, call: CallPop) -> Record:
        async with asyncio.timeout(READY_DEADLINE):  # no task of its own, unlike wait_for
            return await self._when_identified(call)

    async def _when_identified(self, call: CallPop) -> Record:
        await call.identified.wait()
        if call.lookup is None and call.identity is not None:  # no desk was signed in then
            self._read(call, call.identity)
        if call.lookup is None:
            raise OSError("the caller's identification came without a record to read")
        return await asyncio.shield(call.lookup)

    def _call(self, key: CallKey) -> CallPop:
        call = self._calls.get(key)
        if call is None:
            if len(self._calls) >= MAX_CALLS:  # calls whose end we never saw
                self.ended(*next(iter(self._calls)))
            call = self._calls[key] = CallPop(key)
        return call

    async def _record_of_caller(
        self, event: CustomerIdentified, before: asyncio.Task[Record] | None
    ) -> Record:
        """The record of the customer identified, with the customers the number names."""
        if event.by is IdentifiedBy.IVR and event.customer_id is not None:
            return await self._identified(event.customer_id, before)
        async with self._db() as db:
            rows = await customers_by_ids(db, event.matches) if event.matches else []
            matches = [
                {"id": m.id, "name": m.name, "tier": m.tier, "language": m.language}
                for m in sorted(rows, key=lambda row: row.id)
            ]
            if event.customer_id is not None:
                return await self._record(db, event.customer_id, "found", matches)
            number = event.number or event.caller_number
            return {"lookup": event.lookup, "number": number, "matches": matches}

    async def _identified(self, customer_id: int, before: asyncio.Task[Record] | None) -> Record:
        if before is not None:
            with contextlib.suppress(Exception):
                done = await before
                if done.get("customer") and done["customer"]["id"] == customer_id:
                    return done
        async with self._db() as db:
            return await self._record(db, customer_id, "found", [])

    async def _record(
        self, db: AsyncSession, customer_id: int, status: str, matches: list[Record]
    ) -> Record:
        try:
            row = await get_customer(db, customer_id)
        except NotFound:
            return {"lookup": "unknown", "number": "", "matches": matches}
        organisation = None
        if row.organisation_id is not None:
            org = await db.get(Customer, row.organisation_id)
            organisation = org.name if org is not None else None
        history = await timeline(db, customer_id, limit=LAST_INTERACTIONS)
        cases = await open_cases_of(db, customer_id)
        return {
            "lookup": status,
            "number": row.phones[0].e164 if row.phones else "",
            "matches": matches,
            "customer": customer_view(row, organisation),
            "interactions": [
                {
                    "at": i.arrived_at.isoformat() if i.arrived_at else "",
                    "kind": i.kind,
                    "queue": i.queue or "",
                    "agent": i.agent_name or "",
                    "outcome": i.disposition or i.ended_by or i.kind,
                    "notes": (i.notes or "")[:200],
                }
                for i in history
            ],
            "cases": [
                {
                    "id": c.id,
                    "category": c.category,
                    "severity": c.severity,
                    "status": c.status,
                    "summary": c.summary[:200],
                }
                for c in cases
            ],
        }

    async def close(self) -> None:
        tasks = [c.lookup for c in self._calls.values() if c.lookup is not None]
        tasks += self._finishing
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._calls.clear()
