"""The CRM REST API on SQLite and PostgreSQL: tokens, roles, hostile input, OpenAPI."""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import io
import json
import re
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.api.app import create_api, openapi_document
from crm_core.api.http import errors_middleware
from crm_core.dedup import CustomerRecord, duplicates_of
from crm_core.models import Customer, FollowUp
from crm_core.people import create_user, issue_token
from crm_core.schemas import MAX_ID
from crm_core.seed import seed_crm
from crm_core.settings import CrmSettings
from tests.support.openapi import ResponseChecker

Sessions = async_sessionmaker[AsyncSession]


@functools.cache
def _document() -> dict[str, Any]:
    """The API's OpenAPI document, built once: it depends on the code only, not on a test."""
    return openapi_document()


@dataclass
class Api:
    client: TestClient[Any, Any]
    tokens: dict[str, str]
    user_ids: dict[str, int]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def call(
        self, method: str, path: str, who: str | None = "agent", **kwargs: Any
    ) -> tuple[int, Any]:
        headers = self.auth(who) if who else {}
        async with self.client.request(method, "/api" + path, headers=headers, **kwargs) as resp:
            return resp.status, await resp.json()


@pytest_asyncio.fixture
async def api(crm: Sessions) -> AsyncIterator[Api]:
    tokens, ids = {}, {}
    async with crm() as s, s.begin():
        for role in ("agent", "supervisor", "manager", "admin"):
            user = await create_user(s, username=role, password=f"{role}-password", role=role)
            tokens[role] = await issue_token(s, user)
            ids[role] = user.id
        other = await create_user(s, username="agent2", password="agent2-password", role="agent")
        tokens["agent2"] = await issue_token(s, other)
        ids["agent2"] = other.id
    checker = ResponseChecker(_document())
    root = web.Application(middlewares=[checker.middleware])
    root.add_subapp("/api", create_api(crm, CrmSettings()))
    client: TestClient[Any, Any] = TestClient(TestServer(root))
    await client.start_server()
    try:
        yield Api(client, tokens, ids)
    finally:
        await client.close()
    # every answer the test received, whatever it asserted, is one the document describes
    assert checker.problems == []


async def _count_customers(crm: Sessions) -> int:
    async with crm() as s:
        return int(await s.scalar(select(func.count()).select_from(Customer)) or 0)


@pytest.mark.asyncio
async def test_openapi_document_lists_the_endpoints(api: Api) -> None:
    status, doc = await api.call("GET", "/openapi.json", who=None)
    assert status == 200
    assert doc["openapi"].startswith("3.")
    for path in (
        "/api/customers",
        "/api/customers/lookup",
        "/api/customers/{id}/merge",
        "/api/merges/{id}/undo",
        "/api/cases/{id}/assign",
        "/api/follow-ups",
    ):
        assert path in doc["paths"], path
    assert "CustomerIn" in doc["components"]["schemas"]


@pytest.mark.asyncio
async def test_sign_in_gives_a_token_and_requests_need_one(api: Api) -> None:
    status, body = await api.call(
        "POST", "/tokens", who=None, json={"username": "agent", "password": "agent-password"}
    )
    assert status == 201
    async with api.client.get(
        "/api/customers", headers={"Authorization": f"Bearer {body['token']}"}
    ) as resp:
        assert resp.status == 200
    status, _ = await api.call(
        "POST", "/tokens", who=None, json={"username": "agent", "password": "wrong"}
    )
    assert status == 401
    status, body = await api.call("GET", "/customers", who=None)
    assert (status, body["error"]) == (401, "unauthorized")
    async with api.client.get("/api/customers", headers={"Authorization": "Bearer nope"}) as r:
        assert r.status == 401


@pytest.mark.asyncio
async def test_create_lookup_and_timeline(api: Api) -> None:
    status, created = await api.call(
        "POST",
        "/customers",
        json={"name": "张伟", "phones": [{"number": "138 0013 8000"}], "language": "zh"},
    )
    assert status == 201
    assert created["phones"][0]["number"] == "+8613800138000"
    status, found = await api.call("GET", "/customers/lookup", params={"number": "008613800138000"})
    assert (status, found["status"]) == (200, "found")
    assert found["customers"][0]["id"] == created["id"]
    status, _ = await api.call(
        "POST",
        "/interactions",
        who="supervisor",
        json={
            "node": "pbx1",
            "linkedid": "1700.1",
            "customer_id": created["id"],
            "arrived_at": "2026-11-01T09:00:00+00:00",
            "queue": "support",
        },
    )
    assert status == 200
    status, page = await api.call(
        "GET", f"/customers/{created['id']}/interactions", who="supervisor"
    )
    assert status == 200
    assert [i["queue"] for i in page["items"]] == ["support"]


@pytest.mark.asyncio
async def test_agent_cannot_merge_manager_can_and_undo(api: Api) -> None:
    _, first = await api.call(
        "POST", "/customers", json={"name": "张伟", "phones": [{"number": "13800138000"}]}
    )
    _, second = await api.call(
        "POST", "/customers", json={"name": "张伟", "emails": ["zw@example.com"]}
    )
    path = f"/customers/{first['id']}/merge"
    status, body = await api.call("POST", path, who="agent", json={"merged_id": second["id"]})
    assert (status, body["error"]) == (403, "forbidden")
    status, _ = await api.call("GET", f"/customers/{second['id']}")
    assert status == 200, "a refused merge must change nothing"
    status, merge = await api.call("POST", path, who="manager", json={"merged_id": second["id"]})
    assert status == 201
    status, _ = await api.call("GET", f"/customers/{second['id']}")
    assert status == 404
    status, _ = await api.call("POST", f"/merges/{merge['id']}/undo", who="manager")
    assert status == 200
    status, restored = await api.call("GET", f"/customers/{second['id']}")
    assert (status, restored["emails"]) == (200, ["zw@example.com"])


@pytest.mark.asyncio
async def test_cases_of_others_are_hidden_from_agents(api: Api) -> None:
    _, customer = await api.call("POST", "/customers", json={"name": "李娜"})
    status, case = await api.call(
        "POST",
        "/cases",
        json={"customer_id": customer["id"], "category": "billing", "severity": "high"},
    )
    assert status == 201
    for who in ("agent", "supervisor"):  # managers assign cases (crm_core.access)
        status, _ = await api.call(
            "POST",
            f"/cases/{case['id']}/assign",
            who=who,
            json={"owner_id": api.user_ids["agent2"]},
        )
        assert status == 403
    status, assigned = await api.call(
        "POST",
        f"/cases/{case['id']}/assign",
        who="manager",
        json={"owner_id": api.user_ids["agent2"]},
    )
    assert (status, assigned["status"]) == (200, "assigned")
    status, _ = await api.call("GET", f"/cases/{case['id']}", who="agent")
    assert status == 403
    status, mine = await api.call("GET", "/cases", who="agent")
    assert mine["items"] == []
    status, seen = await api.call("GET", f"/cases/{case['id']}", who="manager")
    assert (status, seen["owner_id"]) == (200, api.user_ids["agent2"])
    status, _ = await api.call("POST", f"/cases/{case['id']}/resolve", who="agent2")
    assert status == 200
    status, _ = await api.call("POST", f"/cases/{case['id']}/close", who="agent2")
    assert status == 403
    status, closed = await api.call("POST", f"/cases/{case['id']}/close", who="manager")
    assert (status, closed["status"]) == (200, "closed")
    status, body = await api.call("POST", f"/cases/{case['id']}/resolve", who="manager")
    assert (status, body["error"]) == (409, "invalid_transition")


@pytest.mark.asyncio
async def test_a_manager_deletes_a_customer_whose_history_stays(api: Api) -> None:
    _, customer = await api.call(
        "POST", "/customers", json={"name": "王芳", "phones": [{"number": "13900139000"}]}
    )
    _, twin = await api.call("POST", "/customers", json={"name": "王芳"})
    path = f"/customers/{customer['id']}"
    _, call = await api.call(
        "POST",
        "/interactions",
        who="supervisor",
        json={"node": "pbx1", "linkedid": "d.1", "customer_id": customer["id"]},
    )
    for who in ("agent", "supervisor"):
        status, body = await api.call("DELETE", path, who=who)
        assert (status, body["error"]) == (403, "forbidden")
    status, _ = await api.call("GET", path)
    assert status == 200, "a refused delete changes nothing"

    status, deleted = await api.call("DELETE", path, who="manager")
    assert (status, deleted["id"]) == (200, customer["id"])
    assert deleted["deleted_at"]
    status, body = await api.call("GET", path)
    assert (status, body["message"]) == (404, f"customer {customer['id']} was deleted")
    _, found = await api.call("GET", "/customers/lookup", params={"number": "13900139000"})
    assert (found["status"], found["customers"]) == ("unknown", [])
    _, searched = await api.call("GET", "/customers", params={"q": "王芳"})
    assert [c["id"] for c in searched["items"]] == [twin["id"]]
    _, duplicates = await api.call("GET", f"/customers/{twin['id']}/duplicates", who="supervisor")
    assert duplicates["items"] == []
    status, kept = await api.call("GET", f"/interactions/{call['id']}", who="supervisor")
    assert (status, kept["customer_id"]) == (200, customer["id"])
    status, _ = await api.call("DELETE", path, who="manager")
    assert status == 404


HOSTILE_NAMES = [
    "Robert'); DROP TABLE customers;--",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    '张伟" onmouseover="x',
]


@pytest.mark.asyncio
@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_names_are_stored_verbatim_and_harmless(
    api: Api, crm: Sessions, name: str
) -> None:
    status, created = await api.call("POST", "/customers", json={"name": name})
    assert status == 201
    assert created["name"] == name
    status, found = await api.call("GET", "/customers", params={"q": name})
    assert status == 200
    assert [c["id"] for c in found["items"]] == [created["id"]]
    assert await _count_customers(crm) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": "x" * 300}, 422, "name"),
        ({"name": "Ann", "favourite": "blue"}, 422, "favourite"),
        ({"name": 42}, 422, "name"),
        ({"name": "Ann", "phones": "13800138000"}, 422, "phones"),
        ({"name": "Ann\r\nX-Injected: 1"}, 422, "name"),
        (
            {"name": "Ann", "phones": [{"number": "13800138000"}, {"number": "not a phone"}]},
            422,
            None,
        ),
        ({"name": "Ann", "tier_override": "platinum"}, 403, None),
    ],
)
async def test_bad_payloads_get_4xx_and_store_nothing(
    api: Api, crm: Sessions, body: dict[str, Any], status: int, field: str | None
) -> None:
    got, answer = await api.call("POST", "/customers", json=body)
    assert got == status, answer
    assert answer["message"]
    if field is not None:
        assert any(f["field"].split(".")[0] == field for f in answer["fields"]), answer
    assert await _count_customers(crm) == 0


@pytest.mark.asyncio
async def test_malformed_bodies(api: Api, crm: Sessions) -> None:
    headers = {**api.auth("agent"), "Content-Type": "application/json"}
    cases = [
        (b'{"name": "\xff\xfe"}', 400),
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}', 413),
    ]
    for raw, expected in cases:
        async with api.client.post("/api/customers", data=io.BytesIO(raw), headers=headers) as resp:
            assert resp.status == expected, raw[:20]
            assert (await resp.json())["message"]
    assert await _count_customers(crm) == 0


@pytest.mark.asyncio
async def test_pagination_and_query_validation(api: Api) -> None:
    for n in range(5):
        await api.call("POST", "/customers", json={"name": f"Customer {n}"})
    _, page = await api.call(
        "GET", "/customers", params={"q": "Customer", "limit": "2", "offset": "2"}
    )
    assert [c["name"] for c in page["items"]] == ["Customer 2", "Customer 3"]
    status, body = await api.call("GET", "/customers", params={"limit": "abc"})
    assert (status, body["fields"][0]["field"]) == (422, "limit")
    status, _ = await api.call("GET", "/customers", params={"limit": "100000"})
    assert status == 422
    status, body = await api.call("GET", "/customers/abc")
    assert (status, body["fields"][0]["field"]) == (422, "id")


@pytest.mark.asyncio
async def test_duplicates_of_an_organisation_written_differently(api: Api) -> None:
    ids = []
    for name in ("山西煤业", "山西煤矿", "山西煤产品总公司", "北京烤鸭店"):
        _, created = await api.call(
            "POST", "/customers", json={"name": name, "kind": "organisation"}
        )
        ids.append(created["id"])
    status, _ = await api.call("GET", f"/customers/{ids[0]}/duplicates", who="agent")
    assert status == 403
    status, found = await api.call("GET", f"/customers/{ids[0]}/duplicates", who="supervisor")
    assert status == 200
    assert {d["customer_id"] for d in found["items"]} == {ids[1], ids[2]}
    assert all(d["reasons"] for d in found["items"])


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kind", "name", "same", "others"),
    [
        ("person", "张伟", "张玮", ["王芳", "刘洋"]),
        ("person", "Smith, John", "John Smith", ["Jane Smythe", "Ann Lee"]),
        ("organisation", "山西煤业", "山西煤矿", ["北京烤鸭店", "上海电力"]),
    ],
)
async def test_duplicates_are_what_the_library_finds(
    api: Api, kind: str, name: str, same: str, others: list[str]
) -> None:
    ids = {}
    for each in (name, same, *others):
        _, created = await api.call("POST", "/customers", json={"name": each, "kind": kind})
        ids[each] = created["id"]
    library = duplicates_of(
        CustomerRecord(ids[name], kind, name, frozenset(), frozenset()),  # type: ignore[arg-type]
        [
            CustomerRecord(ids[o], kind, o, frozenset(), frozenset())  # type: ignore[arg-type]
            for o in (same, *others)
        ],
    )
    status, found = await api.call("GET", f"/customers/{ids[name]}/duplicates", who="supervisor")
    assert status == 200
    assert [d["customer_id"] for d in found["items"]] == [ids[same]]
    assert [(d.second, d.score) for d in library] == [
        (d["customer_id"], d["score"]) for d in found["items"]
    ]


@pytest.mark.asyncio
async def test_a_renamed_customer_is_found_under_the_new_name(api: Api) -> None:
    _, first = await api.call("POST", "/customers", json={"name": "张伟"})
    _, second = await api.call("POST", "/customers", json={"name": "Ann Lee"})
    path = f"/customers/{first['id']}/duplicates"
    _, before = await api.call("GET", path, who="supervisor")
    assert before["items"] == []
    await api.call("PATCH", f"/customers/{second['id']}", who="supervisor", json={"name": "张玮"})
    _, after = await api.call("GET", path, who="supervisor")
    assert [d["customer_id"] for d in after["items"]] == [second["id"]]


@pytest.mark.asyncio
async def test_follow_ups_skills_and_tier_override(api: Api) -> None:
    _, customer = await api.call("POST", "/customers", json={"name": "Ann Lee"})
    status, task = await api.call(
        "POST",
        "/follow-ups",
        json={
            "customer_id": customer["id"],
            "due_at": "2026-12-01T10:00:00+08:00",
            "owner_id": api.user_ids["agent2"],
            "note": "call back about the refund",
        },
    )
    assert status == 201
    status, _ = await api.call("POST", f"/follow-ups/{task['id']}/done", who="agent")
    assert status == 403
    status, done = await api.call("POST", f"/follow-ups/{task['id']}/done", who="agent2")
    assert (status, done["status"]) == (200, "done")

    agent_id = api.user_ids["agent"]
    status, _ = await api.call(
        "PUT", f"/agents/{agent_id}/skills/billing", who="agent", json={"level": 7}
    )
    assert status == 403
    status, user = await api.call(
        "PUT", f"/agents/{agent_id}/skills/billing", who="supervisor", json={"level": 7}
    )
    assert (status, user["skills"]) == (200, {"billing": 7})
    status, body = await api.call(
        "PUT", f"/agents/{agent_id}/skills/billing", who="supervisor", json={"level": 11}
    )
    assert (status, body["fields"][0]["field"]) == (422, "level")

    path = f"/customers/{customer['id']}"
    status, _ = await api.call("PATCH", path, who="agent", json={"tier_override": "gold"})
    assert status == 403
    status, patched = await api.call("PATCH", path, who="manager", json={"tier_override": "gold"})
    assert (status, patched["value"]["tier"]) == (200, "gold")


# -- hostile input on every writing endpoint ------------------------------------------------

CUSTOMER = "<customer>"  # replaced by the id of a customer made for the test


@dataclass(frozen=True)
class Target:
    """A writing endpoint, a body it accepts, and the fields hostile values go into."""

    method: str
    path: str
    who: str
    body: dict[str, Any]
    text: str  # a free-text field
    number: str | None  # an id field of the body (None: the id is in the path)
    time: str | None  # a datetime field


TARGETS = {
    "patch_customer": Target(
        "PATCH", f"/customers/{CUSTOMER}", "supervisor", {"notes": "ok", "tags": ["vip"]}, "notes",
        None, None,
    ),
    "interaction": Target(
        "POST",
        "/interactions",
        "supervisor",
        {"node": "pbx1", "linkedid": "1.1", "customer_id": CUSTOMER, "notes": "ok",
         "arrived_at": "2026-11-01T09:00:00+00:00"},
        "notes", "customer_id", "arrived_at",
    ),
    "case": Target(
        "POST",
        "/cases",
        "agent",
        {"customer_id": CUSTOMER, "category": "billing", "severity": "high", "summary": "ok"},
        "summary", "customer_id", None,
    ),
    "follow_up": Target(
        "POST",
        "/follow-ups",
        "agent",
        {"customer_id": CUSTOMER, "due_at": "2026-12-01T10:00:00+08:00", "note": "ok"},
        "note", "customer_id", "due_at",
    ),
    "transaction": Target(
        "POST",
        f"/customers/{CUSTOMER}/transactions",
        "manager",
        {"amount": "120.50", "at": "2026-11-01T09:00:00+00:00", "external_ref": "order-1"},
        "external_ref", None, "at",
    ),
}  # fmt: skip

Change = Callable[[Target], dict[str, Any] | None]  # None: the endpoint has no such field
HOSTILE: dict[str, Change] = {
    "unknown field": lambda t: {"favourite": "blue"},
    "wrong type": lambda t: {t.text: 42},
    "NUL in text": lambda t: {t.text: "ok\x00; DROP TABLE customers"},
    "escape sequence": lambda t: {t.text: "ok\x1b[2J"},
    "20 000 characters": lambda t: {t.text: "x" * 20_000},
    "SQL for an id": lambda t: {t.number: "1 OR 1=1"} if t.number else None,
    "id of 10^23": lambda t: {t.number: 10**23} if t.number else None,
    "id of 0": lambda t: {t.number: 0} if t.number else None,
    "time without zone": lambda t: {t.time: "2026-12-01T10:00:00"} if t.time else None,
    "time not a time": lambda t: {t.time: "tomorrow'; --"} if t.time else None,
}
HOSTILE_CASES = [
    pytest.param(target, name, id=f"{target}-{name}")
    for target in TARGETS
    for name in HOSTILE
    if HOSTILE[name](TARGETS[target]) is not None
]
STORED = ("customers", "interactions", "complaint_cases", "follow_ups", "transactions")


async def _stored(api: Api, crm: Sessions, customer_id: int) -> tuple[Any, ...]:
    """Everything a refused request could have half-stored: row counts and the customer."""
    async with crm() as s:
        counts = [await s.scalar(text(f"SELECT count(*) FROM {table}")) for table in STORED]
    _, customer = await api.call("GET", f"/customers/{customer_id}", who="manager")
    return (*counts, customer)


def _fill(value: Any, customer_id: int) -> Any:
    if value == CUSTOMER:
        return customer_id
    if isinstance(value, str):
        return value.replace(CUSTOMER, str(customer_id))
    return value


async def _hostile_setup(api: Api, target: str) -> tuple[Target, int, str, dict[str, Any]]:
    _, customer = await api.call("POST", "/customers", json={"name": "Ann Lee"})
    spec = TARGETS[target]
    body = {key: _fill(value, customer["id"]) for key, value in spec.body.items()}
    return spec, customer["id"], _fill(spec.path, customer["id"]), body


@pytest.mark.asyncio
@pytest.mark.parametrize("target", list(TARGETS))
async def test_each_hostile_target_accepts_its_plain_body(api: Api, target: str) -> None:
    """The bodies the hostile cases start from are valid: a refusal is the hostile part's."""
    spec, _, path, body = await _hostile_setup(api, target)
    status, answer = await api.call(spec.method, path, who=spec.who, json=body)
    assert status in (200, 201), answer


@pytest.mark.asyncio
@pytest.mark.parametrize(("target", "hostile"), HOSTILE_CASES)
async def test_hostile_fields_are_refused_and_store_nothing(
    api: Api, crm: Sessions, target: str, hostile: str
) -> None:
    spec, customer_id, path, body = await _hostile_setup(api, target)
    change = HOSTILE[hostile](spec)
    assert change is not None
    before = await _stored(api, crm, customer_id)
    status, answer = await api.call(spec.method, path, who=spec.who, json={**body, **change})
    assert status == 422, answer
    assert answer["error"] == "invalid"
    assert answer["message"]
    assert [f["field"].split(".")[0] for f in answer["fields"]] == list(change), answer
    assert await _stored(api, crm, customer_id) == before


@pytest.mark.asyncio
@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b'{"notes": "\xff\xfe"}', 400),
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),
        (b'{"notes": "' + b"x" * (1024 * 1024 + 10) + b'"}', 413),
    ],
    ids=["invalid UTF-8", "not JSON", "not an object", "nested 100000 deep", "1 MB"],
)
async def test_hostile_bodies_are_refused_and_store_nothing(
    api: Api, crm: Sessions, target: str, raw: bytes, status: int
) -> None:
    spec, customer_id, path, _ = await _hostile_setup(api, target)
    before = await _stored(api, crm, customer_id)
    headers = {**api.auth(spec.who), "Content-Type": "application/json"}
    async with api.client.request(
        spec.method, "/api" + path, data=io.BytesIO(raw), headers=headers
    ) as resp:
        assert resp.status == status
        assert (await resp.json())["message"]
    assert await _stored(api, crm, customer_id) == before


@pytest.mark.asyncio
@pytest.mark.parametrize("target", ["interaction", "case", "follow_up"])
async def test_a_customer_that_does_not_exist_is_a_404(
    api: Api, crm: Sessions, target: str
) -> None:
    spec, customer_id, path, body = await _hostile_setup(api, target)
    before = await _stored(api, crm, customer_id)
    status, answer = await api.call(
        spec.method, path, who=spec.who, json={**body, "customer_id": 9999}
    )
    assert (status, answer["message"]) == (404, "customer 9999 does not exist")
    assert await _stored(api, crm, customer_id) == before


@pytest.mark.asyncio
@pytest.mark.parametrize("target", ["patch_customer", "transaction"])
@pytest.mark.parametrize(
    ("customer_id", "status", "error"),
    [
        ("9999", 404, "not_found"),
        # outside the document's bounds for an id (1 to 2^31-1): refused like the same id in a body
        (str(10**23), 422, "invalid"),
        ("0", 422, "invalid"),
        ("-1", 422, "invalid"),
        ("abc", 422, "invalid"),
    ],
)
async def test_a_path_id_that_cannot_exist_is_refused(
    api: Api, crm: Sessions, target: str, customer_id: str, status: int, error: str
) -> None:
    spec, real_id, _, body = await _hostile_setup(api, target)
    before = await _stored(api, crm, real_id)
    path = spec.path.replace(CUSTOMER, customer_id)
    got, answer = await api.call(spec.method, path, who=spec.who, json=body)
    assert (got, answer["error"]) == (status, error), answer
    if status == 422:
        assert [f["field"] for f in answer["fields"]] == ["id"]
    assert await _stored(api, crm, real_id) == before


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("owner_id", 9999, "owner_id: no active user 9999"),
        ("interaction_id", 9999, "interaction 9999 does not exist"),
    ],
)
async def test_a_follow_up_for_nobody_real_is_refused(
    api: Api, crm: Sessions, field: str, value: int, message: str
) -> None:
    _, customer_id, path, body = await _hostile_setup(api, "follow_up")
    before = await _stored(api, crm, customer_id)
    status, answer = await api.call("POST", path, json={**body, field: value})
    assert 400 <= status < 500
    assert answer["message"] == message
    assert await _stored(api, crm, customer_id) == before


@pytest.mark.asyncio
async def test_an_interaction_by_an_agent_who_does_not_exist_is_refused(
    api: Api, crm: Sessions
) -> None:
    spec, customer_id, path, body = await _hostile_setup(api, "interaction")
    before = await _stored(api, crm, customer_id)
    status, answer = await api.call("POST", path, who=spec.who, json={**body, "agent_id": 9999})
    assert (status, answer["message"]) == (422, "agent_id: no user 9999")
    assert await _stored(api, crm, customer_id) == before


@pytest.mark.asyncio
@pytest.mark.parametrize("param", ["q", "number"])
async def test_control_characters_in_a_query_are_refused(api: Api, param: str) -> None:
    path = "/customers" if param == "q" else "/customers/lookup"
    status, answer = await api.call("GET", path, params={param: "13800\x00138000"})
    assert status == 422
    assert answer["fields"] == [
        {"field": param, "message": "a control character (U+0000) is not allowed"}
    ]


@pytest.mark.asyncio
async def test_an_unforeseen_error_is_a_json_500_without_internals() -> None:
    async def broken(_request: web.Request) -> web.Response:
        raise RuntimeError("SELECT password_hash FROM users")

    app = web.Application(middlewares=[errors_middleware])
    app.router.add_get("/broken", broken)
    async with TestClient(TestServer(app)) as client, client.get("/broken") as resp:
        assert resp.status == 500
        assert resp.content_type == "application/json"
        body = await resp.text()
    assert "SELECT" not in body
    assert "RuntimeError" not in body
    assert json.loads(body)["error"] == "internal"


# -- the rest of the workflow, endpoint by endpoint ------------------------------------------


def _time(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


@pytest.mark.asyncio
async def test_a_case_is_opened_only_in_the_one_complaint_vocabulary(api: Api) -> None:
    _, customer = await api.call("POST", "/customers", json={"name": "李娜"})
    status, answer = await api.call(
        "POST",
        "/cases",
        json={"customer_id": customer["id"], "category": "staff_attitude", "severity": "low"},
    )
    assert status in (400, 422)
    assert "billing, delivery, product, service, staff, other" in str(answer)


@pytest.mark.asyncio
async def test_a_case_records_when_it_was_assigned_resolved_and_closed(api: Api) -> None:
    _, customer = await api.call("POST", "/customers", json={"name": "李娜"})
    _, case = await api.call(
        "POST",
        "/cases",
        json={"customer_id": customer["id"], "category": "billing", "severity": "low"},
    )
    assert (case["assigned_at"], case["resolved_at"], case["closed_at"]) == (None, None, None)
    path = f"/cases/{case['id']}"
    owner = {"owner_id": api.user_ids["agent"]}
    _, assigned = await api.call("POST", f"{path}/assign", who="manager", json=owner)
    assert (assigned["resolved_at"], assigned["closed_at"]) == (None, None)
    _, resolved = await api.call("POST", f"{path}/resolve", who="agent")
    assert resolved["closed_at"] is None
    _, closed = await api.call("POST", f"{path}/close", who="manager")
    opened, assigned_at, resolved_at, closed_at = (
        _time(closed[name]) for name in ("opened_at", "assigned_at", "resolved_at", "closed_at")
    )
    assert opened <= assigned_at <= resolved_at <= closed_at
    assert _time(assigned["assigned_at"]) == assigned_at
    assert _time(resolved["resolved_at"]) == resolved_at


@pytest.mark.asyncio
@pytest.mark.parametrize(("severity", "hours"), [("critical", 4), ("low", 168)])
async def test_a_case_opened_by_hand_is_due_by_its_severitys_sla(
    api: Api, severity: str, hours: int
) -> None:
    _, customer = await api.call("POST", "/customers", json={"name": "李娜"})
    status, case = await api.call(
        "POST",
        "/cases",
        json={"customer_id": customer["id"], "category": "billing", "severity": severity},
    )
    assert status == 201
    assert _time(case["due_at"]) - _time(case["opened_at"]) == timedelta(hours=hours)


@pytest.mark.asyncio
async def test_a_resolved_case_can_be_reopened_by_assigning_it_again(api: Api) -> None:
    _, customer = await api.call("POST", "/customers", json={"name": "李娜"})
    _, case = await api.call(
        "POST",
        "/cases",
        json={"customer_id": customer["id"], "category": "billing", "severity": "high"},
    )
    path = f"/cases/{case['id']}"
    _, first = await api.call(
        "POST", f"{path}/assign", who="manager", json={"owner_id": api.user_ids["agent"]}
    )
    await api.call("POST", f"{path}/resolve", who="agent")
    status, reopened = await api.call(
        "POST", f"{path}/assign", who="manager", json={"owner_id": api.user_ids["agent2"]}
    )
    assert (status, reopened["status"], reopened["owner_id"]) == (
        200,
        "assigned",
        api.user_ids["agent2"],
    )
    assert reopened["resolved_at"] is None
    assert _time(reopened["assigned_at"]) >= _time(first["assigned_at"])
    status, _ = await api.call("POST", f"{path}/resolve", who="agent2")
    assert status == 200


@pytest.mark.asyncio
async def test_transactions_through_the_api_move_the_tier(api: Api) -> None:
    _, customer = await api.call("POST", "/customers", json={"name": "Ann Lee"})
    assert customer["value"]["tier"] == "standard"
    path = f"/customers/{customer['id']}/transactions"
    now = datetime.now(UTC).isoformat()
    status, body = await api.call("POST", path, who="agent", json={"amount": "1000", "at": now})
    assert (status, body["error"]) == (403, "forbidden")
    tiers = []
    for amount in ("1000", "3000", "16000"):  # lifetime value 3 years of the year's spend
        status, body = await api.call(
            "POST", path, who="manager", json={"amount": amount, "at": now}
        )
        assert status == 201
        tiers.append(body["value"]["tier"])
    assert tiers == ["silver", "gold", "platinum"]


@pytest.mark.asyncio
async def test_the_value_endpoint_shows_scores_tier_and_why(api: Api) -> None:
    _, customer = await api.call("POST", "/customers", json={"name": "Ann Lee"})
    at = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    await api.call(
        "POST",
        f"/customers/{customer['id']}/transactions",
        who="manager",
        json={"amount": "1200", "at": at},
    )
    status, value = await api.call("GET", f"/customers/{customer['id']}/value")
    assert status == 200
    assert (value["tier"], value["recency"], value["frequency"], value["monetary"]) == (
        "silver",
        4,  # 40 days since the purchase
        1,
        3,
    )
    assert value["lifetime_value"] == "3600.00"
    assert value["reason"].startswith("silver: estimated lifetime value 3,600")


@pytest.mark.asyncio
async def test_follow_ups_list_shows_agents_theirs_and_unowned_ones(api: Api) -> None:
    _, customer = await api.call("POST", "/customers", json={"name": "Ann Lee"})
    ids = {}
    for owner, due in (("agent", "10:00"), ("agent2", "09:00"), (None, "11:00")):
        body = {"customer_id": customer["id"], "due_at": f"2026-12-01T{due}:00+00:00"}
        if owner is not None:
            body["owner_id"] = api.user_ids[owner]
        _, task = await api.call("POST", "/follow-ups", json=body)
        ids[owner] = task["id"]
    status, mine = await api.call("GET", "/follow-ups", who="agent")
    assert status == 200
    assert [t["id"] for t in mine["items"]] == [ids["agent"], ids[None]]
    _, everyone = await api.call("GET", "/follow-ups", who="supervisor")
    assert [t["id"] for t in everyone["items"]] == [ids["agent2"], ids["agent"], ids[None]]


@pytest.mark.asyncio
async def test_an_interaction_is_read_with_its_transcript_in_order(api: Api) -> None:
    _, customer = await api.call("POST", "/customers", json={"name": "Ann Lee"})
    said = [
        {
            "speaker": "agent",
            "start": 4.0,
            "end": 6.0,
            "text": "How can I help?",
            "confidence": 0.9,
        },
        {"speaker": "ivr", "start": 0.0, "end": 3.5, "text": "Welcome", "confidence": 1.0},
    ]
    _, written = await api.call(
        "POST",
        "/interactions",
        who="supervisor",
        json={"node": "pbx1", "linkedid": "t.1", "customer_id": customer["id"], "segments": said},
    )
    status, read = await api.call("GET", f"/interactions/{written['id']}", who="supervisor")
    assert (status, read["customer_id"]) == (200, customer["id"])
    assert [s["text"] for s in read["segments"]] == ["Welcome", "How can I help?"]
    status, body = await api.call("GET", "/interactions/9999")
    assert (status, body["error"]) == (404, "not_found")


@pytest.mark.asyncio
async def test_agents_are_listed_by_supervisors_and_created_by_admins(api: Api) -> None:
    status, _ = await api.call("GET", "/agents", who="agent")
    assert status == 403
    new = {"username": "bo", "password": "bo-password", "role": "agent", "extension": "1042"}
    status, _ = await api.call("POST", "/agents", who="manager", json=new)
    assert status == 403
    status, created = await api.call("POST", "/agents", who="admin", json=new)
    assert (status, created["username"], created["extension"]) == (201, "bo", "1042")
    status, listed = await api.call("GET", "/agents", who="supervisor")
    assert status == 200
    assert "bo" in [u["username"] for u in listed["items"]]
    assert all("password" not in key for u in listed["items"] for key in u)
    status, token = await api.call(
        "POST", "/tokens", who=None, json={"username": "bo", "password": "bo-password"}
    )
    assert (status, token["user"]["role"]) == (201, "agent")
    status, body = await api.call("POST", "/agents", who="admin", json=new)
    assert (status, body["error"]) == (409, "conflict")


@pytest.mark.asyncio
async def test_an_added_phone_finds_the_customer_and_is_not_added_twice(api: Api) -> None:
    _, customer = await api.call("POST", "/customers", json={"name": "Ann Lee"})
    path = f"/customers/{customer['id']}/phones"
    phone_in = {"number": "010 6552 9988", "label": "work"}
    status, phone = await api.call("POST", path, who="supervisor", json=phone_in)
    assert (status, phone["number"], phone["label"]) == (201, "+861065529988", "work")
    _, again = await api.call("POST", path, who="supervisor", json={"number": "+86 10 6552 9988"})
    assert again["id"] == phone["id"]
    _, found = await api.call("GET", "/customers/lookup", params={"number": "01065529988"})
    assert (found["status"], [c["id"] for c in found["customers"]]) == ("found", [customer["id"]])
    _, record = await api.call("GET", f"/customers/{customer['id']}")
    assert [p["number"] for p in record["phones"]] == ["+861065529988"]


# -- what the OpenAPI document promises, seen from a client ------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "params", "field", "message"),
    [
        ("/customers/lookup", {"phone": "13800138000"}, "phone", "Extra inputs are not permitted"),
        ("/customers/lookup", {}, "number", "Field required"),
        ("/customers", {"limit": "1", "page": "2"}, "page", "Extra inputs are not permitted"),
        ("/cases", {"status": "pending"}, "status", "Input should be 'open', 'assigned', "),
        ("/follow-ups", {"limit": "0"}, "limit", "Input should be greater than or equal to 1"),
    ],
)
async def test_unknown_missing_or_bad_query_parameters_are_a_422_naming_them(
    api: Api, path: str, params: dict[str, str], field: str, message: str
) -> None:
    status, answer = await api.call("GET", path, params=params)
    assert (status, answer["error"]) == (422, "invalid"), answer
    named = {f["field"]: f["message"] for f in answer["fields"]}
    assert named[field].startswith(message), answer
    assert set(named) <= {field, "number"}  # a lookup without its number says that too


@pytest.mark.asyncio
async def test_a_query_parameter_given_twice_is_refused(api: Api) -> None:
    async with api.client.get("/api/customers?limit=1&limit=2", headers=api.auth("agent")) as resp:
        assert resp.status == 422
        assert (await resp.json())["fields"] == [
            {"field": "limit", "message": "given more than once"}
        ]


@pytest.mark.asyncio
async def test_lifetime_value_reads_as_it_was_created(api: Api) -> None:
    _, created = await api.call("POST", "/customers", json={"name": "Ann Lee"})
    _, read = await api.call("GET", f"/customers/{created['id']}")
    _, value = await api.call("GET", f"/customers/{created['id']}/value")
    assert created["value"]["lifetime_value"] == "0.00"
    assert read["value"] == created["value"]
    assert value == created["value"]


def _import_package(name: str, folder: Path) -> ModuleType:
    """The package in ``folder`` imported as ``name`` (its modules import each other relatively)."""
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert spec is not None
    assert spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return package


@pytest.mark.asyncio
async def test_a_client_generated_from_the_document_signs_in_and_reads_a_customer(
    api: Api, tmp_path: Path
) -> None:
    """openapi-python-client builds a typed client from the served document, offline; the
    client signs in, creates and reads a customer, and parses an error answer."""
    _, document = await api.call("GET", "/openapi.json", who=None)
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    (tmp_path / "config.yaml").write_text("post_hooks: []\n")  # no formatter needed to use it
    generate = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from openapi_python_client.cli import app; app()",
        "generate", "--path", "openapi.json", "--meta", "none", "--config", "config.yaml",
        "--output-path", "crm_client", "--fail-on-warning",
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(generate.communicate(), timeout=120)
    assert generate.returncode == 0, output.decode()
    name = f"crm_client_{tmp_path.name.replace('-', '_')}"
    package = _import_package(name, tmp_path / "crm_client")
    try:
        operations = {
            op: importlib.import_module(f"{name}.api.default.{op}")
            for op in ("post_tokens", "post_customers", "get_customers_id")
        }
        models = importlib.import_module(f"{name}.models")
        base_url = str(api.client.make_url("")).rstrip("/")
        async with package.Client(base_url=base_url) as anonymous:
            signed_in = await operations["post_tokens"].asyncio(
                client=anonymous,
                body=models.TokenRequest(username="agent", password="agent-password"),
            )
        assert isinstance(signed_in, models.TokenOut)
        assert signed_in.user.role.value == "agent"
        async with package.AuthenticatedClient(base_url=base_url, token=signed_in.token) as client:
            created = await operations["post_customers"].asyncio(
                client=client, body=models.CustomerIn(name="Ann Lee")
            )
            assert isinstance(created, models.CustomerOut)
            read = await operations["get_customers_id"].asyncio(client=client, id=created.id)
            missing = await operations["get_customers_id"].asyncio(client=client, id=MAX_ID)
    finally:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]
    assert isinstance(read, models.CustomerOut)
    assert (read.name, read.value.lifetime_value) == ("Ann Lee", "0.00")
    assert read.created_at == created.created_at
    assert isinstance(missing, models.ErrorOut)
    assert missing.error == "not_found"


_OPERATIONS = [
    (method.upper(), path.removeprefix("/api"))
    for path, item in openapi_document()["paths"].items()
    for method in item
]


def _params(keep: Callable[[str, str], bool] = lambda _m, _p: True) -> list[Any]:
    return [pytest.param(m, p, id=f"{m} {p}") for m, p in _OPERATIONS if keep(m, p)]


def _concrete(path: str, value: str = "1") -> str:
    return re.sub(r"\{id\}", value, path).replace("{skill}", "billing")


@pytest.mark.asyncio
@pytest.mark.parametrize(("method", "path"), _params())
async def test_every_operation_refuses_an_unknown_query_parameter_by_name(
    api: Api, method: str, path: str
) -> None:
    status, answer = await api.call(
        method, _concrete(path), who="admin", params={"bogus": "1"}, json={}
    )
    assert status == 422, answer
    assert "bogus" in [f["field"] for f in answer["fields"]]


@pytest.mark.asyncio
@pytest.mark.parametrize(("method", "path"), _params(lambda _m, p: "{id}" in p))
@pytest.mark.parametrize("bad", ["0", "abc", str(10**23)])
async def test_every_path_id_outside_its_bounds_is_a_422(
    api: Api, method: str, path: str, bad: str
) -> None:
    status, answer = await api.call(method, _concrete(path, bad), who="admin", json={})
    assert status == 422, answer
    assert [f["field"] for f in answer["fields"]] == ["id"]


@pytest.mark.asyncio
@pytest.mark.parametrize(("method", "path"), _params(lambda _m, p: p != "/tokens"))
async def test_every_operation_but_sign_in_needs_a_token(api: Api, method: str, path: str) -> None:
    status, answer = await api.call(method, _concrete(path), who=None, json={})
    assert (status, answer["error"]) == (401, "unauthorized")


@pytest.mark.asyncio
async def test_a_voicemail_callback_left_by_a_caller_is_listed(api: Api, crm: Sessions) -> None:
    """Follow-ups the recorder writes (kind voicemail) are answers the document describes."""
    _, customer = await api.call("POST", "/customers", json={"name": "Ann Lee"})
    async with crm() as s, s.begin():
        s.add(
            FollowUp(
                customer_id=customer["id"], kind="voicemail", due_at=datetime.now(UTC), note="hi"
            )
        )
    status, listed = await api.call("GET", "/follow-ups", who="supervisor")
    assert (status, [t["kind"] for t in listed["items"]]) == (200, ["voicemail"])


@pytest.mark.asyncio
async def test_the_seeded_demo_data_reads_as_the_document_says(api: Api, crm: Sessions) -> None:
    """Records the seed writes (as the demo shows them) are answers the document describes:
    every list, record, value, timeline and interaction read here passes the checker."""
    await seed_crm(crm.kw["bind"], 40, seed=5)
    status, page = await api.call("GET", "/customers", who="manager", params={"limit": "200"})
    assert (status, len(page["items"])) == (200, 40)
    interaction_ids = []
    for customer in page["items"][:15]:
        base = f"/customers/{customer['id']}"
        for path in (base, f"{base}/value", f"{base}/interactions"):
            status, body = await api.call("GET", path, who="manager")
            assert status == 200, body
        interaction_ids += [i["id"] for i in body["items"]]
    assert interaction_ids, "the seed gives customers a history"
    for interaction_id in interaction_ids[:30]:
        status, _ = await api.call("GET", f"/interactions/{interaction_id}", who="manager")
        assert status == 200
    for path in ("/cases", "/follow-ups", "/agents"):
        status, _ = await api.call("GET", path, who="manager")
        assert status == 200


@pytest.mark.asyncio
async def test_a_row_that_does_not_fit_its_response_model_is_a_500_not_a_422(
    api: Api, crm: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    """The client's request was fine: a stored value the document does not allow is the
    server's fault, logged, and never blamed on the request."""
    _, customer = await api.call("POST", "/customers", json={"name": "Ann Lee"})
    async with crm() as s, s.begin():
        await s.execute(
            text("UPDATE customers SET tier = 'diamond' WHERE id = :id"), {"id": customer["id"]}
        )
    status, answer = await api.call("GET", f"/customers/{customer['id']}")
    assert (status, answer["error"]) == (500, "internal")
    assert "unexpected error on GET" in caplog.text
