"""What the call router asks the CRM: agents' skills and languages, a customer's value, and the
agent who served that customer well ("business friendship").

Read-only queries; the router (in ``cti_server``) caches and maps them, the CRM knows nothing of
telephony. Agents are named by their extension: that is how queue members find their user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import (
    CaseInteraction,
    ComplaintCase,
    ComplaintSignal,
    Customer,
    Interaction,
    Team,
    User,
)

BAD_DISPOSITIONS = frozenset({"complaint", "escalated", "abandoned"})
"""Dispositions that say the call did not go well: such a call makes no preferred agent."""
GOOD_SURVEY = 4
"""A survey score at least this good (or none given) counts as a good outcome."""
_RFM_SCORES = 3
_RFM_MAX = 5


@dataclass(frozen=True)
class AgentProfile:
    """An agent as routing needs them: skill levels (1-10), languages, team."""

    extension: str
    skills: dict[str, int] = field(default_factory=dict)
    languages: frozenset[str] = frozenset()
    team: str | None = None


@dataclass(frozen=True)
class CustomerFacts:
    """The customer's tier and value (0..1), and the extension of their preferred agent."""

    customer_id: int
    tier: str
    value_score: float
    preferred_extension: str | None


async def agent_profiles(session: AsyncSession) -> dict[str, AgentProfile]:
    """Every active user with an extension, by extension."""
    rows = await session.execute(
        select(User, Team.name)
        .outerjoin(Team, Team.id == User.team_id)
        .where(User.active, User.extension.is_not(None))
    )
    profiles: dict[str, AgentProfile] = {}
    for user, team in rows.all():
        extension = str(user.extension)
        profiles[extension] = AgentProfile(
            extension=extension,
            skills={link.skill.name: link.level for link in user.skills},
            languages=frozenset(str(language) for language in user.languages or []),
            team=team,
        )
    return profiles


def value_score(customer: Customer) -> float:
    """Recency, frequency and monetary scores (each 1-5) as one figure from 0 to 1."""
    total = customer.recency_score + customer.frequency_score + customer.monetary_score
    span = _RFM_SCORES * (_RFM_MAX - 1)
    return min(1.0, max(0.0, (total - _RFM_SCORES) / span))


async def customer_facts(
    session: AsyncSession, customer_id: int, *, now: datetime, preferred_days: int
) -> CustomerFacts | None:
    """Tier (an override wins), value score and preferred agent of one customer."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        return None
    preferred = await preferred_agent(session, customer_id, now=now, within_days=preferred_days)
    return CustomerFacts(
        customer_id=customer_id,
        tier=customer.tier_override or customer.tier,
        value_score=value_score(customer),
        preferred_extension=preferred,
    )


async def preferred_agent(
    session: AsyncSession, customer_id: int, *, now: datetime, within_days: int
) -> str | None:
    """The extension of the agent who last served this customer with a good outcome within
    ``within_days``, unless the customer ever complained about a call with that agent.

    A good outcome: answered, no bad disposition, and no survey score below 4. A complaint: a
    complaint case of this customer naming the interaction, a complaint signal on it, or the
    disposition ``complaint``.
    """
    complained_calls = select(CaseInteraction.interaction_id).join(
        ComplaintCase, ComplaintCase.id == CaseInteraction.case_id
    )
    complained_agents = select(Interaction.agent_id).where(
        Interaction.customer_id == customer_id,
        Interaction.agent_id.is_not(None),
        or_(
            Interaction.disposition == "complaint",
            Interaction.id.in_(complained_calls.where(ComplaintCase.customer_id == customer_id)),
            Interaction.id.in_(select(ComplaintSignal.interaction_id)),
        ),
    )
    extension = await session.scalar(
        select(User.extension)
        .join(Interaction, Interaction.agent_id == User.id)
        .where(
            Interaction.customer_id == customer_id,
            Interaction.answered_at >= now - timedelta(days=within_days),
            Interaction.answered_at <= now,
            or_(
                Interaction.disposition.is_(None),
                Interaction.disposition.not_in(BAD_DISPOSITIONS),
            ),
            or_(Interaction.survey_score.is_(None), Interaction.survey_score >= GOOD_SURVEY),
            User.active,
            User.extension.is_not(None),
            Interaction.agent_id.not_in(complained_agents),
        )
        .order_by(Interaction.answered_at.desc(), Interaction.id.desc())
        .limit(1)
    )
    return str(extension) if extension is not None else None
