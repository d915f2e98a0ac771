"""The CRM as the router reads it: agents' profiles re-read every few seconds (so a supervisor's
skill edit takes effect without a restart), each customer's facts read once per call (the
customer is the one ``CustomerIdentified`` named: the router does not ask who is calling).

A database that cannot answer never stops routing: agents keep their last known profiles and
a customer without facts is routed on what the IVR said.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.routing import AgentProfile, CustomerFacts, agent_profiles, customer_facts

log = logging.getLogger(__name__)


class RoutingFacts(Protocol):
    """What the router asks of the CRM (a fake in unit tests)."""

    async def agents(self) -> Mapping[str, AgentProfile]: ...

    async def customer(self, customer_id: int | None) -> CustomerFacts | None: ...


class Directory:
    """:class:`RoutingFacts` from the CRM database."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        cache_seconds: float,
        preferred_days: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._cache_seconds = cache_seconds
        self._preferred_days = preferred_days
        self._clock = clock
        self._profiles: dict[str, AgentProfile] = {}
        self._read_at: float | None = None

    async def agents(self) -> Mapping[str, AgentProfile]:
        """Profiles by extension, at most ``cache_seconds`` old while the database answers."""
        now = self._clock()
        if self._read_at is not None and now - self._read_at < self._cache_seconds:
            return self._profiles
        try:
            async with self._sessions() as session:
                self._profiles = await agent_profiles(session)
        except (DBAPIError, OSError) as exc:
            log.warning("agents' skills unavailable, the last known ones stay: %s", exc)
        self._read_at = now
        return self._profiles

    def forget_agents(self) -> None:
        """Read the profiles again at the next decision."""
        self._read_at = None

    async def customer(self, customer_id: int | None) -> CustomerFacts | None:
        """The facts of the customer identified (by the IVR, else by caller ID), if any."""
        if customer_id is None:
            return None
        try:
            async with self._sessions() as session:
                return await customer_facts(
                    session,
                    customer_id,
                    now=datetime.now(UTC),
                    preferred_days=self._preferred_days,
                )
        except (DBAPIError, OSError) as exc:
            log.warning("customer %s unavailable for routing: %s", customer_id, exc)
            return None
