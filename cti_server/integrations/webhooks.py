"""Signed webhooks: each receiver has a bounded queue and one worker that POSTs in order.

A receiver that is slow or down holds up only its own queue: the bus and the other receivers go
on. When its queue is full the oldest event waiting is dropped (counted). A POST that fails
(an answer other than 2xx, a refused connection, a timeout) is tried again after a wait that
doubles each time, up to ``max_attempts`` tries; then the event is given up, logged and counted.
Receivers should treat the envelope's ``id`` as the idempotency key: a retry carries the same id.
Events waiting at shutdown are not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from cti_server.integrations import signing
from cti_server.integrations.access import Topics
from cti_server.integrations.settings import IntegrationsSettings, WebhookSettings
from cti_server.integrations.translate import Outgoing

log = logging.getLogger(__name__)

USER_AGENT = "cti-server-webhooks/1"


@dataclass
class WebhookStats:
    delivered: int = 0
    failed: int = 0  # given up after every try
    retried: int = 0
    dropped: int = 0  # pushed out of a full queue
    last_error: str = ""


class Webhook:
    """One receiver: its queue, its counters and its delivery loop."""

    def __init__(self, settings: WebhookSettings, limits: IntegrationsSettings) -> None:
        self.name = settings.name
        self._url = settings.url
        self._secret = settings.secret()
        self._topics = Topics(settings.topics)
        self._limits = limits
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue(limits.queue_size)
        self.stats = WebhookStats()

    def offer(self, outgoing: Outgoing) -> None:
        """Queue an event of its topics; never waits (a full queue loses its oldest)."""
        if not self._topics.match(outgoing.type):
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.stats.dropped += 1
        self._queue.put_nowait(outgoing)

    async def run(self, http: aiohttp.ClientSession) -> None:
        """Deliver until cancelled."""
        while True:
            outgoing = await self._queue.get()
            await self._deliver(http, outgoing)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1, 2, ...)."""
        delay: float = self._limits.backoff_seconds * 2.0 ** (attempt - 1)
        return min(self._limits.max_backoff_seconds, delay)

    async def _deliver(self, http: aiohttp.ClientSession, outgoing: Outgoing) -> None:
        body = outgoing.text.encode("utf-8")
        attempts = self._limits.max_attempts
        for attempt in range(1, attempts + 1):
            error = await self._post(http, outgoing, body)
            if not error:
                self.stats.delivered += 1
                return
            self.stats.last_error = error
            if attempt < attempts:
                self.stats.retried += 1
                await asyncio.sleep(self.backoff(attempt))
        self.stats.failed += 1
        log.warning(
            "webhook %s: gave up on %s %s after %d tries: %s",
            self.name,
            outgoing.type,
            outgoing.event.id,
            attempts,
            self.stats.last_error,
        )

    async def _post(self, http: aiohttp.ClientSession, outgoing: Outgoing, body: bytes) -> str:
        """One try: "" when the receiver took it, else what went wrong."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            signing.HEADER: signing.sign(self._secret, body),
            "X-CTI-Event": outgoing.type,
            "X-CTI-Event-Id": str(outgoing.event.id),
        }
        timeout = aiohttp.ClientTimeout(total=self._limits.timeout_seconds)
        try:
            async with http.post(self._url, data=body, headers=headers, timeout=timeout) as reply:
                if 200 <= reply.status < 300:
                    return ""
                return f"HTTP {reply.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "topics": list(self._topics.patterns),
            "queued": self._queue.qsize(),
            "delivered": self.stats.delivered,
            "failed": self.stats.failed,
            "retried": self.stats.retried,
            "dropped": self.stats.dropped,
            "last_error": self.stats.last_error,
        }


class Webhooks:
    """Every receiver, their workers and their HTTP client; fed by the integration service."""

    def __init__(
        self, settings: IntegrationsSettings, is_leader: Callable[[], bool] = lambda: True
    ) -> None:
        self.hooks = [Webhook(hook, settings) for hook in settings.webhooks]
        self._is_leader = is_leader  # processes sharing Redis: only the leader sends
        self._http: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def offer(self, outgoing: Outgoing) -> None:
        if self._tasks and self._is_leader():
            for hook in self.hooks:
                hook.offer(outgoing)

    async def start(self) -> None:
        if not self.hooks:
            return
        self._http = aiohttp.ClientSession()
        self._tasks = [
            asyncio.create_task(hook.run(self._http), name=f"webhook-{hook.name}")
            for hook in self.hooks
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._http is not None:
            await self._http.close()
            self._http = None

    def status(self) -> list[dict[str, Any]]:
        return [hook.status() for hook in self.hooks]
