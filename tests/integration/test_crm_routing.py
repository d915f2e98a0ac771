"""What the router asks the CRM (crm_core.routing), on SQLite and PostgreSQL: agents' skills, a
customer's tier and value, and the preferred agent (good outcome, recent, not complained about)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.cases import CaseSla, open_case
from crm_core.customers import create_customer
from crm_core.interactions import record_interaction
from crm_core.people import create_user, set_skill
from crm_core.routing import agent_profiles, customer_facts, preferred_agent
from crm_core.schemas import CustomerIn, InteractionIn

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


async def _agent(
    s: AsyncSession,
    name: str,
    extension: str,
    languages: list[str] | None = None,
    team: str | None = None,
) -> int:
    user = await create_user(
        s,
        username=name,
        password="password1",
        role="agent",
        extension=extension,
        languages=languages,
        team=team,
    )
    return user.id


async def _served(
    s: AsyncSession, customer: int, agent: int, days_ago: float, **extra: object
) -> int:
    at = NOW - timedelta(days=days_ago)
    row = await record_interaction(
        s,
        InteractionIn.model_validate(
            {
                "node": "pbx1",
                "linkedid": f"call-{agent}-{days_ago}",
                "customer_id": customer,
                "agent_id": agent,
                "arrived_at": at,
                "answered_at": at,
                **extra,
            }
        ),
    )
    return row.id


@pytest.mark.asyncio
async def test_agent_profiles_carry_skills_languages_and_team(crm: Sessions) -> None:
    async with crm() as s, s.begin():
        ann = await _agent(s, "ann", "3001", languages=["en", "zh"], team="overflow")
        await set_skill(s, ann, "billing", 9)
        await set_skill(s, ann, "sales", 3)
        await create_user(s, username="sup", password="password1", role="supervisor")

    async with crm() as s:
        profiles = await agent_profiles(s)

    assert list(profiles) == ["3001"]  # users without an extension take no calls
    assert profiles["3001"].skills == {"billing": 9, "sales": 3}
    assert profiles["3001"].languages == {"en", "zh"}
    assert profiles["3001"].team == "overflow"


@pytest.mark.asyncio
async def test_the_preferred_agent_served_well_recently_and_was_not_complained_about(
    crm: Sessions,
) -> None:
    async with crm() as s, s.begin():
        customer = (
            await create_customer(
                s, CustomerIn.model_validate({"name": "Wang", "tier_override": "gold"}), "CN"
            )
        ).id
        good_old = await _agent(s, "good-old", "3001")
        rated_low = await _agent(s, "rated-low", "3002")
        complained = await _agent(s, "complained", "3003")
        too_long_ago = await _agent(s, "too-long-ago", "3004")
        await _served(s, customer, good_old, days_ago=10)
        await _served(s, customer, rated_low, days_ago=2, survey_score=2)
        await _served(s, customer, complained, days_ago=30)
        call = await _served(s, customer, complained, days_ago=1)
        await open_case(
            s,
            customer_id=customer,
            category="staff",
            severity="high",
            interaction_ids=[call],
            sla=CaseSla(),
        )
        await _served(s, customer, too_long_ago, days_ago=200)

    async with crm() as s:
        preferred = await preferred_agent(s, customer, now=NOW, within_days=90)
        nobody_recent = await preferred_agent(s, customer, now=NOW, within_days=5)
        facts = await customer_facts(s, customer, now=NOW, preferred_days=90)

    assert preferred == "3001"  # newer calls: a low survey score, an agent complained about
    assert nobody_recent is None
    assert facts is not None
    assert (facts.tier, facts.value_score, facts.preferred_extension) == ("gold", 0.0, "3001")
