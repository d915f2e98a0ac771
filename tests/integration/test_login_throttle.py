"""Sign-in throttling (crm_core.login_throttle) on SQLite and PostgreSQL: a growing delay, a
lockout that holds on every server and answers as a wrong password does, counts per account and
per address, failures logged and counted, and the client's address behind a trusted proxy."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from ipaddress import ip_network
from typing import Literal

import pytest
import pytest_asyncio
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core import people
from crm_core.database import make_engine
from crm_core.login_throttle import LoginGuard, Refusal, client_address
from crm_core.models import LoginFailures, utcnow
from crm_core.people import UserChanges, change_user, create_user
from crm_core.settings import LoginSettings
from cti_server.config import load_settings

Sessions = async_sessionmaker[AsyncSession]
PASSWORD = "correct horse battery"
HERE = "10.0.0.7"
FAST = LoginSettings(
    first_delay_seconds=0.2,
    max_delay_seconds=0.8,
    account_lockout_after=4,
    address_lockout_after=6,
    lockout_minutes=10,
)


@pytest_asyncio.fixture
async def crm(crm_database_url: str) -> AsyncIterator[Sessions]:
    engine = make_engine(crm_database_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as s, s.begin():
        await create_user(s, username="ann", password=PASSWORD, role="agent")
        await create_user(s, username="bob", password=PASSWORD, role="agent")
    try:
        yield sessions
    finally:
        await engine.dispose()


async def _timed(guard: LoginGuard, username: str, password: str, address: str = HERE) -> float:
    """Seconds a refused sign-in took to answer (the sign-in must be refused)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await guard.sign_in(username, password, address) is None
    return loop.time() - started


@pytest.mark.asyncio
async def test_each_failure_waits_longer_and_a_right_password_is_never_delayed(
    crm: Sessions,
) -> None:
    guard = LoginGuard(crm, FAST)
    waits = [await _timed(guard, "ann", "wrong password") for _ in range(3)]
    for wait, expected in zip(waits, (0.2, 0.4, 0.8), strict=True):
        assert expected <= wait < expected + 0.15, waits
    loop = asyncio.get_running_loop()
    started = loop.time()
    user = await guard.sign_in("ann", PASSWORD, HERE)
    assert user is not None
    assert user.username == "ann"
    assert loop.time() - started < 0.15
    # the success forgets the account's failures: the next wrong password waits the first delay
    assert await _timed(guard, "ann", "wrong password", "10.0.0.8") < 0.2 + 0.15


@pytest.mark.asyncio
async def test_a_locked_account_refuses_its_right_password_on_every_server_after_as_long(
    crm: Sessions,
) -> None:
    settings = FAST.model_copy(update={"max_delay_seconds": 0.4})
    one, other = LoginGuard(crm, settings), LoginGuard(crm, settings)  # two servers, one database
    for guard in (one, other, one, other):
        await _timed(guard, "ann", "wrong password")
    wrong = await _timed(one, "bob", "wrong", "10.0.0.9")  # bob's 1st failure: 0.2 s
    for guard in (one, other):
        locked = await _timed(guard, "ann", PASSWORD)  # the right password, refused
        assert 0.4 <= locked < 0.4 + 0.15  # as long as a 4th+ wrong password waits
    assert wrong < 0.4
    assert one.failures[Refusal.ACCOUNT_LOCKED] == 1
    assert other.failures[Refusal.ACCOUNT_LOCKED] == 1
    assert one.failures[Refusal.WRONG_CREDENTIALS] == 3  # two of ann's, one of bob's
    assert await one.sign_in("bob", PASSWORD, "10.0.0.9") is not None  # bob is not locked


@pytest.mark.asyncio
async def test_an_unknown_user_is_counted_and_locked_like_a_known_one(crm: Sessions) -> None:
    guard = LoginGuard(crm, FAST.model_copy(update={"max_delay_seconds": 0.2}))
    for _ in range(4):
        await _timed(guard, "nobody", "guess")
    await _timed(guard, "nobody", "guess")
    assert guard.failures[Refusal.WRONG_CREDENTIALS] == 4
    assert guard.failures[Refusal.ACCOUNT_LOCKED] == 1


@pytest.mark.asyncio
async def test_an_address_that_tries_many_accounts_is_locked_for_all_of_them(
    crm: Sessions,
) -> None:
    guard = LoginGuard(crm, FAST.model_copy(update={"max_delay_seconds": 0.2}))
    for number in range(6):  # six accounts, one guess each: no account reaches its limit
        await _timed(guard, f"user{number}", "guess")
    assert await guard.sign_in("ann", PASSWORD, HERE) is None  # the address is locked
    assert guard.failures[Refusal.ADDRESS_LOCKED] == 1
    assert await guard.sign_in("ann", PASSWORD, "10.0.0.8") is not None  # from elsewhere: in


@pytest.mark.asyncio
async def test_a_new_password_from_an_admin_lifts_the_lockout(crm: Sessions) -> None:
    guard = LoginGuard(crm, FAST.model_copy(update={"max_delay_seconds": 0.2}))
    for _ in range(4):
        await _timed(guard, "ann", "wrong password")
    await _timed(guard, "ann", PASSWORD)
    async with crm() as s, s.begin():
        await change_user(s, "ann", UserChanges(password="a brand new secret"))
    assert await guard.sign_in("ann", "a brand new secret", "10.0.0.8") is not None


@pytest.mark.asyncio
async def test_failures_are_logged_with_user_and_address_never_the_password(
    crm: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    guard = LoginGuard(crm, FAST.model_copy(update={"max_delay_seconds": 0.2}))
    with caplog.at_level(logging.WARNING, logger="crm_core.login_throttle"):
        await _timed(guard, "ann", "hunter2-secret")
    [record] = [r for r in caplog.records if r.name == "crm_core.login_throttle"]
    assert record.levelno == logging.WARNING
    assert "'ann'" in record.getMessage()
    assert HERE in record.getMessage()
    assert "wrong_credentials" in record.getMessage()
    assert "hunter2" not in caplog.text


def test_loopback_is_the_trusted_proxy_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert client_address("127.0.0.1", "203.0.113.5", LoginSettings().trusted_proxies) == (
        "203.0.113.5"
    )
    assert client_address("::1", "203.0.113.5", LoginSettings().trusted_proxies) == "203.0.113.5"
    monkeypatch.setenv("CTI_AMI__SECRET", "throttle-test")
    monkeypatch.setenv("CTI_CRM__LOGIN__TRUSTED_PROXIES", '["10.1.0.0/16"]')
    monkeypatch.setenv("CTI_CRM__LOGIN__ACCOUNT_LOCKOUT_AFTER", "5")
    login = load_settings().crm.login
    assert login.trusted_proxies == (ip_network("10.1.0.0/16"),)
    assert login.account_lockout_after == 5


def test_the_address_is_the_peers_unless_the_peer_is_a_trusted_proxy() -> None:
    proxies = (ip_network("127.0.0.1/32"),)
    assert client_address("127.0.0.1", "203.0.113.5", proxies) == "203.0.113.5"
    # the last entry is the one the proxy appended; earlier ones the client may have forged
    assert client_address("127.0.0.1", "198.51.100.1, 203.0.113.5", proxies) == "203.0.113.5"
    assert client_address("192.0.2.4", "203.0.113.5", proxies) == "192.0.2.4"  # not a proxy
    assert client_address("127.0.0.1", "203.0.113.5", ()) == "127.0.0.1"  # none trusted
    assert client_address("127.0.0.1", "not an address", proxies) == "127.0.0.1"
    assert client_address(None, None, proxies) == "unknown"
    assert client_address("::ffff:127.0.0.1", "::ffff:203.0.113.5", proxies) == "203.0.113.5"


class _GatedHasher(PasswordHasher):
    """Checks wait for the gate: how many run at once, and in which threads."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.gate = threading.Event()
        self.started = threading.Event()
        self.running = 0
        self.most = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.current_thread().name)
        self.started.set()
        try:
            assert self.gate.wait(10)
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1


@pytest.mark.asyncio
async def test_a_flood_of_sign_ins_waits_in_the_hashing_pool_not_in_the_loops_executor(
    crm: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = _GatedHasher()
    monkeypatch.setattr(people, "_HASHER", hasher)
    people._dummy_hash.cache_clear()
    guard = LoginGuard(crm, FAST.model_copy(update={"max_delay_seconds": 0.2}))
    tries = [
        asyncio.create_task(guard.sign_in(f"user{n}", "guess", f"10.0.1.{n}")) for n in range(12)
    ]
    assert await asyncio.to_thread(hasher.started.wait, 5)
    # twelve sign-ins hashing or waiting: the default executor still serves everyone else
    assert await asyncio.wait_for(asyncio.to_thread(lambda: "free"), 1) == "free"
    hasher.gate.set()
    assert await asyncio.gather(*tries) == [None] * 12
    people._dummy_hash.cache_clear()
    assert hasher.most == people.HASHING_THREADS
    assert all(name.startswith("argon2") for name in hasher.threads), hasher.threads


class _CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.checks = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.checks += 1
        return super().verify(hash, password)


@pytest.mark.asyncio
async def test_a_burst_of_parallel_guesses_gets_no_more_checks_than_the_limit(
    crm: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tries are counted before the check: twenty at once, from twenty addresses, get four."""
    hasher = _CountingHasher()
    monkeypatch.setattr(people, "_HASHER", hasher)
    guard = LoginGuard(crm, FAST.model_copy(update={"max_delay_seconds": 0.2}))
    answers = await asyncio.gather(
        *(guard.sign_in("ann", f"guess {n}", f"10.0.2.{n}") for n in range(20))
    )
    assert answers == [None] * 20
    assert hasher.checks == FAST.account_lockout_after
    assert guard.failures[Refusal.WRONG_CREDENTIALS] == 4
    assert guard.failures[Refusal.ACCOUNT_LOCKED] == 16


@pytest.mark.asyncio
async def test_when_the_lockout_ends_the_account_gets_its_tries_again(crm: Sessions) -> None:
    guard = LoginGuard(crm, FAST.model_copy(update={"max_delay_seconds": 0.2}))
    for _ in range(5):  # four checked, the fifth locks
        await _timed(guard, "ann", "wrong password")
    for _ in range(3):  # refused while locked, and not counted: the lockout is not prolonged
        await _timed(guard, "ann", PASSWORD)
    async with crm() as s, s.begin():
        row = await s.get(LoginFailures, people.account_key("ann"))
        assert row is not None
        assert row.failures == 5
        row.locked_until = utcnow() - timedelta(seconds=1)  # the lockout has ended
    for _ in range(3):  # from elsewhere: HERE is locked too by now (seven tries)
        await _timed(guard, "ann", "wrong password", "10.0.0.8")
    assert await guard.sign_in("ann", PASSWORD, "10.0.0.8") is not None  # the 4th try: checked
    assert guard.failures[Refusal.ACCOUNT_LOCKED] == 4
    assert guard.failures[Refusal.WRONG_CREDENTIALS] == 4 + 3
