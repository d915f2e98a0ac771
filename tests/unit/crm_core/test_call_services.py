"""The CRM's rules for a call: who the caller is, a complaint case from a detection, a callback
task, the agent at an extension. Each against a real (SQLite) CRM."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.callbacks import CallbackRequest, callback_task
from crm_core.callers import agent_for_extension, customer_for_caller, customer_of_caller
from crm_core.cases import CaseSla
from crm_core.complaint_intake import Detection, case_from_detection
from crm_core.customers import create_customer
from crm_core.interactions import record_interaction
from crm_core.models import ComplaintSignal, Customer, FollowUp, Interaction, User
from crm_core.schemas import CustomerIn, InteractionIn
from tests.support.blank_crm import blank_crm

REGION = "CN"
NUMBER = "+8613800138000"
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def session(tmp_path: Path) -> AsyncIterator[AsyncSession]:
    async with blank_crm(tmp_path) as sessions, sessions() as db, db.begin():
        yield db


async def _customer(db: AsyncSession, name: str, number: str = NUMBER) -> int:
    data = CustomerIn.model_validate({"name": name, "phones": [{"number": number}]})
    return (await create_customer(db, data, REGION)).id


async def _customers(db: AsyncSession) -> int:
    return int(await db.scalar(select(func.count()).select_from(Customer)) or 0)


@pytest.mark.asyncio
async def test_a_caller_is_the_one_customer_with_their_number(session: AsyncSession) -> None:
    known = await _customer(session, "Li Na")
    assert await customer_of_caller(session, "13800138000", REGION) == known
    assert await customer_of_caller(session, "+8613900139000", REGION) is None
    assert await customer_of_caller(session, "anonymous", REGION) is None


@pytest.mark.asyncio
async def test_a_shared_number_names_nobody_until_the_agent_chooses(
    session: AsyncSession,
) -> None:
    await _customer(session, "Li Na")
    await _customer(session, "Wang Wei")
    assert await customer_of_caller(session, NUMBER, REGION) is None


@pytest.mark.asyncio
@pytest.mark.parametrize("number", ["anonymous", "", "\u202e<script>" * 40, "+86 138"])
async def test_a_stranger_who_asks_for_something_becomes_a_customer(
    session: AsyncSession, number: str
) -> None:
    before = await _customers(session)
    made = await customer_for_caller(session, number, REGION)
    assert await _customers(session) == before + 1
    assert await customer_for_caller(session, NUMBER, REGION) != made or number == NUMBER


@pytest.mark.asyncio
async def test_a_known_caller_asking_for_something_is_not_made_twice(
    session: AsyncSession,
) -> None:
    known = await _customer(session, "Li Na")
    assert await customer_for_caller(session, NUMBER, REGION) == known
    assert await _customers(session) == 1


@pytest.mark.asyncio
async def test_the_agent_at_an_extension_is_the_first_user_given_it(
    session: AsyncSession,
) -> None:
    for name in ("first", "second"):
        session.add(
            User(
                username=name, display_name=name, role="agent", password_hash="x", extension="1001"
            )
        )
    await session.flush()
    first = await session.scalar(select(User.id).where(User.username == "first"))
    assert await agent_for_extension(session, "1001") == first
    assert await agent_for_extension(session, "1002") is None
    assert await agent_for_extension(session, "") is None
    assert await agent_for_extension(session, None) is None


async def _call(db: AsyncSession, linkedid: str, number: str = NUMBER) -> int:
    data = {"node": "pbx1", "linkedid": linkedid, "kind": "inbound_call", "caller_number": number}
    return (await record_interaction(db, InteractionIn.model_validate(data))).id


@pytest.mark.asyncio
async def test_a_detection_opens_one_case_for_the_caller_however_often_it_is_replayed(
    session: AsyncSession,
) -> None:
    """A caller the CRM did not know becomes the case's customer; a journal replaying the same
    detection leaves one signal and one case."""
    interaction_id = await _call(session, "1.1", "+8613900139000")
    found = Detection(
        probability=0.91, category="billing", severity="high", evidence=[{"cue": "refund"}]
    )
    row = await session.get(Interaction, interaction_id)
    assert row is not None
    case = await case_from_detection(session, row, found, REGION, CaseSla())
    again = await case_from_detection(session, row, found, REGION, CaseSla())
    signals = await session.scalar(select(func.count()).select_from(ComplaintSignal))
    assert again.id == case.id
    assert signals == 1
    assert row.customer_id is not None
    assert case.customer_id == row.customer_id
    assert (case.category, case.severity) == ("billing", "high")


def _request(**changes: object) -> CallbackRequest:
    fields: dict[str, object] = {
        "caller_number": NUMBER,
        "queue": "support",
        "estimated_wait": 600,
        "customer_id": None,
        "requested_at": T0 + timedelta(minutes=5),
        "position": 3,
        "joined_at": T0,
    }
    return CallbackRequest.model_validate(fields | changes)


@pytest.mark.asyncio
async def test_a_callback_keeps_the_callers_place_once(session: AsyncSession) -> None:
    known = await _customer(session, "Li Na")
    interaction_id = await _call(session, "2.1")
    task = await callback_task(session, interaction_id, _request(), REGION)
    again = await callback_task(session, interaction_id, _request(), REGION)
    tasks = await session.scalar(select(func.count()).select_from(FollowUp))
    assert again.id == task.id
    assert tasks == 1
    assert task.customer_id == known
    assert (task.due_at, task.joined_at, task.queue_position) == (T0, T0, 3)
    assert "number 3 in line" in task.note


@pytest.mark.asyncio
async def test_a_voicemail_is_a_task_of_its_own_beside_a_callback(session: AsyncSession) -> None:
    interaction_id = await _call(session, "3.1", "+8613900139000")
    voicemail = _request(kind="voicemail", recording="vm/3.1.wav", position=0)
    callback = await callback_task(session, interaction_id, _request(), REGION)
    left = await callback_task(session, interaction_id, voicemail, REGION)
    assert left.id != callback.id
    assert left.kind == "voicemail"
    assert left.note == "Voicemail left in the IVR for support: vm/3.1.wav"
    assert left.customer_id == callback.customer_id  # the stranger became one customer
