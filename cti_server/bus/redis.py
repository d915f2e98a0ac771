"""Redis bus: domain events shared by several CTI processes through Redis pub/sub.

Each process delivers its own events locally at once (a Redis outage never silences the local
parts) and publishes them to Redis tagged with its origin, skipping its own on the way back.
Processes that follow the same Asterisk node (scale-out, where any of them may lead the
routing) each know that node's calls from their own AMI link: an event of another process
about a node this one follows (``local_nodes``) is known here already and is not delivered
twice, bar the router's word (:data:`LEADERS_WORD`), which only the leader has.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from cti_server.bus.memory import MemoryBus
from cti_server.events import (
    CallRangOut,
    CallRouted,
    DomainEvent,
    UnknownEvent,
    event_from_dict,
)

log = logging.getLogger(__name__)

CHANNEL = "cti:events"
LEADERS_WORD = (CallRouted, CallRangOut)
"""Events about a node that only the leading process publishes (the router's): a process that
follows the node does not know them from its own AMI link, so they are delivered."""


class RedisBus(MemoryBus):
    def __init__(
        self,
        url: str,
        channel: str = CHANNEL,
        outbox_size: int = 10000,
        local_nodes: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__()
        self._local_nodes = local_nodes
        self._redis = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self._channel = channel
        self.origin = uuid.uuid4().hex
        self._outbox: asyncio.Queue[str] = asyncio.Queue(outbox_size)
        self._in_flight: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = False
        self.lost = 0
        self.received = 0
        self.known_here = 0

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._send_forever(), name="redis-bus-send"),
            asyncio.create_task(self._receive_forever(), name="redis-bus-receive"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._redis.aclose()

    def publish(self, event: DomainEvent) -> None:
        super().publish(event)
        wire = json.dumps({"origin": self.origin, "event": event.to_dict()}, ensure_ascii=False)
        if self._outbox.full():
            self._outbox.get_nowait()
            self.lost += 1
        self._outbox.put_nowait(wire)

    async def _send_forever(self) -> None:
        while True:
            self._in_flight = await self._outbox.get()
            while True:
                try:
                    await self._redis.publish(self._channel, self._in_flight)
                    break
                except (RedisError, OSError) as exc:
                    log.warning("Redis bus: cannot publish (%s); retrying", exc)
                    await asyncio.sleep(0.5)
                finally:
                    _raise_if_cancelling()
            self._in_flight = None

    async def _receive_forever(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    self.connected = True
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._deliver(message["data"])
            except (RedisError, OSError) as exc:
                if self.connected:
                    log.warning("Redis bus: subscription lost (%s); reconnecting", exc)
            finally:
                _raise_if_cancelling()
            self.connected = False
            await asyncio.sleep(0.5)

    def _deliver(self, data: bytes) -> None:
        try:
            wire = json.loads(data)
            if wire.get("origin") == self.origin:
                return
            event = event_from_dict(wire["event"])
        except (ValueError, KeyError, TypeError, UnknownEvent) as exc:
            log.warning("Redis bus: ignoring a message it cannot read: %s", exc)
            return
        self.received += 1
        if getattr(event, "node", None) in self._local_nodes and not isinstance(
            event, LEADERS_WORD
        ):
            self.known_here += 1
            return
        self._offer(event, type(event))

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "backend": "redis",
            "ok": self.connected,
            "received": self.received,
            "backlog": self._outbox.qsize() + (self._in_flight is not None),
            "lost": self.lost,
        }


def _raise_if_cancelling() -> None:
    """redis-py can swallow a CancelledError inside a command; do not let the task live on."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
