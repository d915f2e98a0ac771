"""Complaint cases: opened from a detector's signal or by hand, worked to closure.

Workflow: open → assigned → resolved → closed; a resolved case may be reopened (assigned again).
The due date comes from the SLA of the case's severity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import cases_visible, may_touch_case
from crm_core.customers import get_customer
from crm_core.errors import Forbidden, InvalidInput, InvalidTransition, NotFound
from crm_core.models import (
    CaseInteraction,
    ComplaintCase,
    ComplaintSignal,
    Interaction,
    User,
    utcnow,
)
from crm_core.text_rules import unsafe_character

MAX_ROOT_CAUSE = 2000
CATEGORIES = ("billing", "delivery", "product", "service", "staff", "other")
"""What a complaint is about: one vocabulary for cases opened by hand and by the detector (whose
own list, ``cti_server.complaints.CATEGORIES``, a test keeps equal to this)."""
_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])

TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"assigned"}),
    "assigned": frozenset({"assigned", "resolved"}),
    "resolved": frozenset({"closed", "assigned"}),
    "closed": frozenset(),
}


class CaseSla(BaseModel):
    """Hours to resolve, per severity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    critical: float = 4
    high: float = 24
    medium: float = 72
    low: float = 168

    def due(self, severity: str, opened: datetime) -> datetime:
        return opened + timedelta(hours=float(getattr(self, severity)))


async def open_case(
    session: AsyncSession,
    *,
    customer_id: int,
    category: str,
    severity: str,
    summary: str = "",
    interaction_ids: Sequence[int] = (),
    evidence: list[Any] | None = None,
    signal_id: int | None = None,
    sla: CaseSla,
) -> ComplaintCase:
    await get_customer(session, customer_id)
    if category not in CATEGORIES:
        raise InvalidInput(f"category: must be one of {', '.join(CATEGORIES)}")
    if severity not in CaseSla.model_fields:
        raise InvalidInput(f"severity: must be one of {', '.join(CaseSla.model_fields)}")
    opened = utcnow()
    case = ComplaintCase(
        customer_id=customer_id,
        category=category,
        severity=severity,
        summary=summary,
        opened_at=opened,
        due_at=sla.due(severity, opened),
        evidence=evidence or [],
        source_signal_id=signal_id,
    )
    session.add(case)
    await session.flush()
    for interaction_id in dict.fromkeys(interaction_ids):
        if await session.get(Interaction, interaction_id) is None:
            raise NotFound(f"interaction {interaction_id} does not exist")
        session.add(CaseInteraction(case_id=case.id, interaction_id=interaction_id))
    await session.flush()
    return case


async def add_signal(
    session: AsyncSession,
    *,
    interaction_id: int,
    probability: float,
    category: str,
    severity: str,
    evidence: list[Any] | None = None,
) -> ComplaintSignal:
    """Store what the complaint detector found on an interaction."""
    if await session.get(Interaction, interaction_id) is None:
        raise NotFound(f"interaction {interaction_id} does not exist")
    if severity not in CaseSla.model_fields:
        raise InvalidInput(f"severity: must be one of {', '.join(CaseSla.model_fields)}")
    if not 0.0 <= probability <= 1.0:
        raise InvalidInput("probability: from 0 to 1")
    signal = ComplaintSignal(
        interaction_id=interaction_id,
        probability=probability,
        category=category,
        severity=severity,
        evidence=evidence or [],
    )
    session.add(signal)
    await session.flush()
    return signal


async def open_case_from_signal(
    session: AsyncSession, signal_id: int, sla: CaseSla
) -> ComplaintCase:
    """A case for a complaint signal, once: a second call returns the case already opened."""
    existing = await session.scalar(
        select(ComplaintCase).where(ComplaintCase.source_signal_id == signal_id)
    )
    if existing is not None:
        return existing
    signal = await session.get(ComplaintSignal, signal_id)
    if signal is None:
        raise NotFound(f"complaint signal {signal_id} does not exist")
    interaction = await session.get(Interaction, signal.interaction_id)
    if interaction is None or interaction.customer_id is None:
        raise InvalidInput("the signal's interaction has no known customer")
    return await open_case(
        session,
        customer_id=interaction.customer_id,
        category=signal.category,
        severity=signal.severity,
        summary=f"detected with probability {signal.probability:.2f}",
        interaction_ids=[interaction.id],
        evidence=list(signal.evidence),
        signal_id=signal.id,
        sla=sla,
    )


async def get_case(session: AsyncSession, case_id: int, viewer: User) -> ComplaintCase:
    case = await session.get(ComplaintCase, case_id)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    if not may_touch_case(viewer, case):
        raise Forbidden("below the manager role, only the cases assigned to you")
    return case


def _move(case: ComplaintCase, target: str) -> None:
    if target not in TRANSITIONS[case.status]:
        raise InvalidTransition(f"case {case.id}: cannot go from {case.status} to {target}")
    case.status = target


async def assign_case(session: AsyncSession, case: ComplaintCase, owner_id: int) -> ComplaintCase:
    owner = await session.get(User, owner_id)
    if owner is None or not owner.active:
        raise InvalidInput(f"owner_id: no active user {owner_id}")
    _move(case, "assigned")
    case.owner_id = owner_id
    case.assigned_at = utcnow()
    case.resolved_at = None
    await session.flush()
    return case


async def resolve_case(
    session: AsyncSession, case: ComplaintCase, root_cause: str | None = None
) -> ComplaintCase:
    """Resolved, with why it happened when known (the review page always asks)."""
    if root_cause is not None:
        root_cause = root_cause.strip()
        if not root_cause or len(root_cause) > MAX_ROOT_CAUSE:
            raise InvalidInput(f"root_cause: from 1 to {MAX_ROOT_CAUSE} characters")
        if (unsafe := unsafe_character(root_cause)) is not None:
            raise InvalidInput(f"root_cause: {unsafe} is not allowed")
    _move(case, "resolved")
    case.resolved_at = utcnow()
    if root_cause is not None:
        case.root_cause = root_cause
    await session.flush()
    return case


async def close_case(session: AsyncSession, case: ComplaintCase) -> ComplaintCase:
    _move(case, "closed")
    case.closed_at = utcnow()
    await session.flush()
    return case


async def cases_for(
    session: AsyncSession,
    viewer: User,
    *,
    status: str | None = None,
    customer_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ComplaintCase]:
    """Managers and admins see every case, the others those assigned to them
    (:mod:`crm_core.access`)."""
    query = select(ComplaintCase)
    visible = cases_visible(viewer)
    if visible is not None:
        query = query.where(visible)
    if status is not None:
        query = query.where(ComplaintCase.status == status)
    if customer_id is not None:
        query = query.where(ComplaintCase.customer_id == customer_id)
    result = await session.scalars(
        query.order_by(ComplaintCase.due_at, ComplaintCase.id).limit(limit).offset(offset)
    )
    return list(result)


async def open_cases_of(session: AsyncSession, customer_id: int) -> list[ComplaintCase]:
    result = await session.scalars(
        select(ComplaintCase)
        .where(ComplaintCase.customer_id == customer_id, ComplaintCase.status != "closed")
        .order_by(ComplaintCase.opened_at)
    )
    return list(result)


@dataclass(frozen=True)
class CaseFilter:
    """What the service manager's review narrows cases to; None: any.

    ``agent_id`` is the agent who handled one of the case's calls; ``opened_from`` and
    ``opened_before`` bound the opening time (half-open, so that weeks and days tile).
    """

    severity: str | None = None
    category: str | None = None
    status: str | None = None
    agent_id: int | None = None
    opened_from: datetime | None = None
    opened_before: datetime | None = None


def _filtered(query: _Query, where: CaseFilter) -> _Query:
    if where.severity is not None:
        query = query.where(ComplaintCase.severity == where.severity)
    if where.category is not None:
        query = query.where(ComplaintCase.category == where.category)
    if where.status is not None:
        query = query.where(ComplaintCase.status == where.status)
    if where.opened_from is not None:
        query = query.where(ComplaintCase.opened_at >= where.opened_from)
    if where.opened_before is not None:
        query = query.where(ComplaintCase.opened_at < where.opened_before)
    if where.agent_id is not None:
        handled = (
            select(CaseInteraction.case_id)
            .join(Interaction, Interaction.id == CaseInteraction.interaction_id)
            .where(Interaction.agent_id == where.agent_id)
        )
        query = query.where(ComplaintCase.id.in_(handled))
    return query


async def review_cases(
    session: AsyncSession, viewer: User, where: CaseFilter, *, limit: int = 200, offset: int = 0
) -> list[ComplaintCase]:
    """Cases for the review page, newest first; below manager only those assigned to them."""
    query = _filtered(select(ComplaintCase), where)
    visible = cases_visible(viewer)
    if visible is not None:
        query = query.where(visible)
    result = await session.scalars(
        query.order_by(ComplaintCase.opened_at.desc(), ComplaintCase.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(result)


async def case_openings(
    session: AsyncSession, where: CaseFilter, limit: int = 100_000
) -> list[tuple[str, datetime]]:
    """(category, opened_at) of the matching cases: what the review's charts count."""
    query = _filtered(select(ComplaintCase.category, ComplaintCase.opened_at), where)
    rows = await session.execute(query.order_by(ComplaintCase.opened_at).limit(limit))
    return [(category, opened) for category, opened in rows]


async def interactions_of_case(session: AsyncSession, case_id: int) -> list[Interaction]:
    """The calls a case is about, oldest first."""
    result = await session.scalars(
        select(Interaction)
        .join(CaseInteraction, CaseInteraction.interaction_id == Interaction.id)
        .where(CaseInteraction.case_id == case_id)
        .order_by(Interaction.arrived_at.nulls_last(), Interaction.id)
    )
    return list(result)
