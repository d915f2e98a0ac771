"""The CRM core on SQLite and a real PostgreSQL: lookup, merge, idempotent writes, value, roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.cases import (
    CaseSla,
    add_signal,
    assign_case,
    cases_for,
    get_case,
    open_case,
    open_case_from_signal,
    open_cases_of,
)
from crm_core.customers import create_customer, get_customer, lookup_by_caller_id
from crm_core.database import make_engine
from crm_core.dedup import name_keys
from crm_core.errors import Forbidden, NotFound
from crm_core.interactions import end_unseen, record_interaction, segments_of, timeline
from crm_core.merge import merge_customers, undo_merge
from crm_core.migrate import downgrade, upgrade
from crm_core.models import Base, Customer, CustomerNameKey, Interaction
from crm_core.people import authenticate, create_user, issue_token, user_for_token
from crm_core.schemas import CustomerIn, InteractionIn, SegmentIn, TransactionIn
from crm_core.valuation import add_transaction, recompute_value
from crm_core.value import ValuePolicy

Sessions = async_sessionmaker[AsyncSession]
REGION = "CN"
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


async def _customer(s: AsyncSession, name: str, *phones: str, **extra: object) -> int:
    data = CustomerIn.model_validate(
        {"name": name, "phones": [{"number": p} for p in phones], **extra}
    )
    return (await create_customer(s, data, REGION)).id


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "caller_id",
    [
        "13800138000",
        "+8613800138000",
        "008613800138000",
        "8613800138000",
        "013800138000",
        "138 0013 8000",
        "+86 138-0013-8000",
        "sip:+8613800138000@pbx.example",
    ],
)
async def test_every_caller_id_form_finds_the_same_customer(crm: Sessions, caller_id: str) -> None:
    async with crm() as s, s.begin():
        wei = await _customer(s, "张伟", "+86 138 0013 8000")
        await _customer(s, "李娜", "13900139000")
    async with crm() as s:
        result = await lookup_by_caller_id(s, caller_id, REGION)
    assert result.status == "found"
    assert [c.id for c in result.customers] == [wei]
    assert result.number == "+8613800138000"


@pytest.mark.asyncio
@pytest.mark.parametrize("caller_id", ["anonymous", "", None, "Restricted", "unknown"])
async def test_withheld_numbers_are_unknown(crm: Sessions, caller_id: str | None) -> None:
    async with crm() as s, s.begin():
        await _customer(s, "张伟", "13800138000")
    async with crm() as s:
        result = await lookup_by_caller_id(s, caller_id, REGION)
    assert (result.status, result.customers) == ("unknown", [])


@pytest.mark.asyncio
async def test_a_shared_number_returns_every_candidate(crm: Sessions) -> None:
    async with crm() as s, s.begin():
        first = await _customer(s, "王芳", "010 8888 6666")
        second = await _customer(s, "王强", "+86 10 8888 6666")
    async with crm() as s:
        result = await lookup_by_caller_id(s, "01088886666", REGION)
    assert result.status == "ambiguous"
    assert sorted(c.id for c in result.customers) == sorted([first, second])


def _call(linkedid: str, **fields: object) -> InteractionIn:
    return InteractionIn.model_validate({"node": "pbx1", "linkedid": linkedid, **fields})


@pytest.mark.asyncio
async def test_writing_the_same_call_twice_updates_one_interaction(crm: Sessions) -> None:
    async with crm() as s, s.begin():
        customer = await _customer(s, "张伟", "13800138000")
        await record_interaction(
            s,
            _call(
                "1700000000.1",
                customer_id=customer,
                arrived_at=T0,
                queue="support",
                ivr_inputs={"menu": "2", "pin": "1234"},
            ),
        )
    async with crm() as s, s.begin():
        await record_interaction(
            s,
            _call(
                "1700000000.1",
                answered_at=T0 + timedelta(seconds=20),
                queue="vip",
                disposition="resolved",
                segments=[
                    SegmentIn(speaker="customer", start=0.5, end=2.0, text="hello", confidence=0.9)
                ],
            ),
        )
    async with crm() as s:
        count = await s.scalar(select(func.count()).select_from(Interaction))
        (row,) = await timeline(s, customer)
        segments = await segments_of(s, row.id)
    assert count == 1
    assert row.queue == "vip"  # the later write wins
    assert row.disposition == "resolved"
    assert row.arrived_at == T0  # fields the later write did not carry are kept
    assert row.answered_at == T0 + timedelta(seconds=20)
    assert row.ivr_inputs == {"menu": "2", "pin": "***"}
    assert [seg.text for seg in segments] == ["hello"]


@pytest.mark.asyncio
async def test_a_rough_estimate_never_puts_a_milestone_before_the_one_it_follows(
    crm: Sessions,
) -> None:
    """After a restart, Asterisk's whole-second Wait can place the queue join a moment before
    the precise arrival already stored: the join is moved up to the arrival, not the reverse."""
    milestones = ("arrived_at", "queued_at", "offered_at", "answered_at")
    async with crm() as s, s.begin():
        await record_interaction(s, _call("1700.5", arrived_at=T0), keep_existing=milestones)
    async with crm() as s, s.begin():
        await record_interaction(
            s,
            _call(
                "1700.5",
                arrived_at=T0 + timedelta(seconds=1),
                queued_at=T0 - timedelta(seconds=0.4),
            ),
            keep_existing=milestones,
        )
    async with crm() as s, s.begin():
        await record_interaction(
            s,
            _call("1700.5", answered_at=T0 + timedelta(seconds=9), ended_at=T0),
            keep_existing=milestones,
        )
    async with crm() as s:
        row = await s.scalar(select(Interaction))
    assert row is not None
    assert row.arrived_at == T0  # first write wins
    assert row.queued_at == T0
    assert row.answered_at == T0 + timedelta(seconds=9)
    assert row.ended_at == row.answered_at


@pytest.mark.asyncio
async def test_calls_that_ended_while_no_server_listened_are_closed_and_marked(
    crm: Sessions,
) -> None:
    """After a restart the server tells the CRM which calls of a node Asterisk still has:
    the node's other open calls ended unseen. Only those are closed, nothing is made up."""
    seen_at = T0 + timedelta(minutes=5)
    async with crm() as s, s.begin():
        await record_interaction(s, _call("gone.1", arrived_at=T0, answered_at=T0))
        await record_interaction(s, _call("gone.2", arrived_at=T0, queued_at=T0))
        await record_interaction(s, _call("live.3", arrived_at=T0))
        await record_interaction(s, _call("later.4", arrived_at=seen_at + timedelta(seconds=1)))
        await record_interaction(s, _call("done.5", arrived_at=T0, ended_at=T0))
        other_node = _call("gone.6", arrived_at=T0).model_copy(update={"node": "pbx%"})
        await record_interaction(s, other_node)
    async with crm() as s, s.begin():
        closed = await end_unseen(s, "pbx1", ["live.3"], seen_at)
    async with crm() as s:
        rows = {r.external_key: r for r in await s.scalars(select(Interaction))}
    assert sorted(closed) == ["gone.1", "gone.2"]
    for key in ("pbx1:gone.1", "pbx1:gone.2"):
        assert rows[key].ended_at == seen_at
        assert rows[key].routing == {"end_unseen": True}
    assert rows["pbx1:gone.1"].answered_at == T0  # what was seen stays
    assert rows["pbx1:gone.2"].answered_at is None  # what was not is not guessed
    assert rows["pbx1:live.3"].ended_at is None
    assert rows["pbx1:later.4"].ended_at is None
    assert rows["pbx1:done.5"].ended_at == T0
    assert rows["pbx%:gone.6"].ended_at is None  # another node's, though its name matches


@pytest.mark.asyncio
async def test_merge_keeps_every_interaction_and_undo_restores_both(crm: Sessions) -> None:
    async with crm() as s, s.begin():
        keep = await _customer(s, "张伟", "13800138000", tags=["vip"], account_number="A-1")
        dupe = await _customer(
            s, "张 伟", "13900139000", emails=["zw@example.com"], account_number="A-2"
        )
        for n, who in enumerate([keep, dupe, dupe]):
            await record_interaction(s, _call(f"17.{n}", customer_id=who, arrived_at=T0))
    async with crm() as s, s.begin():
        audit = await merge_customers(s, keep, dupe, actor_id=None)
    async with crm() as s:
        assert len(await timeline(s, keep)) == 3
        with pytest.raises(NotFound, match="merged into"):
            await get_customer(s, dupe)
        found = await lookup_by_caller_id(s, "13900139000", REGION)
        assert [c.id for c in found.customers] == [keep]
        survivor = await get_customer(s, keep)
        assert {p.e164 for p in survivor.phones} == {"+8613800138000", "+8613900139000"}
    async with crm() as s, s.begin():
        await undo_merge(s, audit.id)
    async with crm() as s:
        assert len(await timeline(s, keep)) == 1
        assert len(await timeline(s, dupe)) == 2
        restored = await get_customer(s, dupe)
        assert [e.address for e in restored.emails] == ["zw@example.com"]
        assert restored.account_number == "A-2"
        assert {p.e164 for p in (await get_customer(s, keep)).phones} == {"+8613800138000"}


@pytest.mark.asyncio
async def test_tier_rises_as_transactions_arrive(crm: Sessions) -> None:
    policy = ValuePolicy()
    now = datetime.now(UTC)
    async with crm() as s, s.begin():
        customer = await _customer(s, "张伟", "13800138000")
    tiers = []
    for n, amount in enumerate(["100", "3000", "20000", "80000"]):
        async with crm() as s, s.begin():
            await add_transaction(
                s,
                customer,
                TransactionIn(amount=Decimal(amount), at=now - timedelta(days=n)),
                policy,
            )
            tiers.append((await get_customer(s, customer)).tier)
    assert tiers[0] == "standard"
    assert tiers[-1] == "platinum"
    assert len(set(tiers)) >= 3, tiers


@pytest.mark.asyncio
async def test_agents_see_only_their_own_cases_managers_see_all(crm: Sessions) -> None:
    async with crm() as s, s.begin():
        agent = await create_user(s, username="ann", password="ann-secret-1", role="agent")
        other = await create_user(s, username="bob", password="bob-secret-1", role="agent")
        manager = await create_user(s, username="mia", password="mia-secret-1", role="manager")
        customer = await _customer(s, "张伟", "13800138000")
        case = await open_case(
            s, customer_id=customer, category="billing", severity="high", sla=CaseSla()
        )
        await assign_case(s, case, other.id)
        case_id = case.id
    async with crm() as s:
        with pytest.raises(Forbidden):
            await get_case(s, case_id, agent)
        assert await cases_for(s, agent) == []
        assert (await get_case(s, case_id, manager)).owner_id == other.id
        assert [c.id for c in await cases_for(s, manager)] == [case_id]
        assert [c.id for c in await cases_for(s, other)] == [case_id]


@pytest.mark.asyncio
async def test_passwords_and_tokens(crm: Sessions) -> None:
    async with crm() as s, s.begin():
        user = await create_user(s, username="ann", password="correct horse", role="agent")
        token = await issue_token(s, user)
    async with crm() as s:
        assert await authenticate(s, "ann", "wrong password") is None
        assert await authenticate(s, "nobody", "correct horse") is None
        assert (await authenticate(s, "ann", "correct horse")) is not None
        found = await user_for_token(s, token)
        assert found is not None
        assert found.username == "ann"
        assert await user_for_token(s, token + "x") is None


@pytest.mark.asyncio
async def test_migrations_go_down_to_nothing_and_up_again(crm_database_url: str) -> None:
    engine = make_engine(crm_database_url)
    try:
        await downgrade(engine, "base")
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        assert set(tables) <= {"alembic_version"}
        await upgrade(engine)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        assert {"customers", "interactions", "complaint_cases", "merge_audits"} <= set(tables)
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_the_migrations_build_the_schema_the_models_declare(crm_database_url: str) -> None:
    """A column added to a model without its migration (or the other way round) is named here,
    before a deployment's `cti crm migrate` leaves it out."""
    engine = make_engine(crm_database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
    finally:
        await engine.dispose()
    assert differences == []


@pytest.mark.asyncio
async def test_a_signal_opens_one_case_due_by_its_severity_sla(crm: Sessions) -> None:
    sla = CaseSla(high=24)
    async with crm() as s, s.begin():
        customer = await _customer(s, "张伟", "13800138000")
        call = await record_interaction(s, _call("1700.9", customer_id=customer, arrived_at=T0))
        signal = await add_signal(
            s,
            interaction_id=call.id,
            probability=0.91,
            category="billing",
            severity="high",
            evidence=[{"start": 12.5, "end": 15.0, "text": "charged twice"}],
        )
        first = await open_case_from_signal(s, signal.id, sla)
        again = await open_case_from_signal(s, signal.id, sla)
    assert again.id == first.id
    assert first.status == "open"
    assert first.customer_id == customer
    assert first.due_at - first.opened_at == timedelta(hours=24)
    assert first.evidence == [{"start": 12.5, "end": 15.0, "text": "charged twice"}]
    async with crm() as s:
        assert [c.id for c in await open_cases_of(s, customer)] == [first.id]


@pytest.mark.asyncio
async def test_manual_override_wins_over_the_value_model(crm: Sessions) -> None:
    async with crm() as s, s.begin():
        customer = await _customer(s, "国家电网", kind="organisation", tier_override="platinum")
        await recompute_value(s, customer, ValuePolicy())
    async with crm() as s:
        row = await get_customer(s, customer)
    assert row.tier == "platinum"
    assert "override" in row.tier_reason


@pytest.mark.asyncio
async def test_upgrading_stores_the_name_keys_of_existing_customers(crm_database_url: str) -> None:
    """Customers written before the name keys existed are found as duplicates after upgrade."""
    engine = make_engine(crm_database_url)
    try:
        await downgrade(engine, "5c1e0d7a9b42")
        async with engine.begin() as connection:
            for name, kind in (("张伟", "person"), ("山西煤业有限公司", "organisation")):
                await connection.execute(
                    text(
                        "INSERT INTO customers (kind, name, tags, consent, notes, tier, "
                        "tier_reason, recency_score, frequency_score, monetary_score, "
                        "lifetime_value, created_at, updated_at) VALUES (:kind, :name, '[]', "
                        "'{}', '', 'standard', '', 1, 1, 1, 0, :now, :now)"
                    ),
                    {"kind": kind, "name": name, "now": datetime.now(UTC)},
                )
        await upgrade(engine)
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(Customer.name, Customer.kind, CustomerNameKey.key).join(
                        CustomerNameKey, CustomerNameKey.customer_id == Customer.id
                    )
                )
            ).all()
        stored: dict[str, set[str]] = {}
        for name, _, key in rows:
            stored.setdefault(name, set()).add(key)
        assert stored == {
            "张伟": name_keys("张伟", "person"),
            "山西煤业有限公司": name_keys("山西煤业有限公司", "organisation"),
        }
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_upgrading_names_stored_complaint_categories_in_the_detectors_words(
    crm_database_url: str,
) -> None:
    """Cases of the old seed (``staff_attitude``, ``refund``...) count with the detector's."""
    engine = make_engine(crm_database_url)
    try:
        await downgrade(engine, "6e2d9a4b8c31")
        now = datetime.now(UTC)
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO customers (kind, name, tags, consent, notes, tier, tier_reason, "
                    "recency_score, frequency_score, monetary_score, lifetime_value, created_at, "
                    "updated_at) VALUES ('person', 'Li', '[]', '{}', '', 'standard', '', 1, 1, 1, "
                    "0, :now, :now)"
                ),
                {"now": now},
            )
            for category in ("staff_attitude", "refund", "product_quality", "billing", "weird"):
                await connection.execute(
                    text(
                        "INSERT INTO complaint_cases (customer_id, category, severity, status, "
                        "summary, opened_at, due_at, evidence) VALUES (1, :category, 'low', "
                        "'open', '', :now, :now, '[]')"
                    ),
                    {"category": category, "now": now},
                )
        await upgrade(engine)
        async with engine.connect() as connection:
            stored = (
                await connection.execute(text("SELECT category FROM complaint_cases ORDER BY id"))
            ).scalars()
            assert list(stored) == ["staff", "billing", "product", "billing", "other"]
    finally:
        await engine.dispose()
