"""The customers simulated calls come from: a sample of the CRM, with their tier and language."""

from __future__ import annotations

import random

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Customer, Phone
from cti_server.sim.plan import Caller

TIER_BY_CLASS = {2: ("platinum", "gold"), 1: ("silver", "standard"), 0: ("standard",)}


async def load_callers(session: AsyncSession, limit: int = 5000) -> list[Caller]:
    """Up to ``limit`` customers that have a phone, each once, in a stable order."""
    rows = await session.execute(
        select(
            func.min(Phone.e164),
            Customer.name,
            func.coalesce(Customer.tier_override, Customer.tier),
            Customer.language,
            Customer.account_number,
        )
        .join(Phone, Phone.customer_id == Customer.id)
        .where(Customer.merged_into_id.is_(None))
        .group_by(Customer.id)
        .order_by(Customer.id)
        .limit(limit)
    )
    return [
        Caller(
            number=number,
            name=name,
            tier=tier,
            language=language if language in ("en", "zh") else None,
            account="".join(ch for ch in account if ch.isdigit()) if account else None,
        )
        for number, name, tier, language, account in rows
    ]


def choose_caller(
    callers: list[Caller], rng: random.Random, klass: int | None = None, strangers: float = 0.15
) -> Caller | None:
    """A caller of the bank class's tiers when replaying, else anyone; some are strangers."""
    if not callers or rng.random() < strangers:
        return None
    if klass is not None:
        tiers = TIER_BY_CLASS.get(klass, ())
        matching = [c for c in callers if c.tier in tiers]
        if matching:
            return rng.choice(matching)
    return rng.choice(callers)
