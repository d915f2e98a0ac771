"""Who is calling, asked of the CRM once per call and published as ``CustomerIdentified``.

The caller ID is looked up as soon as a call shows its number: usually ``CallArrived`` (the IVR
answers), else the first tracker event that carries it (a call that never passed the IVR, one
already running when this server started). When the IVR identifies the caller otherwise (an
account number, a PIN), that is published too and wins: a caller-ID answer still on its way
afterwards is dropped. Calls whose number names nobody, or several customers, are published
as such (the desk asks who is calling). The IVR's own "who is this" is the same answer
(:meth:`CallerIdentification.customer_of`): the CRM is asked once per call. Processes that
share a node each identify its calls: the bus does not carry one process's events about a node
to another that follows it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.callers import identify_caller
from cti_server.bus import Bus
from cti_server.events import (
    AgentRinging,
    CallArrived,
    CallEnded,
    CallKey,
    CallStarted,
    CustomerIdentified,
    DomainEvent,
    IdentifiedBy,
    IvrFinished,
)

log = logging.getLogger(__name__)

MAX_CALLS = 20000  # calls remembered as identified, the oldest forgotten
_SHOWS_CALLER = (CallArrived, CallStarted, AgentRinging, CallEnded)


class CallerIdentification:
    """The one owner of "who is this call's customer"."""

    TRACKED = (*_SHOWS_CALLER, IvrFinished)

    def __init__(self, sessions: async_sessionmaker[AsyncSession], region: str) -> None:
        self._sessions = sessions
        self._region = region
        self._publish: Callable[[DomainEvent], None] | None = None
        self._asked: OrderedDict[CallKey, IdentifiedBy] = OrderedDict()
        self._lookups: OrderedDict[CallKey, asyncio.Task[int | None]] = OrderedDict()
        self._tasks: set[asyncio.Task[int | None]] = set()

    def subscribe(self, bus: Bus) -> None:
        self._publish = bus.publish
        bus.listen(self.TRACKED, self._on_event)

    async def settled(self) -> None:
        """Until the look-ups under way are published (for tests and benchmarks)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_event(self, event: DomainEvent) -> None:
        if isinstance(event, IvrFinished):
            if event.customer_id is not None:
                self._by_ivr(event, event.customer_id)
        elif isinstance(event, _SHOWS_CALLER) and event.caller_number:
            key = CallKey.of(event)
            if key not in self._asked:
                self._look_up(key, event.caller_number)

    async def customer_of(self, key: CallKey, number: str) -> int | None:
        """The one customer the caller ID ``number`` names for this call (None: nobody, several,
        or the CRM is away): the answer published for the call, asked now if not yet under way."""
        task = self._lookups.get(key)
        if task is None:
            task = self._look_up(key, number)
        return await asyncio.shield(task)

    def _look_up(self, key: CallKey, number: str) -> asyncio.Task[int | None]:
        if key not in self._asked:  # an IVR's answer already given stays
            self._remember(key, IdentifiedBy.CALLER_ID)
        task = asyncio.get_running_loop().create_task(
            self._by_caller_id(key, number), name=f"identify-{key}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._lookups[key] = task
        while len(self._lookups) > MAX_CALLS:
            self._lookups.popitem(last=False)
        return task

    def _remember(self, key: CallKey, by: IdentifiedBy) -> None:
        self._asked[key] = by
        while len(self._asked) > MAX_CALLS:  # calls whose end we never saw
            self._asked.popitem(last=False)

    def _by_ivr(self, event: IvrFinished, customer_id: int) -> None:
        self._remember(CallKey.of(event), IdentifiedBy.IVR)
        self._send(
            CustomerIdentified(
                node=event.node,
                linkedid=event.linkedid,
                caller_number="",
                customer_id=customer_id,
                by=IdentifiedBy.IVR,
                lookup="found",
            )
        )

    async def _by_caller_id(self, key: CallKey, number: str) -> int | None:
        try:
            async with self._sessions() as session:
                found = await identify_caller(session, number, self._region)
        except (DBAPIError, OSError) as exc:
            log.warning("call %s: caller %r not identified, the CRM is away: %s", key, number, exc)
            return None
        ids = [match.id for match in found.customers]
        one = found.customers[0] if found.status == "found" else None
        if self._asked.get(key) is IdentifiedBy.IVR:
            return one.id if one is not None else None  # the IVR's answer stands for the others
        self._send(
            CustomerIdentified(
                node=key.node,
                linkedid=key.linkedid,
                caller_number=number,
                customer_id=one.id if one is not None else None,
                by=IdentifiedBy.CALLER_ID,
                lookup=found.status,
                number=found.number or "",
                matches=ids,
                name=one.name if one is not None else "",
                tier=one.tier if one is not None else "",
            )
        )
        return one.id if one is not None else None

    def _send(self, event: CustomerIdentified) -> None:
        if self._publish is not None:
            self._publish(event)
