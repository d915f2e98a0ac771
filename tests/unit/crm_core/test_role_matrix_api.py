"""The role matrix over the CRM API: every operation of the OpenAPI document, called by a user
of each role, is refused (403) exactly when the matrix says the role is below it; and the row
rules: an agent reads the calls they took and those of the customers they are serving, changes
only those customers, and complaint cases are the managers' (others see the ones assigned to
them). Every answer is checked against the document too."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.access import API_OPERATIONS, MATRIX, Serving, markdown_table, rank
from crm_core.api.app import create_api, openapi_document
from crm_core.cases import assign_case, open_case
from crm_core.customers import create_customer
from crm_core.followups import create_follow_up
from crm_core.interactions import record_interaction
from crm_core.models import ROLES, User
from crm_core.people import create_user, issue_token
from crm_core.schemas import CustomerIn, InteractionIn, SegmentIn
from crm_core.settings import CrmSettings
from tests.support.openapi import ResponseChecker

Sessions = async_sessionmaker[AsyncSession]
_PARAM = re.compile(r"\{(\w+)\}")
# bodies that pass validation where a row rule is checked after it (elsewhere {} will do:
# a 422 is not a 403, and a role below the operation is refused before the body is read)
BODIES: dict[str, dict[str, Any]] = {
    "PATCH /customers/{id}": {"notes": "seen"},
    "POST /customers/{id}/phones": {"number": "13800138000"},
}


@dataclass
class Api:
    client: TestClient[Any, Any]
    db: Sessions
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    serving: dict[int, Serving] = field(default_factory=dict)  # user id -> what their desk serves

    async def call(
        self, method: str, path: str, who: str | None, json: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        async with self.client.request(method, "/api" + path, headers=headers, json=json) as r:
            return r.status, await r.json()


@pytest_asyncio.fixture
async def api(crm: Sessions) -> AsyncIterator[Api]:
    """The API on SQLite, then PostgreSQL (the row rules are SQL filters too)."""
    db = crm
    checker = ResponseChecker(openapi_document())
    root = web.Application(middlewares=[checker.middleware])
    served: dict[int, Serving] = {}

    def serving(user: User) -> Serving:
        return served.get(user.id, Serving())

    root.add_subapp("/api", create_api(db, CrmSettings(), serving=serving))
    client: TestClient[Any, Any] = TestClient(TestServer(root))
    await client.start_server()
    api = Api(client, db, serving=served)
    async with db() as s, s.begin():
        for n, role in enumerate((*ROLES, "agent")):
            name = role if n < len(ROLES) else "agent2"
            user = await create_user(
                s, username=name, password=f"{name}-password", role=role, extension=f"81{n:02}"
            )
            api.tokens[name] = await issue_token(s, user)
            api.ids[name] = user.id
    try:
        yield api
    finally:
        await client.close()
    assert checker.problems == []


async def _customer(api: Api, name: str) -> int:
    async with api.db() as s, s.begin():
        return (await create_customer(s, CustomerIn(name=name), "CN")).id


async def _call(api: Api, linkedid: str, customer: int, agent: str | None, said: str = "") -> int:
    """An interaction of ``customer`` taken by ``agent`` (None: nobody yet), with a transcript."""
    segments = (
        [SegmentIn(speaker="customer", start=0, end=1, text=said, confidence=0.9)] if said else []
    )
    async with api.db() as s, s.begin():
        row = await record_interaction(
            s,
            InteractionIn(
                node="pbx1",
                linkedid=linkedid,
                customer_id=customer,
                agent_id=api.ids[agent] if agent else None,
                notes=f"call {linkedid}",
                segments=segments,
            ),
        )
        return row.id


# -- every operation, every role ---------------------------------------------------------------


def _operations() -> list[tuple[str, str]]:
    return [
        (method.upper(), path.removeprefix("/api"))
        for path, operations in openapi_document()["paths"].items()
        for method in operations
    ]


def test_every_api_operation_has_a_rule_and_declares_it() -> None:
    """A new route cannot be added without a line in the matrix, and the role the document
    announces for it is the matrix's."""
    document = openapi_document()["paths"]
    for method, path in _operations():
        key = f"{method} {path}"
        assert key in API_OPERATIONS, f"{key} is not in crm_core.access.API_OPERATIONS"
        rule = API_OPERATIONS[key]
        operation = document["/api" + path][method.lower()]
        if rule is None:
            assert operation["security"] == []
        else:
            least = MATRIX[rule].least
            assert operation["description"] == f"Needs the role {least} or higher.", key
            assert (least == "agent") or "403" in operation["responses"], key


async def _own_rows(api: Api, who: str) -> dict[str, int]:
    """Rows the row rules give ``who``: a customer their desk serves, the call they took, a case
    assigned to them, their follow-up."""
    customer = await _customer(api, f"Served by {who}")
    interaction = await _call(api, f"walk.{who}", customer, who, said="hello")
    api.serving[api.ids[who]] = Serving(frozenset({customer}), frozenset({f"pbx1:walk.{who}"}))
    async with api.db() as s, s.begin():
        case = await open_case(
            s, customer_id=customer, category="billing", severity="low", sla=CrmSettings().case_sla
        )
        await assign_case(s, case, api.ids[who])
        task = await create_follow_up(
            s,
            customer_id=customer,
            due_at=datetime.now(UTC) + timedelta(days=1),
            owner_id=api.ids[who],
        )
    return {
        "customers": customer,
        "interactions": interaction,
        "cases": case.id,
        "follow-ups": task.id,
        "agents": api.ids[who],
        "users": api.ids[who],
    }


def _filled(path: str, rows: dict[str, int]) -> str:
    """``path`` naming the rows of ``rows`` (any other record: one that does not exist, so that
    the walk revokes no token of its own and merges nothing)."""
    collection = path.split("/")[1]
    return _PARAM.sub(
        lambda m: "billing" if m.group(1) == "skill" else str(rows.get(collection, 99999)), path
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("role", ROLES)
async def test_each_role_is_refused_exactly_the_operations_below_it(api: Api, role: str) -> None:
    rows = await _own_rows(api, role)
    answers: dict[str, int] = {}
    for method, path in _operations():
        rule = API_OPERATIONS[f"{method} {path}"]
        body = BODIES.get(f"{method} {path}", {}) if method in ("POST", "PUT", "PATCH") else None
        status, answer = await api.call(method, _filled(path, rows), role, json=body)
        answers[f"{method} {path}"] = status
        below = rule is not None and rank(role) < rank(MATRIX[rule].least)
        if below:
            assert (status, answer["error"]) == (403, "forbidden"), (method, path, answer)
        else:
            assert status not in (401, 403), (method, path, answer)
    # the walk reached the handlers of what the role may do (not only 404s and 422s)
    assert answers["GET /customers/{id}"] == 200
    assert answers["GET /interactions/{id}"] == 200
    assert answers["GET /cases/{id}"] == 200
    assert answers["PATCH /customers/{id}"] == 200


@pytest.mark.asyncio
async def test_without_a_token_every_operation_but_sign_in_is_a_401(api: Api) -> None:
    for method, path in _operations():
        status, _ = await api.call(method, _filled(path, {}), None, json={})
        if API_OPERATIONS[f"{method} {path}"] is None:
            assert status != 401, (method, path)
        else:
            assert status == 401, (method, path)


# -- the row rules -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_agent_reads_the_call_they_are_on_not_anothers(api: Api) -> None:
    caller = await _customer(api, "Wang Wei")
    stranger = await _customer(api, "Zhao Li")
    ringing = await _call(api, "1700.1", caller, None, said="my order is late")
    earlier = await _call(api, "1600.1", caller, "agent2", said="where is my parcel")
    elsewhere = await _call(api, "1700.2", stranger, "agent2", said="my card number is")
    alice = api.ids["agent"]

    api.serving[alice] = Serving(frozenset({caller}), frozenset({"pbx1:1700.1"}))
    status, read = await api.call("GET", f"/interactions/{ringing}", "agent")
    assert (status, [s["text"] for s in read["segments"]]) == (200, ["my order is late"])
    status, _ = await api.call("GET", f"/interactions/{earlier}", "agent")
    assert status == 200, "the caller's history is the agent's while serving them"
    status, refused = await api.call("GET", f"/interactions/{elsewhere}", "agent")
    assert (status, refused["error"]) == (403, "forbidden")
    assert "my card number" not in str(refused)
    _, timeline = await api.call("GET", f"/customers/{caller}/interactions", "agent")
    assert {i["id"] for i in timeline["items"]} == {ringing, earlier}
    _, other = await api.call("GET", f"/customers/{stranger}/interactions", "agent")
    assert other["items"] == []

    api.serving[alice] = Serving()  # the call is over and wrapped up
    status, _ = await api.call("GET", f"/interactions/{earlier}", "agent")
    assert status == 403
    status, _ = await api.call("GET", f"/interactions/{elsewhere}", "agent2")
    assert status == 200, "an agent reads the calls they took"
    _, theirs = await api.call("GET", f"/customers/{caller}/interactions", "agent2")
    assert [i["id"] for i in theirs["items"]] == [earlier]
    for who in ("supervisor", "manager", "admin"):
        status, _ = await api.call("GET", f"/interactions/{elsewhere}", who)
        assert status == 200, who


@pytest.mark.asyncio
async def test_an_agent_changes_only_the_customers_they_are_serving(api: Api) -> None:
    caller = await _customer(api, "Wang Wei")
    stranger = await _customer(api, "Zhao Li")
    api.serving[api.ids["agent"]] = Serving(frozenset({caller}), frozenset({"pbx1:1700.1"}))

    status, changed = await api.call("PATCH", f"/customers/{caller}", "agent", {"notes": "vip"})
    assert (status, changed["notes"]) == (200, "vip")
    status, _ = await api.call(
        "POST", f"/customers/{caller}/phones", "agent", {"number": "13911112222"}
    )
    assert status == 201
    for method, path, body in (
        ("PATCH", f"/customers/{stranger}", {"notes": "hijacked"}),
        ("POST", f"/customers/{stranger}/phones", {"number": "13900000000"}),
    ):
        status, refused = await api.call(method, path, "agent", body)
        assert (status, refused["message"]) == (
            403,
            "agents change only the customers they are serving",
        )
    _, record = await api.call("GET", f"/customers/{stranger}", "agent")
    assert (record["notes"], record["phones"]) == ("", [])
    status, _ = await api.call("PATCH", f"/customers/{stranger}", "supervisor", {"notes": "ok"})
    assert status == 200


@pytest.mark.asyncio
async def test_complaint_cases_are_the_managers_and_their_owners(api: Api) -> None:
    customer = await _customer(api, "Li Na")
    status, case = await api.call(
        "POST",
        "/cases",
        "agent",
        {"customer_id": customer, "category": "billing", "severity": "high"},
    )
    assert status == 201
    path = f"/cases/{case['id']}"
    for who in ("agent", "supervisor"):
        status, listed = await api.call("GET", "/cases", who)
        assert (status, listed["items"]) == (200, []), who
        status, _ = await api.call("GET", path, who)
        assert status == 403, who
        status, _ = await api.call("POST", f"{path}/assign", who, {"owner_id": api.ids[who]})
        assert status == 403, who
    for who in ("manager", "admin"):
        _, listed = await api.call("GET", "/cases", who)
        assert [c["id"] for c in listed["items"]] == [case["id"]], who
    status, _ = await api.call(
        "POST", f"{path}/assign", "manager", {"owner_id": api.ids["supervisor"]}
    )
    assert status == 200
    _, listed = await api.call("GET", "/cases", "supervisor")
    assert [c["id"] for c in listed["items"]] == [case["id"]], "assigned to them: theirs"
    status, resolved = await api.call("POST", f"{path}/resolve", "supervisor")
    assert (status, resolved["status"]) == (200, "resolved")
    status, _ = await api.call("POST", f"{path}/close", "supervisor")
    assert status == 403


def test_the_written_matrix_is_the_one_enforced() -> None:
    """docs/roles.md (and the README's copy) show the matrix the code holds."""
    root = Path(__file__).parents[3]
    for document in (root / "docs" / "roles.md", root / "README.md"):
        assert markdown_table() in document.read_text(encoding="utf-8"), document.name
