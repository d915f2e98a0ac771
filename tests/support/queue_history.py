"""Weeks of calls to a centre's queues in the CRM, for forecasts and staffing plans: every
weekday a busy morning and afternoon, some callers hanging up, at the centre's local times."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.models import Interaction

HOURLY = {8: 10, 9: 30, 10: 40, 11: 36, 12: 20, 13: 24, 14: 40, 15: 36, 16: 30, 17: 14}
"""Calls per hour to ``support`` on a weekday (sales gets a third as many); weekends half."""


async def seed_queue_history(
    db: async_sessionmaker[AsyncSession],
    before: date,
    zone: ZoneInfo,
    *,
    weeks: int = 4,
    seed: int = 19,
) -> int:
    """Calls on each of the ``weeks`` weeks before ``before``; how many were written."""
    draw = random.Random(seed)
    rows: list[dict[str, object]] = []
    first = before - timedelta(weeks=weeks)
    for n in range((before - first).days):
        day = first + timedelta(days=n)
        weekend = day.weekday() >= 5
        for hour, per_hour in HOURLY.items():
            for queue, share in (("support", 1.0), ("sales", 1 / 3)):
                calls = round(per_hour * share * (0.5 if weekend else 1.0))
                for _ in range(calls):
                    local = datetime.combine(day, datetime.min.time(), zone) + timedelta(
                        hours=hour, seconds=draw.uniform(0, 3600)
                    )
                    arrived = local.astimezone(UTC)
                    wait = draw.expovariate(1 / 25)
                    abandoned = draw.random() < 0.08
                    answered = None if abandoned else arrived + timedelta(seconds=wait)
                    handle = draw.uniform(120, 300)
                    ended = (
                        (answered + timedelta(seconds=handle))
                        if answered
                        else arrived + (timedelta(seconds=wait))
                    )
                    rows.append(
                        {
                            "external_key": f"pbx1:{len(rows)}",
                            "kind": "abandoned" if abandoned else "inbound_call",
                            "arrived_at": arrived,
                            "queued_at": arrived,
                            "answered_at": answered,
                            "ended_at": ended,
                            "queue": queue,
                        }
                    )
    async with db() as session, session.begin():
        await session.execute(insert(Interaction), rows)
    return len(rows)
