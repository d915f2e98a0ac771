"""The demo/benchmark data set: counts, an 80/20 spend, findable phones, repeatable seeding.

Runs on SQLite and on PostgreSQL (the ``crm_database_url`` fixture). Seeding 2,000 customers
takes well under a second on either; looking each of their ~2,700 numbers up takes most of
the rest (lookup_by_caller_id costs 1.5-2 ms, see bench/crm_lookup.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import phonenumbers
import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_core import seed as seed_module
from crm_core.agent_figures import agent_segments
from crm_core.customers import create_customer, lookup_by_caller_id
from crm_core.database import make_engine
from crm_core.dedup import name_keys
from crm_core.interactions import parties_of
from crm_core.migrate import upgrade
from crm_core.models import (
    CaseInteraction,
    ComplaintCase,
    Customer,
    CustomerNameKey,
    Email,
    Interaction,
    InteractionParty,
    Phone,
    Transaction,
)
from crm_core.people import create_user
from crm_core.phones import display, to_e164
from crm_core.schemas import CustomerIn, PhoneIn
from crm_core.seed import HANDED_OVER_CALLS, SeedReport, seed_crm
from crm_core.valuation import recompute_value
from crm_core.value import TIER_ORDER, ValuePolicy

NOW = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
CUSTOMERS = 2_000
REGION = "CN"


@pytest_asyncio.fixture
async def engine(crm_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(crm_database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _count(session: AsyncSession, model: type[object]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.asyncio
async def test_seeded_data_set(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """2,000 customers (in batches of 500, so batch boundaries are crossed), seeded once."""
    monkeypatch.setattr(seed_module, "BATCH_SIZE", 500)
    progress: list[int] = []
    report = await seed_crm(engine, CUSTOMERS, seed=7, now=NOW, progress=progress.append)
    assert progress == [500, 1000, 1500, 2000]
    await _report_matches_tables(engine, report)
    await _spend_is_80_20_and_tiers_are_what_the_value_model_says(engine, report)
    await _every_phone_is_found_in_another_format(engine)
    await _name_keys_are_the_libraries(engine)


async def _name_keys_are_the_libraries(engine: AsyncEngine) -> None:
    """The duplicate search's stored keys are what crm_core.dedup computes from each name."""
    async with async_sessionmaker(engine)() as session:
        stored: dict[int, set[str]] = {}
        for customer_id, key in await session.execute(
            select(CustomerNameKey.customer_id, CustomerNameKey.key)
        ):
            stored.setdefault(customer_id, set()).add(key)
        names = (await session.execute(select(Customer.id, Customer.name, Customer.kind))).all()
    assert stored == {i: name_keys(name, kind) for i, name, kind in names}


async def _report_matches_tables(engine: AsyncEngine, report: SeedReport) -> None:
    async with async_sessionmaker(engine)() as session:
        assert report.customers == await _count(session, Customer) == CUSTOMERS
        organisations = await session.scalar(
            select(func.count()).where(Customer.kind == "organisation")
        )
        assert report.organisations == organisations
        assert report.phones == await _count(session, Phone)
        assert report.transactions == await _count(session, Transaction)
        assert report.interactions == await _count(session, Interaction)
        assert report.cases == await _count(session, ComplaintCase)
        assert await _count(session, CaseInteraction) == report.cases
        tiers = dict(
            (
                await session.execute(select(Customer.tier, func.count()).group_by(Customer.tier))
            ).all()
        )
        assert report.tiers == tiers
        assert report.seconds > 0

        # the shape of the data set, loosely: about 3 % organisations, some of them with
        # contacts, 1-2 phones each, about half with e-mail, calls for about 30 %, ~60 % zh
        assert 20 <= report.organisations <= 100
        contacts = await session.scalar(
            select(func.count()).where(Customer.organisation_id.is_not(None))
        )
        assert contacts
        per_customer = (
            select(func.count().label("n"))
            .select_from(Phone)
            .group_by(Phone.customer_id)
            .subquery()
        )
        assert (
            await session.execute(select(func.min(per_customer.c.n), func.max(per_customer.c.n)))
        ).one() == (1, 2)
        assert await session.scalar(select(func.count(func.distinct(Phone.customer_id)))) == (
            CUSTOMERS
        )
        emails = await _count(session, Email)
        assert 0.4 * CUSTOMERS <= emails <= 0.6 * CUSTOMERS
        callers = await session.scalar(select(func.count(func.distinct(Interaction.customer_id))))
        assert 0.25 * CUSTOMERS <= (callers or 0) <= 0.35 * CUSTOMERS
        statuses = set((await session.scalars(select(ComplaintCase.status))).all())
        assert statuses <= {"open", "assigned", "resolved"}
        chinese = await session.scalar(select(func.count()).where(Customer.language == "zh"))
        assert 0.5 * CUSTOMERS <= (chinese or 0) <= 0.7 * CUSTOMERS


async def _spend_is_80_20_and_tiers_are_what_the_value_model_says(
    engine: AsyncEngine, report: SeedReport
) -> None:
    async with async_sessionmaker(engine)() as session:
        rows = await session.execute(
            select(Customer.id, func.coalesce(func.sum(Transaction.amount), 0))
            .outerjoin(Transaction, Transaction.customer_id == Customer.id)
            .group_by(Customer.id)
        )
        spend = sorted((float(total) for _, total in rows.all()), reverse=True)
        share = sum(spend[: len(spend) // 5]) / sum(spend)
        print(f"top 20 % of customers hold {share:.1%} of the spend")
        assert 0.65 <= share <= 0.90

        assert len(report.tiers) >= 3
        assert set(report.tiers) <= set(TIER_ORDER)

        # the stored tiers and scores are exactly what recompute_value computes
        stored = (
            await session.execute(
                select(
                    Customer.id,
                    Customer.tier,
                    Customer.recency_score,
                    Customer.frequency_score,
                    Customer.monetary_score,
                    Customer.lifetime_value,
                )
                .order_by(Customer.lifetime_value.desc(), Customer.id)
                .limit(40)
            )
        ).all()
        for customer_id, tier, recency, frequency, monetary, value in stored:
            score = await recompute_value(session, customer_id, ValuePolicy(), NOW)
            assert (score.tier, score.recency, score.frequency, score.monetary) == (
                tier,
                recency,
                frequency,
                monetary,
            )
            assert round(score.lifetime_value, 2) == float(value)


async def _every_phone_is_found_in_another_format(engine: AsyncEngine) -> None:
    owners: dict[str, set[int]] = defaultdict(set)
    async with async_sessionmaker(engine)() as session:
        for e164, customer_id in (
            await session.execute(select(Phone.e164, Phone.customer_id))
        ).all():
            assert to_e164(e164, REGION) == e164  # stored normalized
            assert phonenumbers.is_valid_number(phonenumbers.parse(e164)), e164
            owners[e164].add(customer_id)
        shared = {number for number, who in owners.items() if len(who) > 1}
        assert shared, "some numbers (family landlines) are shared"
        assert len(shared) <= 0.05 * CUSTOMERS
        assert all(len(owners[number]) == 2 for number in shared)

    # ~2,800 lookups: the slowest part of this test (three queries each)
    async with async_sessionmaker(engine)() as session:
        for e164, who in sorted(owners.items()):
            typed = display(e164, REGION)  # national for Chinese numbers, else "+44 ..."
            assert typed != e164
            result = await lookup_by_caller_id(session, typed, REGION)
            assert result.number == e164
            assert {c.id for c in result.customers} == who
            assert result.status == ("ambiguous" if e164 in shared else "found")
            session.expunge_all()


@pytest.mark.asyncio
async def test_seeding_twice_adds_rows_without_collisions(engine: AsyncEngine) -> None:
    first = await seed_crm(engine, 300, seed=3, now=NOW)
    second = await seed_crm(engine, 300, seed=3, now=NOW)
    assert first.customers == second.customers == 300
    factory = async_sessionmaker(engine, expire_on_commit=False)
    async with factory() as session:
        assert await _count(session, Customer) == 600
        assert await _count(session, Phone) == first.phones + second.phones
        assert await _count(session, Transaction) == first.transactions + second.transactions
        numbers = await session.scalar(select(func.count(func.distinct(Phone.e164))))
        # the same seed again gives new numbers (they come from the row ids): only the
        # deliberately shared family landlines repeat
        shared = await session.scalar(
            select(func.count()).select_from(
                select(Phone.e164).group_by(Phone.e164).having(func.count() > 1).subquery()
            )
        )
        assert numbers == first.phones + second.phones - (shared or 0)
        accounts = await session.scalar(select(func.count(func.distinct(Customer.account_number))))
        assert accounts == 600

    # the database's own id generation carries on after the seeded ids (PostgreSQL sequences)
    async with factory() as session, session.begin():
        customer = await create_customer(
            session,
            CustomerIn(name="新客户", phones=[PhoneIn(number="139 0000 0000")]),
            REGION,
        )
        assert customer.id == 601


@pytest.mark.asyncio
async def test_same_seed_same_data_also_from_the_worker_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeding is repeatable, and the child process that generates big seeds makes the same rows."""
    monkeypatch.setattr(seed_module, "BATCH_SIZE", 100)
    dumps = []
    for name, parallel_from in (("inline", 10_000), ("worker", 1)):
        monkeypatch.setattr(seed_module, "PARALLEL_FROM", parallel_from)
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / name}.db")
        try:
            await upgrade(engine)
            progress: list[int] = []
            await seed_crm(engine, 250, seed=11, now=NOW, progress=progress.append)
            assert progress == [100, 200, 250]
            async with engine.connect() as connection:
                dumps.append(
                    [
                        (await connection.execute(select(table).order_by(*table.primary_key))).all()
                        for table in (
                            Customer.__table__,
                            Phone.__table__,
                            Email.__table__,
                            Transaction.__table__,
                            Interaction.__table__,
                            InteractionParty.__table__,
                        )
                    ]
                )
        finally:
            await engine.dispose()
    assert dumps[0] == dumps[1]
    assert all(dumps[0])


@pytest.mark.asyncio
async def test_a_few_calls_of_the_last_hour_went_from_desk_to_desk(engine: AsyncEngine) -> None:
    """A newcomer sees chains on customers' timelines and agents' figures on the wallboard:
    the seeded hand-overs (blind, attended, both) between the demo's desks, each party with its
    own time, tied to the users who already have those extensions."""
    factory = async_sessionmaker(engine, expire_on_commit=False)
    async with factory() as session, session.begin():
        users = {
            extension: (
                await create_user(
                    session,
                    username=f"desk{extension}",
                    password="x" * 12,
                    role="agent",
                    extension=extension,
                )
            ).id
            for extension in ("1001", "1901")
        }
    await seed_crm(engine, 300, seed=5, now=NOW)
    async with factory() as session:
        handed_over = list(
            await session.scalars(
                select(Interaction)
                .where(Interaction.id.in_(select(InteractionParty.interaction_id)))
                .order_by(Interaction.id)
            )
        )
        chains = await parties_of(session, [call.id for call in handed_over])
        today = NOW.replace(hour=0, minute=0)
        figures = await agent_segments(session, today, today + timedelta(days=1))
    assert [tuple(p.how for p in chains[call.id][1:]) for call in handed_over] == list(
        HANDED_OVER_CALLS
    )
    for call in handed_over:
        chain = chains[call.id]
        assert call.customer_id is not None
        assert call.kind == "inbound_call"
        assert (call.answered_at, call.ended_at) == (chain[0].started_at, chain[-1].ended_at)
        assert call.arrived_at is not None
        assert call.ended_at is not None
        assert NOW - timedelta(hours=1) <= call.arrived_at < call.ended_at <= NOW
        assert call.agent_id == chain[0].agent_id
        assert [p.position for p in chain] == list(range(len(chain)))
        assert len({p.extension for p in chain}) == len(chain), "a desk at most once a call"
        for before, after in pairwise(chain):
            assert after.started_at == before.ended_at
            assert after.by_party == before.party
        for party in chain:
            assert party.ended_at is not None
            assert party.seconds == (party.ended_at - party.started_at).total_seconds() > 0
            assert party.agent_id == users.get(party.extension or "")
    seeded = [p for call in handed_over for p in chains[call.id]]
    assert sum(f.calls for f in figures) == len(seeded)
    assert sum(f.talk_seconds for f in figures) == sum(p.seconds for p in seeded)
    assert {f.agent_id for f in figures if f.agent_id is not None} <= set(users.values())
