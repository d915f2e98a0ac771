"""A flood of wrong passwords does not stall the server: 8 parallel clients hammer
``POST /api/tokens`` and ``/ui/login`` (argon2 at its real cost, the throttle's delays and
lockouts set so low that every try is hashed) while ``/status`` keeps answering within 50 ms at
the 99th percentile. The clients run in a thread of their own, over real sockets, so that their
work is not counted as the server's; the unknown user's answer costs what a known one's does."""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core import people
from crm_core.database import make_engine
from crm_core.settings import CrmSettings, LoginSettings
from cti_server.app import build_app
from cti_server.config import AgiSettings, AmiSettings, DatabaseSettings, RecorderSettings, Settings
from tests.support.ports import free_port
from tests.support.ui import csrf_of
from tests.support.waiting import poll_until

PASSWORD = "correct horse battery"
CLIENTS = 8
FLOOD_SECONDS = 6.0
NO_LOCKOUT = LoginSettings(  # the worst case for CPU: nothing locks, every try is hashed
    first_delay_seconds=0.001,
    max_delay_seconds=0.001,
    account_lockout_after=1000,
    address_lockout_after=100_000,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def real_argon2(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Argon2 as the server runs it, not the tests' cheap one (the dummy hash made with it)."""
    monkeypatch.setattr(people, "_HASHER", PasswordHasher())
    people._dummy_hash.cache_clear()
    yield
    people._dummy_hash.cache_clear()


@pytest_asyncio.fixture
async def server(
    real_argon2: None, sqlite_crm_template: Path, tmp_path: Path
) -> AsyncIterator[TestClient[Any, Any]]:
    shutil.copyfile(sqlite_crm_template, tmp_path / "crm.db")
    url = f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}"
    engine = make_engine(url)
    async with async_sessionmaker(engine)() as s, s.begin():
        await people.create_user(s, username="ann", password=PASSWORD, role="agent")
    await engine.dispose()
    settings = Settings(
        ami=AmiSettings(port=free_port(), secret="flood-test", node="pbx1"),
        agi=AgiSettings(port=free_port()),
        database=DatabaseSettings(url=url),
        recorder=RecorderSettings(spool_path=tmp_path / "spool.jsonl"),
        crm=CrmSettings(login=NO_LOCKOUT),
    )
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(settings)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def _attack_api(base: str, stop: threading.Event, answers: list[int]) -> None:
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            body = {"username": "ann", "password": "wrong password"}
            async with http.post(f"{base}/api/tokens", json=body) as response:
                answers.append(response.status)


async def _attack_form(base: str, stop: threading.Event, answers: list[int]) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        while not stop.is_set():
            async with http.get(f"{base}/ui/login") as page:
                field = csrf_of(await page.text())
            form = {"username": "ann", "password": "wrong password", "csrf": field}
            async with http.post(f"{base}/ui/login", data=form) as response:
                answers.append(response.status)


def _flood(base: str, stop: threading.Event, answers: list[int]) -> None:
    """In a thread with its own event loop: half the clients on the API, half on the form."""

    async def run() -> None:
        attacks = [_attack_api, _attack_form] * (CLIENTS // 2)
        await asyncio.gather(*(attack(base, stop, answers) for attack in attacks))

    asyncio.run(run())


async def _status_latencies(client: TestClient[Any, Any], seconds: float) -> list[float]:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    end = loop.time() + seconds
    async with aiohttp.ClientSession() as http:
        while loop.time() < end:
            started = loop.time()
            async with http.get(client.make_url("/status")) as response:
                await response.read()
            latencies.append(loop.time() - started)
            await asyncio.sleep(0.02)  # the probe's own pace (a monitor's), not a wait
    return latencies


def _answered(answers: list[int], count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(answers) >= count

    return check


def _failures_counted(metrics: str) -> float:
    found = re.search(
        r'^cti_login_failures_total\{reason="wrong_credentials"\} (\S+)$', metrics, re.M
    )
    assert found is not None, metrics
    return float(found.group(1))


@pytest.mark.asyncio
async def test_eight_wrong_password_clients_leave_status_answering_within_50_ms(
    server: TestClient[Any, Any],
) -> None:
    base = str(server.make_url("")).rstrip("/")
    quiet = await _status_latencies(server, 0.5)
    stop, answers = threading.Event(), list[int]()
    flood = threading.Thread(target=_flood, args=(base, stop, answers))
    flood.start()
    try:
        # the flood under way: every client has had a wrong password answered
        await poll_until(_answered(answers, CLIENTS), 30, what="the flood's first answers")
        latencies = await _status_latencies(server, FLOOD_SECONDS)
    finally:
        stop.set()
        await asyncio.to_thread(flood.join, 30)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    report = f"p99 {p99 * 1000:.1f} ms; quiet median {statistics.median(quiet) * 1000:.1f} ms"
    assert p99 < 0.050, report
    assert set(answers) == {401}
    assert len(answers) >= 10, f"only {len(answers)} tries: the flood did not run ({report})"
    async with server.get("/metrics") as response:
        assert _failures_counted(await response.text()) == len(answers)


@pytest.mark.asyncio
async def test_an_unknown_user_costs_as_much_as_a_wrong_password(real_argon2: None) -> None:
    """The dummy hash is checked in the same pool, at the same cost: no probing for users."""

    async def cost(stored: str | None) -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await people.in_hashing_pool(people._verify, stored, "wrong password") is False
        return loop.time() - started

    stored = await people.hash_password(PASSWORD)
    await cost(None)  # the dummy hash is made on first use
    # in turn, so that other work on the machine weighs on both alike
    pairs = [(await cost(stored), await cost(None)) for _ in range(7)]
    known = statistics.median(k for k, _ in pairs)
    unknown = statistics.median(u for _, u in pairs)
    assert known > 0.005  # the real cost, not the tests' cheap hasher
    assert abs(known - unknown) < 0.3 * known, (known, unknown)
