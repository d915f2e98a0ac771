"""The integration service: the bus in, public events out to stream clients and webhooks.

It reads one bus subscription in order. A call's events wait until the caller identification
says who the caller is (``CustomerIdentified``, by caller ID), and again while the CRM reads
the customer the IVR identified, at most ``identify_seconds``, so that ``call.arrived`` carries
the customer and a call's events keep their order; other calls go on meanwhile. An
identification that does not come in time, or a read that fails, leaves the customer null.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from cti_server import events as internal
from cti_server.bus import Bus, Subscription
from cti_server.events import CallKey
from cti_server.integrations.customers import CustomerDirectory
from cti_server.integrations.events import Customer
from cti_server.integrations.translate import Receiver, Translator
from cti_server.integrations.webhooks import Webhooks

log = logging.getLogger(__name__)

CONSUMED = (
    internal.CallArrived,
    internal.CallStarted,
    internal.IvrFinished,
    internal.AgentRinging,
    internal.CallQueued,
    internal.CallAnswered,
    internal.CallTransferred,
    internal.CallEnded,
    internal.ComplaintDetected,
    internal.CustomerIdentified,
)
REMEMBERED = 20000  # identifications kept for calls not yet arrived here (the oldest forgotten)


class IntegrationService:
    def __init__(
        self,
        bus: Bus,
        webhooks: Webhooks,
        customers: CustomerDirectory | None = None,
        identify_seconds: float = 2.0,
    ) -> None:
        self._bus = bus
        self.webhooks = webhooks
        self._customers = customers
        self._identify_seconds = identify_seconds
        self._translator = Translator()
        self.receivers: set[Receiver] = set()
        self._held: dict[CallKey, list[internal.DomainEvent]] = {}
        self._lookups: set[asyncio.Task[None]] = set()
        self._identified: OrderedDict[CallKey, Customer | None] = OrderedDict()
        self._awaited: dict[CallKey, asyncio.Future[Customer | None]] = {}
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.sent_by_type: Counter[str] = Counter()

    async def start(self) -> None:
        self._subscription = self._bus.subscribe(*CONSUMED)
        await self.webhooks.start()
        self._task = asyncio.create_task(self._run(self._subscription), name="integrations")

    async def close(self) -> None:
        for task in [t for t in (self._task, *self._lookups) if t is not None]:
            task.cancel()
        for task in [t for t in (self._task, *self._lookups) if t is not None]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._subscription is not None:
            self._subscription.close()
        await self.webhooks.close()

    async def _run(self, subscription: Subscription) -> None:
        async for event in subscription:
            self.handle(event)

    def handle(self, event: internal.DomainEvent) -> None:
        """One internal event, in bus order (tests may call it directly)."""
        if isinstance(event, internal.CustomerIdentified):
            self._caller_identified(event)
            return
        linkedid = getattr(event, "linkedid", None)
        key = CallKey(str(getattr(event, "node", "")), str(linkedid)) if linkedid else None
        if isinstance(event, internal.CallEnded) and key is not None:
            self._identified.pop(key, None)
        if key is not None and key in self._held:
            self._held[key].append(event)
            return
        lookup = self._lookup_for(event)
        if key is not None and lookup is not None:
            self._held[key] = []
            task = asyncio.get_running_loop().create_task(
                self._identify(key, event, lookup), name=f"integrations-identify-{linkedid}"
            )
            self._lookups.add(task)
            task.add_done_callback(self._lookups.discard)
            return
        self._publish(event)

    def _lookup_for(self, event: internal.DomainEvent) -> Awaitable[Customer | None] | None:
        if self._customers is None:
            return None
        if isinstance(event, internal.CallArrived) and event.caller_number:
            return self._caller_of(CallKey.of(event))
        if isinstance(event, internal.IvrFinished) and event.customer_id is not None:
            return self._customers.by_id(event.customer_id)
        return None

    def _caller_identified(self, event: internal.CustomerIdentified) -> None:
        """The identification's answer for a caller ID (the IVR's own is read by id, below)."""
        if event.by is not internal.IdentifiedBy.CALLER_ID:
            return
        key = CallKey.of(event)
        customer = None
        if event.customer_id is not None:
            customer = Customer(
                id=event.customer_id, name=event.name or None, tier=event.tier or None
            )
        waiting = self._awaited.pop(key, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(customer)
            return
        self._identified[key] = customer
        while len(self._identified) > REMEMBERED:
            self._identified.popitem(last=False)

    async def _caller_of(self, key: CallKey) -> Customer | None:
        """The customer the identification named for the call's caller ID (already, or when it
        does)."""
        if key in self._identified:
            return self._identified.pop(key)
        waiting: asyncio.Future[Customer | None] = asyncio.get_running_loop().create_future()
        self._awaited[key] = waiting
        try:
            return await waiting
        finally:
            self._awaited.pop(key, None)

    async def _identify(
        self, key: CallKey, event: internal.DomainEvent, lookup: Awaitable[Customer | None]
    ) -> None:
        customer = None
        try:
            customer = await asyncio.wait_for(lookup, self._identify_seconds)
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            log.warning("integrations: no customer for call %s: %r", key[1], exc)
        except Exception:  # best effort: the call's events must go on without the customer
            log.exception("integrations: the customer look-up of call %s failed", key[1])
        if customer is None and isinstance(event, internal.IvrFinished) and event.customer_id:
            customer = Customer(id=event.customer_id, name=None, tier=None)  # the IVR knew
        held = self._held.pop(key, [])
        self._translator.identified(key, customer)
        self._publish(event)
        for index, later in enumerate(held):
            self.handle(later)
            if key in self._held:  # held again (the IVR named the customer)
                self._held[key].extend(held[index + 1 :])
                break

    def _publish(self, event: internal.DomainEvent) -> None:
        try:
            sent = self._translator.translate(event)
        except Exception:  # one event the public shapes refuse must not end the stream
            log.exception("integrations: could not publish %s", type(event).__name__)
            return
        for outgoing in sent:
            self.sent += 1
            self.sent_by_type[outgoing.type] += 1
            self.webhooks.offer(outgoing)
            for receiver in list(self.receivers):
                receiver.offer(outgoing)

    def status(self) -> dict[str, Any]:
        return {
            "ok": self._task is not None and not self._task.done(),
            "sent": self.sent,
            "streams": len(self.receivers),
            "webhooks": self.webhooks.status(),
        }
