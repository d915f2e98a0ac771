"""A customer whose call went through three agents, for the customer page's chain tests: answered
by Li Na (1001), attended transfer to Wang Wei (1002), blind transfer to Zhao Min (1003); and a
call one agent handled alone (no chain shown)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.customers import create_customer
from crm_core.interactions import record_interaction
from crm_core.people import create_user
from crm_core.schemas import CustomerIn, InteractionIn
from tests.support.ui import PASSWORD

ANSWERED = datetime(2026, 11, 2, 9, 0, 30, tzinfo=UTC)
AGENTS = (
    ("lina", "Li Na", "1001"),
    ("wangwei", "Wang Wei", "1002"),
    ("zhaomin", "Zhao Min", "1003"),
)
SHOWN = (
    "answered by Li Na (1001) 2:10 → attended transfer by 1001 → Wang Wei (1002) 1:05"
    " → blind transfer by 1002 → Zhao Min (1003) 0:20"
)
"""The chain as the timeline reads with the names above."""


@dataclass(frozen=True)
class ChainedCall:
    customer_id: int
    interaction_id: int  # the call three agents handled
    alone_id: int  # the call Li Na handled alone


async def seed_chained_call(
    db: async_sessionmaker[AsyncSession], names: tuple[str, str, str] | None = None
) -> ChainedCall:
    """The agents (signing in with :data:`PASSWORD`; ``names`` replace their display names),
    a supervisor ``sam``, the customer and both calls."""
    async with db() as session, session.begin():
        ids = []
        for (username, name, extension), shown in zip(AGENTS, names or (None,) * 3, strict=True):
            user = await create_user(
                session,
                username=username,
                password=PASSWORD,
                role="agent",
                display_name=shown or name,
                extension=extension,
            )
            ids.append(user.id)
        await create_user(session, username="sam", password=PASSWORD, role="supervisor")
        customer = await create_customer(
            session, CustomerIn(name="Ann Lee", phones=[{"number": "+8613900000088"}]), "CN"
        )
        parties, start = [], ANSWERED
        for n, (how, seconds) in enumerate((("answer", 130), ("attended", 65), ("blind", 20))):
            extension = AGENTS[n][2]
            parties.append(
                {
                    "party": f"PJSIP/{extension}",
                    "extension": extension,
                    "agent_id": ids[n],
                    "agent_name": f"sim-{extension}",
                    "how": how,
                    "by_party": f"PJSIP/{AGENTS[n - 1][2]}" if n else None,
                    "started_at": start,
                    "ended_at": start + timedelta(seconds=seconds),
                    "seconds": seconds,
                }
            )
            start += timedelta(seconds=seconds)
        call = await record_interaction(
            session,
            InteractionIn.model_validate(
                {
                    "node": "pbx1",
                    "linkedid": "1700000000.21",
                    "customer_id": customer.id,
                    "arrived_at": ANSWERED - timedelta(seconds=30),
                    "answered_at": ANSWERED,
                    "ended_at": start,
                    "queue": "support",
                    "agent_id": ids[0],
                    "agent_name": "sim-1001",
                    "ended_by": "caller",
                    "parties": parties,
                }
            ),
        )
        alone = await record_interaction(
            session,
            InteractionIn.model_validate(
                {
                    "node": "pbx1",
                    "linkedid": "1700000000.20",
                    "customer_id": customer.id,
                    "arrived_at": ANSWERED - timedelta(days=1),
                    "agent_id": ids[0],
                    "agent_name": "sim-1001",
                    "parties": parties[:1],
                }
            ),
        )
        return ChainedCall(customer.id, call.id, alone.id)
