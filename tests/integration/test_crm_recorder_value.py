"""A call the recorder writes brings its caller's value up to date, as a REST write does."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.customers import create_customer, get_customer
from crm_core.interactions import find_interaction
from crm_core.models import utcnow
from crm_core.schemas import CustomerIn, TransactionIn
from crm_core.valuation import add_transaction, recompute_value
from crm_core.value import ValuePolicy
from cti_server.bus import MemoryBus
from cti_server.events import CallStarted
from cti_server.ivr.identification import CallerIdentification
from cti_server.recorder.recorder import Recorder
from cti_server.recorder.spool import Spool
from tests.support.waiting import poll_until

Sessions = async_sessionmaker[AsyncSession]
NUMBER = "+8613900000009"


@pytest.mark.asyncio
async def test_a_recorded_call_recomputes_the_callers_recency(
    crm: Sessions, tmp_path: Path
) -> None:
    policy = ValuePolicy()
    bought = utcnow() - timedelta(days=100)
    async with crm() as s, s.begin():
        customer = await create_customer(
            s, CustomerIn(name="Ann Lee", phones=[{"number": NUMBER}]), "CN"
        )
        await add_transaction(
            s, customer.id, TransactionIn(amount=Decimal("500"), at=bought), policy
        )
        # the scores as they were the day after the purchase: nothing has recomputed them since
        await recompute_value(s, customer.id, policy, now=bought + timedelta(days=1))
        assert customer.recency_score == 5
        customer_id = customer.id

    async def recency() -> int | None:
        async with crm() as s:
            score = (await get_customer(s, customer_id)).recency_score
            return score if score != 5 else None

    bus = MemoryBus()
    recorder = Recorder(bus, crm, Spool(tmp_path / "spool.jsonl"), region="CN")
    identification = CallerIdentification(crm, "CN")  # who calls: as the server publishes it
    identification.subscribe(bus)
    task = asyncio.create_task(recorder.run())
    try:
        bus.publish(
            CallStarted(
                node="pbx1", linkedid="v1", caller_number=NUMBER, caller_name="", dialed="100"
            )
        )
        assert await poll_until(recency, 10, what="the recomputed recency") == 3  # 100 days
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await identification.close()
    async with crm() as s:
        call = await find_interaction(s, "pbx1", "v1")
        assert call is not None
        assert call.customer_id == customer_id
