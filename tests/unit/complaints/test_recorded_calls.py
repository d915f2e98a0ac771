"""The repeat-call question waits for the recorder's word that the call is written, not for a
database poll: it is answered as soon as ``InteractionRecorded`` says so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.customers import create_customer
from crm_core.interactions import record_interaction
from crm_core.schemas import CustomerIn, InteractionIn
from cti_server.bus import MemoryBus
from cti_server.complaints.watch import RecordedCalls, crm_repeat_call
from cti_server.events import CallKey, InteractionRecorded
from tests.support.blank_crm import blank_crm

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def crm(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with blank_crm(tmp_path) as sessions:
        yield sessions


async def _calls(sessions: async_sessionmaker[AsyncSession], *linkedids: str) -> int:
    """A customer's calls about billing, a day apart; the last one ended."""
    async with sessions() as session, session.begin():
        data = CustomerIn.model_validate({"name": "Li Na"})
        customer = (await create_customer(session, data, "CN")).id
        for day, linkedid in enumerate(linkedids):
            fields = {
                "node": "pbx1",
                "linkedid": linkedid,
                "customer_id": customer,
                "arrived_at": T0 + timedelta(days=day),
                "ended_at": T0 + timedelta(days=day, minutes=5),
                "routing": {"attributes": {"intent": "billing"}},
            }
            row = await record_interaction(session, InteractionIn.model_validate(fields))
    return row.id


def _recorded(linkedid: str, interaction_id: int, *, ended: bool) -> InteractionRecorded:
    return InteractionRecorded(
        node="pbx1",
        linkedid=linkedid,
        interaction_id=interaction_id,
        outcome="inbound_call",
        ended=ended,
        customer_id=None,
    )


@pytest.mark.asyncio
async def test_the_repeat_call_is_asked_once_the_recorder_says_the_call_is_written(
    crm: async_sessionmaker[AsyncSession],
) -> None:
    bus = MemoryBus()
    recorded = RecordedCalls(bus)
    repeat_call = crm_repeat_call(crm, recorded, wait=30.0)
    interaction_id = await _calls(crm, "1.1", "1.2")

    async def ask() -> bool:
        return await repeat_call("pbx1", "1.2")

    asking = asyncio.create_task(ask())
    await asyncio.sleep(0)  # one turn of the loop: the question waits before the word comes
    bus.publish(_recorded("1.2", interaction_id, ended=False))  # queued, answered: not yet over
    assert not await recorded.ended(CallKey("pbx1", "1.2"), 0)  # not written as ended
    assert not asking.done()
    bus.publish(_recorded("1.2", interaction_id, ended=True))
    async with asyncio.timeout(5):  # far less than the 30 s it would wait without the word
        assert await asking is True


@pytest.mark.asyncio
async def test_a_call_written_before_it_is_asked_about_is_answered_at_once(
    crm: async_sessionmaker[AsyncSession],
) -> None:
    bus = MemoryBus()
    recorded = RecordedCalls(bus)
    repeat_call = crm_repeat_call(crm, recorded, wait=30.0)
    interaction_id = await _calls(crm, "2.1")
    bus.publish(_recorded("2.1", interaction_id, ended=True))
    async with asyncio.timeout(5):
        assert await repeat_call("pbx1", "2.1") is False  # the customer's first call


@pytest.mark.asyncio
async def test_a_call_the_recorder_never_reports_is_asked_about_after_the_wait(
    crm: async_sessionmaker[AsyncSession],
) -> None:
    repeat_call = crm_repeat_call(crm, RecordedCalls(MemoryBus()), wait=0.2)
    await _calls(crm, "3.1", "3.2")
    async with asyncio.timeout(5):
        assert await repeat_call("pbx1", "3.2") is True
