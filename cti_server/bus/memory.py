"""In-process bus: each subscriber has its own bounded queue; a slow one cannot stall others."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from cti_server.events import DomainEvent

log = logging.getLogger(__name__)


Listener = Callable[[DomainEvent], None]


class Bus(Protocol):
    def publish(self, event: DomainEvent) -> None: ...
    def subscribe(self, *types: type[DomainEvent], maxsize: int = 10000) -> Subscription: ...
    def listen(self, types: tuple[type[DomainEvent], ...], listener: Listener) -> None: ...
    def status(self) -> dict[str, Any]: ...


class Subscription:
    """An async iterator of events; when its queue is full the oldest event is dropped.

    A deque and one waiter rather than an ``asyncio.Queue``: every event goes to several
    subscriptions (1,000 rings at once at 1,000 agents), and the queue's bookkeeping for
    ``join`` and for many getters is work no subscriber needs (one reader each)."""

    def __init__(self, bus: MemoryBus, types: tuple[type[DomainEvent], ...], maxsize: int) -> None:
        self._bus = bus
        self.types = types
        self._events: deque[DomainEvent] = deque()
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self.dropped = 0
        self.muted: tuple[type[DomainEvent], ...] = ()

    def wants(self, kind: type[DomainEvent]) -> bool:
        """Whether events of ``kind`` are queued here now."""
        if self.muted and issubclass(kind, self.muted):
            return False
        return not self.types or issubclass(kind, self.types)

    def mute(self, *types: type[DomainEvent]) -> None:
        """Queue no events of ``types`` until they are unmuted (``mute()``): a part with nobody
        to tell of them for now (a wallboard that no board watches) is spared them, as is the
        bus (at 1,000 rings at once, each event queued costs)."""
        if types != self.muted:
            self.muted = types
            self._bus.rerouted()

    def offer(self, event: DomainEvent) -> None:
        if not self.wants(type(event)):
            return
        self.put(event)

    def put(self, event: DomainEvent) -> None:
        """Queue an event known to be of this subscription's types."""
        events = self._events
        if self._maxsize > 0 and len(events) >= self._maxsize:
            events.popleft()
            self.dropped += 1
        events.append(event)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def peek(self) -> DomainEvent | None:
        """The next event, if one is queued already (it stays queued)."""
        return self._events[0] if self._events else None

    async def get(self, timeout: float | None = None) -> DomainEvent:
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    def close(self) -> None:
        self._bus.unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[DomainEvent]:
        return self

    async def __anext__(self) -> DomainEvent:
        events = self._events
        while not events:
            if self._waiter is None or self._waiter.done():
                self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return events.popleft()


class MemoryBus:
    def __init__(self) -> None:
        self._subscriptions: tuple[Subscription, ...] = ()  # replaced, never changed in place
        self._listeners: list[tuple[tuple[type[DomainEvent], ...], Listener]] = []
        # the subscriptions each type of event goes to, found once per type (events are many,
        # their types few); forgotten whenever a subscription comes or goes
        self._routes: dict[type[DomainEvent], tuple[Subscription, ...]] = {}
        self._heard: dict[type[DomainEvent], tuple[Listener, ...]] = {}  # ... and listeners
        self.published = 0

    def publish(self, event: DomainEvent) -> None:
        """Deliver an event of this process: listeners first, then subscribers."""
        self.published += 1
        kind = type(event)
        listeners = self._heard.get(kind)
        if listeners is None:
            listeners = self._heard[kind] = tuple(
                listener for types, listener in self._listeners if issubclass(kind, types)
            )
        for listener in listeners:
            listener(event)
        self._offer(event, kind)

    def _offer(self, event: DomainEvent, kind: type[DomainEvent]) -> None:
        route = self._routes.get(kind)
        if route is None:
            route = self._routes[kind] = tuple(s for s in self._subscriptions if s.wants(kind))
        for subscription in route:
            subscription.put(event)

    def rerouted(self) -> None:
        """A subscription changed what it wants: each type's route is found again."""
        self._routes.clear()

    def listen(self, types: tuple[type[DomainEvent], ...], listener: Listener) -> None:
        """Call ``listener`` synchronously for every matching event *this process* publishes.

        For work that must not wait in a queue (the recorder's journal): events from other
        processes (Redis) are theirs to handle, so listeners never see them.
        """
        self._listeners.append((types, listener))
        self._heard.clear()

    def subscribe(self, *types: type[DomainEvent], maxsize: int = 10000) -> Subscription:
        subscription = Subscription(self, types, maxsize)
        self._subscriptions = (*self._subscriptions, subscription)
        self._routes.clear()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions = tuple(s for s in self._subscriptions if s is not subscription)
            self._routes.clear()

    def status(self) -> dict[str, Any]:
        return {
            "backend": "memory",
            "ok": True,
            "published": self.published,
            "subscribers": len(self._subscriptions),
            "dropped": sum(s.dropped for s in self._subscriptions),
        }
