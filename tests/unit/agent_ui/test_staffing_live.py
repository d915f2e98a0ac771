"""The wallboard's look ahead: the plan of each queue asked once per interval (a queue without
history once, the CRM away again only a minute later), the calls offered counted from the
events, the agents on the phones from the snapshot, and the warning in words; and over the
socket, a supervisor's wallboard shows it, the warning among the alerts."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import async_sessionmaker

from agent_ui.staffing_live import RETRY_SECONDS, LiveStaffing
from crm_core.database import make_engine
from cti_server.bus import MemoryBus
from cti_server.config import UiSettings
from cti_server.control.staffing import IntervalOut, PlanOut, PlanQuery, PlanRefused
from cti_server.events import CallQueued
from cti_server.tracker.tracker import Tracker
from tests.support.live_model import answered_call, member
from tests.support.ui import add_users, sign_in
from tests.support.ui_server import mounted, ui_deps
from tests.support.waiting import poll_until

ZONE = ZoneInfo("Asia/Shanghai")
AT_1410 = datetime(2026, 12, 14, 14, 10, tzinfo=ZONE)


class Plans:
    """A planner that needs ``needed[queue][HH:MM]`` agents (else ``default``) for 12 calls
    each half-hour."""

    def __init__(
        self,
        needed: dict[str, dict[str, int]],
        *,
        away: Exception | None = None,
        default: int = 2,
    ) -> None:
        self.needed = needed
        self.default = default
        self.away = away
        self.asked: list[PlanQuery] = []

    async def plan(self, query: PlanQuery) -> PlanOut:
        self.asked.append(query)
        if self.away is not None:
            raise self.away
        if query.queue not in self.needed:
            raise PlanRefused("queue", f"no call reached queue {query.queue!r}")
        day = query.day or date(2026, 12, 14)
        midnight = datetime.combine(day, datetime.min.time(), ZONE)
        starts = [midnight + timedelta(minutes=30 * n) for n in range(48)]
        by_time = self.needed[query.queue]
        rows = [
            IntervalOut(
                start=start,
                offered=12.0,
                handle_s=180.0,
                erlang_c=by_time.get(f"{start:%H:%M}", self.default) + 1,
                erlang_a=by_time.get(f"{start:%H:%M}", self.default),
                scheduled_c=4,
                scheduled_a=3,
                service_level=0.85,
                abandon_rate=0.03,
                asa_s=8.0,
                met=True,
            )
            for start in starts
        ]
        return PlanOut(
            queue=query.queue,
            queues=["all", *self.needed],
            days=[day],
            interval=query.interval,
            time_zone=str(ZONE),
            target="80% in 20 s",
            shrinkage=query.shrinkage,
            patience_s=120.0,
            history_first=None,
            history_last=None,
            what_if=None,
            intervals=rows,
            agent_hours_c=0.0,
            agent_hours_a=0.0,
            scheduled_hours_a=0.0,
            what_if_missed=None,
        )


def _agent(state: str, *queues: str) -> dict[str, Any]:
    return {"state": state, "queues": list(queues)}


@pytest.mark.asyncio
async def test_the_plan_is_asked_once_per_interval_and_a_queue_without_history_once() -> None:
    plans = Plans({"support": {}})
    live = LiveStaffing(plans, ZONE, within_s=20, started=AT_1410 - timedelta(hours=1))
    for minutes in (0, 1, 5, 19):
        await live.refresh(AT_1410 + timedelta(minutes=minutes), ["support", "sales"])
    assert [(q.queue, q.day, q.target, q.interval) for q in plans.asked] == [
        ("sales", date(2026, 12, 14), "80%/20s", 30),
        ("support", date(2026, 12, 14), "80%/20s", 30),
    ]
    await live.refresh(AT_1410 + timedelta(minutes=20), ["support", "sales"])  # 14:30
    assert [q.queue for q in plans.asked[2:]] == ["support"]
    assert [q["queue"] for q in live.rows(AT_1410, [], routing=False)] == ["support"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "failure",
    [OSError("connection refused"), ValueError("calendar.yaml: holidays: not a date")],
    ids=["crm-away", "bad-calendar"],
)
async def test_a_plan_that_fails_is_asked_again_a_minute_later_not_at_every_push(
    failure: Exception,
) -> None:
    plans = Plans({"support": {}}, away=failure)
    clock = [1000.0]
    live = LiveStaffing(plans, ZONE, within_s=20, started=AT_1410, monotonic=lambda: clock[0])
    await live.refresh(AT_1410, ["support"])
    await live.refresh(AT_1410, ["support"])
    assert len(plans.asked) == 1
    assert live.rows(AT_1410, [], routing=False) == []
    plans.away = None
    clock[0] += RETRY_SECONDS
    await live.refresh(AT_1410, ["support"])
    assert len(plans.asked) == 2
    assert [q["queue"] for q in live.rows(AT_1410, [], routing=False)] == ["support"]


@pytest.mark.asyncio
async def test_forecast_beside_the_calls_and_agents_now_and_the_gap_in_words() -> None:
    plans = Plans({"support": {"14:00": 2, "14:30": 4}, "sales": {}})
    live = LiveStaffing(plans, ZONE, within_s=20, started=AT_1410 - timedelta(hours=2))
    await live.refresh(AT_1410, ["support", "sales"])
    for minute in (1, 3, 9):
        live.queued("support", datetime(2026, 12, 14, 6, minute, tzinfo=UTC))  # 14:0x local
    live.queued("support", datetime(2026, 12, 14, 5, 59, tzinfo=UTC))  # 13:59: not this one
    live.queued("sales", datetime(2026, 12, 14, 6, 5, tzinfo=UTC))
    agents = [
        _agent("on_call", "support"),
        _agent("wrap_up", "support", "sales"),
        _agent("paused", "support"),  # not on the phones
        _agent("logged_out", "support"),
        _agent("available", "sales"),
    ]
    rows = {q["queue"]: q for q in live.rows(AT_1410, agents, routing=False)}
    support = rows["support"]
    assert support["intervals"] == [
        {"when": "now", "start": "14:00", "forecast": 12.0, "offered": 3, "needed": 2,
         "on_phones": 2, "short": 0},
        {"when": "next", "start": "14:30", "forecast": 12.0, "offered": None, "needed": 4,
         "on_phones": 2, "short": 2},
    ]  # fmt: skip
    assert support["warning"] == "support: 2 agents short for 80% in 20 s from 14:30"
    assert support["counted_since"] == ""
    assert rows["sales"]["intervals"][0]["offered"] == 1
    assert rows["sales"]["intervals"][0]["on_phones"] == 2
    assert rows["sales"]["warning"] == ""
    # with routing every agent on the phones may take every queue's calls
    routed = {q["queue"]: q for q in live.rows(AT_1410, agents, routing=True)}
    assert routed["support"]["intervals"][1]["on_phones"] == 3
    assert routed["support"]["warning"] == "support: 1 agent short for 80% in 20 s from 14:30"
    # a server started within the interval says since when it counts; short now says now
    late = LiveStaffing(plans, ZONE, within_s=20, started=AT_1410)
    await late.refresh(AT_1410, ["support"])
    (now,) = late.rows(AT_1410 + timedelta(minutes=15), [], routing=False)
    assert now["counted_since"] == "14:10"
    assert now["warning"] == "support: 2 agents short for 80% in 20 s now"


@pytest_asyncio.fixture
async def board(sqlite_crm_template: Path, tmp_path: Path) -> AsyncIterator[tuple[Any, ...]]:
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    await add_users(db, ("sam", "supervisor", "7001"))
    bus = MemoryBus()
    tracker = Tracker(bus.publish)
    plans = Plans({"support": {}}, default=4)
    # the board's days are the planner's (else its today may be a day the plan has no row of)
    deps = ui_deps(db, bus, tracker, settings=UiSettings(time_zone=ZONE.key))
    app = mounted(dataclasses.replace(deps, staffing=plans))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, bus, tracker, plans
    finally:
        await client.close()
        await engine.dispose()


@pytest.mark.asyncio
async def test_the_wallboard_shows_the_plan_beside_now_and_warns(board: tuple[Any, ...]) -> None:
    client, bus, tracker, plans = board
    member(tracker, "pbx1", "support", "agent-8101", "PJSIP/8101")
    answered_call(tracker, "pbx1", "1700000000.1", "support", "agent-8102")
    base = str(client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        assert (await sign_in(http, base, "sam"))[0] == 303
        async with http.get(f"{base}/ui/wallboard") as page:
            html = await page.text()
        assert 'id="staffing-live"' in html
        assert 'href="/ui/staffing"' in html
        ws = await http.ws_connect(f"{base}/ui/ws?view=wallboard", headers={"Origin": base})
        first = await ws.receive_json(timeout=5)
        (support,) = first["staffing"]
        assert support["intervals"][0]["needed"] == 4
        assert support["intervals"][0]["offered"] == 1  # the call answered_call queued
        assert support["intervals"][0]["on_phones"] == 2  # one available, one on a call
        assert {"kind": "staffing", "queue": "support", "message": support["warning"]} in (
            first["alerts"]
        )
        assert support["warning"] == "support: 2 agents short for 80% in 20 s now"
        bus.publish(CallQueued(node="pbx1", linkedid="1700000000.2", queue="support", position=1))

        async def counted() -> dict[str, Any] | None:
            message = await ws.receive_json(timeout=10)
            shown = message.get("staffing") or [{}]
            return message if shown[0].get("intervals", [{}])[0].get("offered") == 2 else None

        message = await poll_until(counted, timeout=15)
        assert message["staffing"][0]["intervals"][0]["forecast"] == 12.0
        assert len({(q.queue, q.day) for q in plans.asked}) == 1  # one plan for all the pushes
        await ws.close()
