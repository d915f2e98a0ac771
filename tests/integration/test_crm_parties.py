"""The call's chain in the CRM (SQLite and PostgreSQL): one row per party the customer talked
to, in order, written idempotently, shown by the API as its document says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.api.app import create_api, openapi_document
from crm_core.customers import create_customer
from crm_core.errors import InvalidInput
from crm_core.interactions import parties_of, record_interaction
from crm_core.models import InteractionParty
from crm_core.people import create_user, issue_token
from crm_core.schemas import CustomerIn, InteractionIn
from crm_core.settings import CrmSettings
from tests.support.openapi import ResponseChecker

Sessions = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def chain(*parties: tuple[str, str, str, float]) -> list[dict[str, Any]]:
    """(extension, how, by, seconds) each, one after the other from T0."""
    start, rows = T0, []
    for extension, how, by, seconds in parties:
        end = start + timedelta(seconds=seconds)
        rows.append(
            {
                "party": f"PJSIP/{extension}",
                "extension": extension,
                "agent_name": f"sim-{extension}",
                "how": how,
                "by_party": by or None,
                "started_at": start.isoformat(),
                "ended_at": end.isoformat(),
                "seconds": seconds,
            }
        )
        start = end
    return rows


THREE = chain(
    ("1001", "answer", "", 130),
    ("1002", "attended", "PJSIP/1001", 65),
    ("1003", "blind", "PJSIP/1002", 20),
)


def _call(linkedid: str, **fields: Any) -> InteractionIn:
    return InteractionIn.model_validate({"node": "pbx1", "linkedid": linkedid, **fields})


async def _stored(crm: Sessions) -> list[tuple[int, str, str]]:
    async with crm() as s:
        rows = await s.scalars(
            select(InteractionParty).order_by(
                InteractionParty.interaction_id, InteractionParty.position
            )
        )
        return [(r.position, r.party, r.how) for r in rows]


@pytest.mark.asyncio
async def test_the_chain_is_stored_in_order_once_however_often_it_is_written(
    crm: Sessions,
) -> None:
    for _ in range(2):  # the CallEnded, then its replay from the spool
        async with crm() as s, s.begin():
            await record_interaction(s, _call("c.1", arrived_at=T0, parties=THREE))
    assert await _stored(crm) == [
        (0, "PJSIP/1001", "answer"),
        (1, "PJSIP/1002", "attended"),
        (2, "PJSIP/1003", "blind"),
    ]
    async with crm() as s, s.begin():  # a later write without a chain leaves it alone
        await record_interaction(s, _call("c.1", disposition="resolved"))
    assert len(await _stored(crm)) == 3
    async with crm() as s, s.begin():  # a corrected chain replaces it
        await record_interaction(s, _call("c.1", parties=THREE[:2]))
    assert await _stored(crm) == [(0, "PJSIP/1001", "answer"), (1, "PJSIP/1002", "attended")]


@pytest.mark.asyncio
async def test_a_party_naming_a_user_who_does_not_exist_is_refused(crm: Sessions) -> None:
    parties = [{**THREE[0], "agent_id": 4242}]
    with pytest.raises(InvalidInput, match=r"parties\.0\.agent_id: no user 4242"):
        async with crm() as s, s.begin():
            await record_interaction(s, _call("c.2", parties=parties))
    async with crm() as s:
        assert await s.scalar(select(func.count()).select_from(InteractionParty)) == 0


def test_a_party_that_ends_before_it_starts_or_an_unknown_hand_over_is_refused() -> None:
    backwards = {**THREE[1], "ended_at": (T0 - timedelta(seconds=1)).isoformat()}
    with pytest.raises(ValueError, match="ended_at is before started_at"):
        _call("c.3", parties=[backwards])
    with pytest.raises(ValueError, match=r"parties\.0\.how"):
        _call("c.3", parties=[{**THREE[0], "how": "teleport"}])
    parked = _call("c.3", parties=[THREE[0], {**THREE[1], "how": "park"}])  # retrieved
    assert parked.parties is not None
    assert [p.how for p in parked.parties] == ["answer", "park"]


@pytest_asyncio.fixture
async def api(crm: Sessions) -> AsyncIterator[tuple[TestClient[Any, Any], dict[str, str], int]]:
    """The CRM API, every answer checked against its document; a supervisor's token, and a
    customer."""
    async with crm() as s, s.begin():
        user = await create_user(s, username="sam", password="sam-password", role="supervisor")
        token = await issue_token(s, user)
        customer = await create_customer(s, CustomerIn(name="Ann Lee"), "CN")
    checker = ResponseChecker(openapi_document())
    root = web.Application(middlewares=[checker.middleware])
    root.add_subapp("/api", create_api(crm, CrmSettings()))
    client: TestClient[Any, Any] = TestClient(TestServer(root))
    await client.start_server()
    try:
        yield client, {"Authorization": f"Bearer {token}"}, customer.id
    finally:
        await client.close()
    assert checker.problems == []


@pytest.mark.asyncio
async def test_the_api_shows_every_party_in_order_as_its_document_says(
    api: tuple[TestClient[Any, Any], dict[str, str], int], crm: Sessions
) -> None:
    client, auth, customer_id = api
    schema = openapi_document()["components"]["schemas"]["InteractionOut"]
    assert "parties" in schema["required"]
    body = {"node": "pbx1", "linkedid": "c.4", "customer_id": customer_id, "parties": THREE}
    async with client.post("/api/interactions", json=body, headers=auth) as response:
        assert response.status == 200
        written = await response.json()
    assert [p["extension"] for p in written["parties"]] == ["1001", "1002", "1003"]
    async with client.get(f"/api/interactions/{written['id']}", headers=auth) as response:
        read = await response.json()
    assert [(p["position"], p["how"], p["by_party"], p["seconds"]) for p in read["parties"]] == [
        (0, "answer", None, 130.0),
        (1, "attended", "PJSIP/1001", 65.0),
        (2, "blind", "PJSIP/1002", 20.0),
    ]
    async with client.get(f"/api/customers/{customer_id}/interactions", headers=auth) as response:
        (item,) = (await response.json())["items"]
    assert item["parties"] == read["parties"]
    async with crm() as s:
        assert [p.position for p in (await parties_of(s, [written["id"]]))[written["id"]]] == [
            0,
            1,
            2,
        ]
    bad = {**body, "parties": [{**THREE[0], "how": "teleport"}]}
    async with client.post("/api/interactions", json=bad, headers=auth) as response:
        assert response.status == 422
        assert "parties.0.how" in {f["field"] for f in (await response.json())["fields"]}
