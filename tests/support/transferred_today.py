"""A call handed over today, for the wallboard's "Agents today": Li Na (1001) answered and
talked 1:35, then blind-transferred the customer to Wang Wei (1002), who talked 0:40; and the
supervisor ``sam`` who watches the wallboard. Everyone signs in with :data:`PASSWORD`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.interactions import record_interaction
from crm_core.people import create_user
from crm_core.schemas import InteractionIn
from tests.support.ui import PASSWORD

FIRST, SECOND = ("lina", "Li Na", "1001", 95.0), ("wangwei", "Wang Wei", "1002", 40.0)


async def seed_transferred_today(
    db: async_sessionmaker[AsyncSession], first_name: str | None = None
) -> datetime:
    """The users and the call (``first_name`` replaces Li Na's display name); when it was
    answered: today (UTC) and before now, whatever the hour."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    answered = midnight + (now - midnight) / 2 - timedelta(seconds=SECOND[3] + FIRST[3])
    answered = max(answered, midnight)
    async with db() as session, session.begin():
        ids = []
        for username, name, extension, _ in (FIRST, SECOND):
            user = await create_user(
                session,
                username=username,
                password=PASSWORD,
                role="agent",
                display_name=first_name if first_name and username == "lina" else name,
                extension=extension,
            )
            ids.append(user.id)
        await create_user(session, username="sam", password=PASSWORD, role="supervisor")
        handed_over = answered + timedelta(seconds=FIRST[3])
        ended = handed_over + timedelta(seconds=SECOND[3])
        parties = [
            {
                "party": "PJSIP/1001",
                "extension": "1001",
                "agent_id": ids[0],
                "how": "answer",
                "started_at": answered,
                "ended_at": handed_over,
                "seconds": FIRST[3],
            },
            {
                "party": "PJSIP/1002",
                "extension": "1002",
                "agent_id": ids[1],
                "how": "blind",
                "by_party": "PJSIP/1001",
                "started_at": handed_over,
                "ended_at": ended,
                "seconds": SECOND[3],
            },
        ]
        await record_interaction(
            session,
            InteractionIn.model_validate(
                {
                    "node": "pbx1",
                    "linkedid": "1700000000.31",
                    "arrived_at": answered - timedelta(seconds=20),
                    "answered_at": answered,
                    "ended_at": ended,
                    "queue": "support",
                    "agent_id": ids[0],
                    "ended_by": "caller",
                    "parties": parties,
                }
            ),
        )
    return answered
