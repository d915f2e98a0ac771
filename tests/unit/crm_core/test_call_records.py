"""A call's interaction written one update at a time, by the CRM's rules: milestones happen
once, routing keys sit side by side, the IVR's customer stands over the caller ID's, agents and
parties are the users at their extensions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.call_records import CallRules, CallUpdate, record_call
from crm_core.models import Interaction, InteractionParty, User
from tests.support.blank_crm import Sessions, add_customer, blank_crm

RULES = CallRules("CN")
NUMBER = "+8613800138000"


@pytest_asyncio.fixture
async def crm(tmp_path: Path) -> AsyncIterator[Sessions]:
    async with blank_crm(tmp_path) as sessions:
        yield sessions


async def _write(crm: Sessions, update: CallUpdate) -> Interaction:
    async with crm() as session, session.begin():
        return await record_call(session, update, RULES)


def _call(**fields: Any) -> dict[str, Any]:
    return {"node": "pbx1", "linkedid": "1.1", **fields}


async def _user(session: AsyncSession, name: str, extension: str) -> int:
    user = User(username=name, display_name=name, role="agent", password_hash="x")
    user.extension = extension
    session.add(user)
    await session.flush()
    return user.id


@pytest.mark.asyncio
async def test_a_milestone_is_not_moved_by_a_later_report(crm: Sessions) -> None:
    first = await _write(crm, CallUpdate(_call(arrived_at="2026-11-23T10:00:00+00:00")))
    again = await _write(crm, CallUpdate(_call(arrived_at="2026-11-23T10:05:00+00:00")))
    assert again.id == first.id
    assert again.arrived_at == first.arrived_at


@pytest.mark.asyncio
async def test_the_ivrs_and_the_routers_keys_sit_side_by_side(crm: Sessions) -> None:
    await _write(crm, CallUpdate(_call(routing={"ivr_flow": "main"})))
    row = await _write(crm, CallUpdate(_call(routing={"decision": {"rule": "r"}})))
    assert row.routing == {"ivr_flow": "main", "decision": {"rule": "r"}}


@pytest.mark.asyncio
async def test_the_caller_ids_customer_does_not_replace_the_ivrs(crm: Sessions) -> None:
    by_ivr = await add_customer(crm, "Li Na")
    by_number = await add_customer(crm, "Wang Wei", NUMBER)
    await _write(crm, CallUpdate(_call(customer_id=by_ivr)))
    row = await _write(crm, CallUpdate(_call(), caller_customer=by_number))
    assert row.customer_id == by_ivr
    fresh = await _write(crm, CallUpdate(_call(linkedid="1.2"), caller_number=NUMBER))
    assert fresh.customer_id == by_number  # an old journal's number, looked up


@pytest.mark.asyncio
async def test_agents_and_parties_are_the_users_at_their_extensions(crm: Sessions) -> None:
    async with crm() as session, session.begin():
        alice = await _user(session, "alice", "1001")
        bob = await _user(session, "bob", "1002")
    when = {"started_at": "2026-11-23T10:00:00+00:00", "seconds": 60}
    parties = [
        {"party": "PJSIP/1001", "extension": "1001", "how": "answer", **when},
        {"party": "Local/x@y", "extension": None, "agent_name": "sim-1002", "how": "blind", **when},
    ]
    update = CallUpdate(_call(parties=parties), answered_by="1001", party_agents=[None, "1002"])
    row = await _write(crm, update)
    assert row.agent_id == alice
    async with crm() as session:
        stored = await session.scalars(
            select(InteractionParty)
            .where(InteractionParty.interaction_id == row.id)
            .order_by(InteractionParty.position)
        )
        assert [p.agent_id for p in stored] == [alice, bob]
