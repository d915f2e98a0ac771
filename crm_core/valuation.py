"""Customer value kept current: recomputed whenever a transaction or an interaction arrives."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.customers import get_customer
from crm_core.models import Transaction, utcnow
from crm_core.schemas import TransactionIn
from crm_core.value import Purchase, ValuePolicy, ValueScore, score_customer


async def recompute_value(
    session: AsyncSession, customer_id: int, policy: ValuePolicy, now: datetime | None = None
) -> ValueScore:
    customer = await get_customer(session, customer_id)
    rows = await session.execute(
        select(Transaction.at, Transaction.amount).where(Transaction.customer_id == customer_id)
    )
    purchases = [Purchase(at=at, amount=float(amount)) for at, amount in rows.all()]
    score = score_customer(purchases, now or utcnow(), policy, customer.tier_override)
    customer.tier = score.tier
    customer.tier_reason = score.reason[:200]
    customer.recency_score = score.recency
    customer.frequency_score = score.frequency
    customer.monetary_score = score.monetary
    customer.lifetime_value = round(score.lifetime_value, 2)  # type: ignore[assignment]
    await session.flush()
    return score


async def add_transaction(
    session: AsyncSession, customer_id: int, data: TransactionIn, policy: ValuePolicy
) -> Transaction:
    """Store the transaction (once per external_ref) and bring the customer's tier up to date."""
    await get_customer(session, customer_id)
    if data.external_ref is not None:
        existing = await session.scalar(
            select(Transaction).where(Transaction.external_ref == data.external_ref)
        )
        if existing is not None:
            return existing
    transaction = Transaction(customer_id=customer_id, **data.model_dump())
    session.add(transaction)
    await session.flush()
    await recompute_value(session, customer_id, policy)
    return transaction
