"""``GET /api/staffing/plan`` over HTTP: supervisors and above only, a 422 naming the field for
every bad parameter, a what-if that changes what a supervisor would see change, and the route
in the API's OpenAPI document (each answer checked against it)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.api.app import API_PREFIX, VERSION, create_api
from crm_core.api.handlers import routes
from crm_core.api.openapi import build_openapi
from crm_core.database import make_engine
from crm_core.people import create_user, issue_token
from crm_core.settings import CrmSettings
from cti_server.app import build_app
from cti_server.config import (
    AgiSettings,
    AmiSettings,
    DatabaseSettings,
    RecorderSettings,
    Settings,
    StaffingSettings,
    UiSettings,
)
from cti_server.control.staffing import PlanQuery
from cti_server.staffing import service
from cti_server.staffing.erlang import StaffingError
from cti_server.staffing.http import staffing_api
from cti_server.staffing.service import Planner
from tests.support.openapi import ResponseChecker
from tests.support.ports import free_port
from tests.support.queue_history import seed_queue_history

ZONE = ZoneInfo("Asia/Shanghai")
MONDAY = date(2026, 12, 14)
ROLES = ("agent", "supervisor", "manager", "admin")


@dataclass
class Api:
    client: TestClient[Any, Any]
    tokens: dict[str, str]
    checker: ResponseChecker
    document: dict[str, Any]

    async def plan(self, who: str | None = "supervisor", **query: str) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        params = {"day": str(MONDAY), "queue": "support", **query}
        async with self.client.get("/api/staffing/plan", params=params, headers=headers) as r:
            return r.status, await r.json()


@pytest_asyncio.fixture
async def api(sqlite_crm_template: Path, tmp_path: Path) -> AsyncIterator[Api]:
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    await seed_queue_history(db, MONDAY, ZONE)
    tokens = {}
    async with db() as session, session.begin():
        for role in ROLES:
            user = await create_user(session, username=role, password=f"{role}-pw", role=role)
            tokens[role] = await issue_token(session, user)
    planner = Planner(engine, zone=ZONE, clock=lambda: datetime(2026, 12, 14, 1, tzinfo=UTC))
    table = staffing_api(planner)
    document = build_openapi(
        [info for info, _ in [*routes.entries, *table.entries]], API_PREFIX, VERSION
    )
    checker = ResponseChecker(document)
    root = web.Application(middlewares=[checker.middleware])
    root.add_subapp("/api", create_api(db, CrmSettings(), extra=[table]))
    client: TestClient[Any, Any] = TestClient(TestServer(root))
    await client.start_server()
    try:
        yield Api(client, tokens, checker, document)
        assert checker.problems == []
    finally:
        await client.close()
        await engine.dispose()


@pytest.mark.asyncio
async def test_supervisors_and_above_get_the_plan_agents_and_strangers_do_not(api: Api) -> None:
    assert (await api.plan(None))[0] == 401
    status, body = await api.plan("agent")
    assert (status, body["error"]) == (403, "forbidden")
    for role in ("supervisor", "manager", "admin"):
        status, body = await api.plan(role)
        assert status == 200, body
    assert body["queue"] == "support"
    assert body["days"] == [str(MONDAY)]
    assert body["target"] == "80% in 20 s"
    assert len(body["intervals"]) == 48
    ten = next(i for i in body["intervals"] if i["start"] == "2026-12-14T10:00:00+08:00")
    assert ten["offered"] > 10  # Monday mornings are busy: 40 calls an hour
    assert ten["erlang_c"] >= ten["erlang_a"] > 0
    assert ten["scheduled_a"] > ten["erlang_a"]  # shrinkage 30 %
    assert ten["service_level"] >= 0.8
    night = next(i for i in body["intervals"] if i["start"] == "2026-12-14T03:00:00+08:00")
    assert (night["offered"], night["erlang_a"]) == (0, 0)
    assert body["what_if"] is None
    assert body["patience_s"] > 0


@pytest.mark.asyncio
async def test_a_burst_of_the_same_question_is_planned_once_and_one_plan_at_a_time(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, most, planned = 0, 0, []
    answer = service._answer

    def counted(query: PlanQuery, *args: Any) -> Any:
        nonlocal running, most
        running += 1
        most = max(most, running)
        planned.append(query.target)
        try:
            return answer(query, *args)
        finally:
            running -= 1

    monkeypatch.setattr(service, "_answer", counted)
    same = [api.plan() for _ in range(4)]
    other = [api.plan(target="90/30"), api.plan(target="asa:30s")]
    answers = await asyncio.gather(*same, *other)
    assert [status for status, _ in answers] == [200] * 6
    assert all(body == answers[0][1] for _, body in answers[:4])
    assert answers[4][1]["target"] == "90% in 30 s"
    assert sorted(planned) == sorted(["80%/20s", "90%/30s", "asa:30s"])  # each once
    assert most == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"target": "most calls quickly"}, "target"),
        ({"target": "100/20"}, "target"),
        ({"interval": "20"}, "interval"),
        ({"shrinkage": "1.5"}, "shrinkage"),
        ({"queue": "billing"}, "queue"),
        ({"queue": "<script>"}, "queue"),
        ({"day": "next monday"}, "day"),
        ({"fewer": "-1"}, "fewer"),
        ({"fewer": "2", "from": "25:00"}, "from"),
        ({"scale": "2", "on": "2026-12-20"}, "on"),
        ({"on": str(MONDAY)}, "on"),
        ({"agents": "3"}, "agents"),
        ({"confidence": "0"}, "confidence"),
        ({"confidence": "1"}, "confidence"),
        ({"confidence": "90"}, "confidence"),
        ({"confidence": "-0.5"}, "confidence"),
        ({"confidence": "sure"}, "confidence"),
    ],
)
async def test_a_bad_parameter_is_a_422_naming_it(
    api: Api, query: dict[str, str], field: str
) -> None:
    status, body = await api.plan(**query)
    assert status == 422, body
    assert [f["field"] for f in body["fields"]] == [field], body


@pytest.mark.asyncio
async def test_fewer_agents_from_two_lower_the_service_level_from_two_only(api: Api) -> None:
    _, plan = await api.plan()
    status, body = await api.plan(fewer="2", **{"from": "14:00"})
    assert status == 200, body
    assert body["what_if"] == "2 agents fewer from 14:00"
    for before, after in zip(plan["intervals"], body["intervals"], strict=True):
        what_if = after["what_if"]
        assert what_if["offered"] == before["offered"]
        if not before["offered"]:
            continue
        if after["start"] < "2026-12-14T14:00":
            assert what_if["agents"] == before["erlang_a"]
            assert what_if["service_level"] == before["service_level"]
        else:
            assert what_if["agents"] == max(0, before["erlang_a"] - 2)
            assert what_if["service_level"] < before["service_level"]
            assert what_if["abandon_rate"] > before["abandon_rate"]
    assert body["what_if_missed"] > 0


@pytest.mark.asyncio
async def test_a_mailing_that_doubles_mondays_calls_needs_more_agents(api: Api) -> None:
    _, plan = await api.plan()
    status, body = await api.plan(scale="2", on=str(MONDAY), target="80%/20s")
    assert status == 200, body
    assert body["what_if"] == f"calls times 2 on {MONDAY}"
    busy = [
        (b, a["what_if"])
        for b, a in zip(plan["intervals"], body["intervals"], strict=True)
        if b["offered"] >= 10
    ]
    assert busy
    for before, what_if in busy:
        assert what_if["offered"] == pytest.approx(2 * before["offered"], abs=0.02)
        assert what_if["agents"] == before["erlang_a"]  # the agents planned for a usual day
        assert what_if["erlang_a"] > before["erlang_a"]
        assert what_if["service_level"] < before["service_level"]


@pytest.mark.asyncio
async def test_a_confidence_of_ninety_percent_staffs_busy_intervals_with_a_margin(
    api: Api,
) -> None:
    _, usual = await api.plan()
    status, body = await api.plan(confidence="0.9")
    assert status == 200, body
    assert (usual["confidence"], usual["forecast_error"]) == (None, None)
    assert body["confidence"] == 0.9
    assert 0 <= body["forecast_error"] < 2
    pairs = list(zip(usual["intervals"], body["intervals"], strict=True))
    assert all(sure["erlang_a"] >= plain["erlang_a"] for plain, sure in pairs)
    assert any(sure["erlang_a"] > plain["erlang_a"] for plain, sure in pairs if plain["offered"])
    assert body["agent_hours_a"] > usual["agent_hours_a"]
    assert all(plain["chance"] is None for plain, _ in pairs)
    assert all(sure["chance"] >= 0.9 for plain, sure in pairs if plain["offered"])


def test_the_openapi_document_lists_the_plan_with_its_parameters(api: Api) -> None:
    operation = api.document["paths"]["/api/staffing/plan"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {
        "queue",
        "day",
        "target",
        "shrinkage",
        "interval",
        "fewer",
        "from",
        "scale",
        "on",
        "confidence",
    } <= names
    assert operation["security"] == [{"bearer": []}]
    assert {"200", "401", "403", "422"} <= set(operation["responses"])


@pytest.mark.asyncio
async def test_the_served_document_lists_the_plan(api: Api) -> None:
    async with api.client.get("/api/openapi.json") as response:
        served = await response.json()
    assert "/api/staffing/plan" in served["paths"]
    assert "/api/customers" in served["paths"]


@pytest.mark.asyncio
async def test_the_server_serves_the_plan_from_its_crm_and_documents_it(
    sqlite_crm_template: Path, tmp_path: Path
) -> None:
    """As the composition root wires it: the CRM's calls, the shipped calendar, the API."""
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    settings = Settings(
        ami=AmiSettings(port=free_port(), secret="staffing-test", node="pbx1"),
        agi=AgiSettings(port=free_port()),
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{path}"),
        recorder=RecorderSettings(spool_path=tmp_path / "spool.jsonl"),
        ui=UiSettings(time_zone="Asia/Shanghai"),
        staffing=StaffingSettings(confidence=0.8),
    )
    engine = make_engine(settings.database.url)
    db = async_sessionmaker(engine, expire_on_commit=False)
    try:
        await seed_queue_history(db, MONDAY, ZONE)
        async with db() as session, session.begin():
            user = await create_user(
                session, username="sam", password="sam-password", role="supervisor"
            )
            token = await issue_token(session, user)
    finally:
        await engine.dispose()
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(settings)))
    await client.start_server()
    try:
        async with client.get("/api/openapi.json") as response:
            assert "/api/staffing/plan" in (await response.json())["paths"]
        headers = {"Authorization": f"Bearer {token}"}
        query = {"queue": "sales", "day": str(MONDAY), "fewer": "1", "from": "09:00"}
        async with client.get("/api/staffing/plan", params=query, headers=headers) as response:
            body = await response.json()
        assert response.status == 200, body
        assert body["time_zone"] == "Asia/Shanghai"
        assert body["queues"] == ["all", "sales", "support"]
        assert sum(i["offered"] for i in body["intervals"]) > 50
        assert body["confidence"] == 0.8  # the settings' default, no question naming one
    finally:
        await client.close()


@pytest.mark.parametrize("confidence", [0, 1, 1.2, -0.1])
def test_a_server_default_confidence_outside_zero_to_one_is_refused(confidence: float) -> None:
    with pytest.raises(ValidationError, match="confidence"):
        StaffingSettings(confidence=confidence)
    engine = make_engine("sqlite+aiosqlite://")
    with pytest.raises(StaffingError, match="confidence"):
        Planner(engine, zone=ZONE, confidence=confidence)
