"""Text that spoofs what the screen shows, through the desktop: its forms and websocket messages
refuse it naming the field, and a caller's name from the telephone network is stored with a
space in place of each such character (a call is never lost for its caller ID)."""

from __future__ import annotations

import asyncio
import html
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.cases import CaseSla, assign_case, open_case
from crm_core.customers import create_customer
from crm_core.database import make_engine
from crm_core.interactions import find_interaction
from crm_core.models import ComplaintCase, Customer, FollowUp
from crm_core.people import get_user
from crm_core.schemas import CustomerIn
from cti_server.bus import MemoryBus
from cti_server.config import UiSettings
from cti_server.events import CallStarted
from cti_server.recorder.recorder import Recorder
from cti_server.recorder.spool import Spool
from tests.fuzz.test_hostile_input import SPOOFS
from tests.support.desk import ALICE, NODE, FakeAmi, answered, arrived, ended, next_of, ringing
from tests.support.ui import add_users, csrf_of, sign_in, ui_app
from tests.support.waiting import poll_until

Sessions = async_sessionmaker[AsyncSession]


@pytest_asyncio.fixture
async def desk(
    sqlite_crm_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, aiohttp.ClientSession, MemoryBus, Sessions]]:
    """alice signed in at her desk (base URL, her browser, the bus, the CRM), maria a manager;
    Asterisk faked."""
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    db = async_sessionmaker(engine, expire_on_commit=False)
    FakeAmi().install(monkeypatch)
    await add_users(db, ("alice", "agent", "8101"), ("maria", "manager", "8301"))
    app, bus, _tracker = ui_app(db, settings=UiSettings().model_copy(update={"wrapup_seconds": 60}))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    base = str(client.make_url("")).rstrip("/")
    try:
        status, _ = await sign_in(http, base, "alice")
        assert status == 303
        yield base, http, bus, db
    finally:
        await http.close()
        await client.close()
        await engine.dispose()


async def _count(db: Sessions, model: type[Customer] | type[FollowUp]) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.asyncio
async def test_the_create_customer_form_refuses_each_spoofing_character_naming_the_field(
    desk: tuple[str, aiohttp.ClientSession, MemoryBus, Sessions],
) -> None:
    base, http, _bus, db = desk
    async with http.get(base + "/ui/desktop") as page:
        csrf = csrf_of(await page.text())
    for text, named in SPOOFS.values():
        async with http.post(
            base + "/ui/customers/new",
            data={"csrf": csrf, "name": text, "phone": "+8613911112222"},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 400
            said = await answer.text()
        assert said.startswith("name: ")
        assert named in said
    assert await _count(db, Customer) == 0


@pytest.mark.asyncio
async def test_the_wrap_up_refuses_spoofing_notes_and_follow_up_notes_then_takes_clean_ones(
    desk: tuple[str, aiohttp.ClientSession, MemoryBus, Sessions],
) -> None:
    base, http, bus, db = desk
    ws = await http.ws_connect(f"{base}/ui/ws?view=desk", headers={"Origin": base})
    assert (await next_of(ws, "state"))["state"] == "logged_out"
    linkedid = "1700000000.91"
    bus.publish(arrived(linkedid))
    bus.publish(ringing(linkedid, ALICE))
    await next_of(ws, "pop")
    bus.publish(answered(linkedid, ALICE))
    await next_of(ws, "answered")
    bus.publish(ended(linkedid, ALICE))
    await next_of(ws, "wrapup")
    wrapup = {"type": "wrapup", "linkedid": linkedid, "disposition": "resolved"}
    for text, named in SPOOFS.values():
        await ws.send_json({**wrapup, "notes": text})
        refused = await next_of(ws, "error")
        assert refused["message"].startswith("wrap-up refused: notes: ")
        assert named in refused["message"]
        await ws.send_json({**wrapup, "follow_up_note": text})
        refused = await next_of(ws, "error")
        assert refused["message"] == f"follow-up note: {named} is not allowed"
    async with db() as session:
        row = await find_interaction(session, NODE, linkedid)
    assert row is None or not row.disposition  # nothing stored yet
    await ws.send_json({**wrapup, "notes": "José 张伟 مرحبا: refund sent"})
    assert (await next_of(ws, "wrapped"))["linkedid"] == linkedid
    async with db() as session:
        row = await find_interaction(session, NODE, linkedid)
    assert row is not None
    assert row.notes == "José 张伟 مرحبا: refund sent"
    await ws.close()


@pytest.mark.asyncio
async def test_a_spoofing_caller_name_is_stored_with_spaces_and_the_call_kept(
    crm: Sessions, tmp_path: Path
) -> None:
    bus = MemoryBus()
    recorder = Recorder(bus, crm, Spool(tmp_path / "spool.jsonl"), region="CN")
    task = asyncio.create_task(recorder.run())
    names = {f"s{i}": text for i, (text, _) in enumerate(SPOOFS.values())}
    try:
        for linkedid, name in names.items():
            bus.publish(
                CallStarted(
                    node=NODE,
                    linkedid=linkedid,
                    caller_number="+8613900000009",
                    caller_name=name,
                    dialed="100",
                )
            )

        async def stored() -> dict[str, str] | None:
            async with crm() as session:
                rows = {k: await find_interaction(session, NODE, k) for k in names}
            if any(row is None for row in rows.values()):
                return None
            return {k: row.caller_name or "" for k, row in rows.items() if row is not None}

        found = await poll_until(stored, 10, what="every call recorded")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert found["s0"] == "invoice slx.exe"  # the override is a visible space
    assert found["s8"] == "a d m i n"  # zero-width spaces no longer hide
    for linkedid, name in names.items():  # each one a space, then blanks at the ends go
        assert found[linkedid] == "".join(" " if ord(c) in _SPOOFING else c for c in name).strip()


_SPOOFING = {
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    *range(0x200B, 0x2010),
    0x061C,
    0x2060,
    0xFEFF,
}
"""The code points the issue lists (C0, DEL and C1; bidirectional; zero-width)."""


@pytest.mark.asyncio
async def test_a_case_is_not_resolved_with_a_spoofing_root_cause(
    desk: tuple[str, aiohttp.ClientSession, MemoryBus, Sessions],
) -> None:
    base, _alice, _bus, db = desk
    async with db() as session, session.begin():
        customer = await create_customer(session, CustomerIn(name="Ann Lee"), "CN")
        case = await open_case(
            session, customer_id=customer.id, category="billing", severity="low", sla=CaseSla()
        )
        await assign_case(session, case, (await get_user(session, "maria")).id)
        case_id = case.id
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as maria:
        status, _ = await sign_in(maria, base, "maria")
        assert status == 303
        page = f"{base}/ui/complaints/{case_id}"
        async with maria.get(page) as shown:
            csrf = csrf_of(await shown.text())
        for text, named in SPOOFS.values():
            async with maria.post(
                page + "/resolve", data={"csrf": csrf, "root_cause": text}, allow_redirects=False
            ) as answer:
                assert answer.status == 422
                assert f"root_cause: {named} is not allowed" in html.unescape(await answer.text())
        async with db() as session:
            stored = await session.get(ComplaintCase, case_id)
            assert stored is not None
            assert (stored.status, stored.root_cause) == ("assigned", None)
        async with maria.post(
            page + "/resolve",
            data={"csrf": csrf, "root_cause": "José 张伟 محمد: billed twice"},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 303
    async with db() as session:
        stored = await session.get(ComplaintCase, case_id)
        assert stored is not None
        assert (stored.status, stored.root_cause) == ("resolved", "José 张伟 محمد: billed twice")
