"""A complaint found in a call becomes a case: the CRM rule, whoever detected it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.callers import customer_for_caller
from crm_core.cases import CaseSla, add_signal, open_case_from_signal
from crm_core.models import ComplaintCase, ComplaintSignal, Interaction


class Detection(BaseModel):
    """What a complaint detector found in one call, with its evidence (which words, when)."""

    model_config = ConfigDict(frozen=True)

    probability: float
    category: str
    severity: str
    evidence: list[dict[str, Any]] = []


async def case_from_detection(
    session: AsyncSession, row: Interaction, found: Detection, region: str, sla: CaseSla
) -> ComplaintCase:
    """The finding, stored once per interaction (a journal replays it), and a case opened with
    its evidence for service managers to work; a caller the CRM did not know becomes a
    customer, for the case must belong to someone."""
    signal = await session.scalar(
        select(ComplaintSignal).where(ComplaintSignal.interaction_id == row.id)
    )
    if signal is None:
        signal = await add_signal(
            session,
            interaction_id=row.id,
            probability=found.probability,
            category=found.category,
            severity=found.severity,
            evidence=list(found.evidence),
        )
    if row.customer_id is None:
        row.customer_id = await customer_for_caller(session, row.caller_number or "", region)
        await session.flush()
    return await open_case_from_signal(session, signal.id, sla)
