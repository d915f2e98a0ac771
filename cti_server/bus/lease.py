"""One leader among several `cti serve` processes, for work that must happen once (routing).

A lease in Redis: ``SET key me NX PX ttl`` takes it, a compare-and-extend script renews it (only
the holder can), a compare-and-delete releases it on a clean stop. A holder that dies or loses
Redis stops renewing; the lease lapses after ``ttl`` and another process takes it at its next
try. A holder that cannot renew in time gives the lead up itself (``on_lost``) before the ttl
runs out, so two leaders never overlap as long as clocks tick at the same rate. Alone (the
in-process bus), a process leads at once: :class:`SoleLeader`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class Leader(Protocol):
    """Leads or not (``leading``); ``run`` keeps the lead up to date until cancelled."""

    leading: asyncio.Event
    holder: str

    async def run(self) -> None: ...


class SoleLeader:
    """The only process there is: it leads from the start."""

    def __init__(self) -> None:
        self.leading = asyncio.Event()
        self.leading.set()
        self.holder = "this process"

    async def run(self) -> None:
        await asyncio.Event().wait()  # nothing to renew; runs until cancelled


class RedisLease:
    def __init__(
        self,
        url: str,
        name: str,
        ttl: float = 5.0,
        on_gained: Callable[[], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self._url = url
        self._key = f"cti:lease:{name}"
        self._ttl_ms = int(ttl * 1000)
        self._every = ttl / 3
        self.holder = f"{uuid.uuid4().hex[:12]}"
        self.leading = asyncio.Event()
        self._on_gained = on_gained
        self._on_lost = on_lost
        self.changes = 0

    async def run(self) -> None:
        """Try to take or renew the lease every third of its ttl, until cancelled."""
        client = aioredis.Redis.from_url(self._url, socket_timeout=self._every)
        renewed_at = 0.0
        try:
            while True:
                try:
                    if self.leading.is_set():
                        held = bool(
                            await client.eval(_RENEW, 1, self._key, self.holder, self._ttl_ms)
                        )
                    else:
                        held = bool(
                            await client.set(self._key, self.holder, nx=True, px=self._ttl_ms)
                        )
                except (RedisError, OSError) as exc:
                    log.warning("lease %s: Redis unavailable: %s", self._key, exc)
                    held = self.leading.is_set() and (
                        time.monotonic() - renewed_at < self._ttl_ms / 1000 - self._every
                    )
                else:
                    if held:
                        renewed_at = time.monotonic()
                self._set(held)
                await asyncio.sleep(self._every)  # the renewal period itself
        finally:
            if self.leading.is_set():
                self._set(False)
                with contextlib.suppress(RedisError, OSError):
                    await client.eval(_RELEASE, 1, self._key, self.holder)
            await client.aclose()

    def _set(self, held: bool) -> None:
        if held == self.leading.is_set():
            return
        self.changes += 1
        if held:
            self.leading.set()
            log.info("lease %s taken by %s", self._key, self.holder)
            if self._on_gained is not None:
                self._on_gained()
        else:
            self.leading.clear()
            log.warning("lease %s lost by %s", self._key, self.holder)
            if self._on_lost is not None:
                self._on_lost()
