"""Fixtures: a real Asterisk, a real redis-server, a temporary database, AMI observers."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from argon2 import PasswordHasher
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core import people as crm_people
from crm_core.database import make_engine
from crm_core.migrate import upgrade
from cti_server.sim.simulation import add_sim_agent, remove_sim_agent
from cti_server.telephony.ami_client import AmiClient
from tests.support.asterisk import AsteriskNode, start_node
from tests.support.live_calls import serving
from tests.support.ports import free_port
from tests.support.postgres import PostgresServer
from tests.support.waiting import EventLog, poll_until


def pytest_configure(config: pytest.Config) -> None:
    # A developer's own CTI_* settings must not leak into the tests.
    for key in [k for k in os.environ if k.startswith("CTI_")]:
        del os.environ[key]


@pytest.fixture(scope="session")
def asterisk_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsteriskNode]:
    """One real Asterisk for the whole session (boots in well under a second)."""
    node = start_node(f"t{os.getpid()}", tmp_path_factory.mktemp("asterisk"))
    yield node
    node.instance.stop()


@pytest.fixture
def fresh_asterisk(tmp_path: Path) -> Iterator[AsteriskNode]:
    """A real Asterisk of this test's own, for tests that stop or restart it."""
    node = start_node(f"f{os.getpid()}", tmp_path)
    yield node
    node.instance.stop()


@asynccontextmanager
async def ami_observer(node: AsteriskNode) -> AsyncIterator[tuple[AmiClient, EventLog]]:
    """An AMI connection that records every event; also used to place simulated calls."""
    log = EventLog()
    client = AmiClient(node.settings.ami, on_event=log)
    task = asyncio.create_task(client.run())
    try:
        await client.wait_connected(10.0)
        yield client, log
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest_asyncio.fixture
async def ami(asterisk_node: AsteriskNode) -> AsyncIterator[tuple[AmiClient, EventLog]]:
    async with ami_observer(asterisk_node) as observer:
        yield observer


@asynccontextmanager
async def sim_agents(client: AmiClient, queue: str, extensions: list[str]) -> AsyncIterator[None]:
    """Simulated agents that answer every call offered to ``queue``, removed afterwards."""
    for ext in extensions:
        await add_sim_agent(client, queue, ext)
    try:
        yield
    finally:
        for ext in extensions:
            await remove_sim_agent(client, queue, ext)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A temporary SQLite database for one test."""
    return f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free loopback port, without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"

    async def _ready() -> bool:
        client = Redis.from_url(url)
        try:
            return bool(await client.ping())
        except (OSError, RedisConnectionError):
            return False
        finally:
            await client.aclose()

    try:
        asyncio.run(poll_until(_ready, 10.0, what="redis-server ready"))
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL cluster of our own for the session (not the system one)."""
    reason = PostgresServer.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    # Not tmp_path_factory: pytest's temp root is private to root, and as root PostgreSQL
    # runs as the postgres OS user, which must reach its data and socket directories.
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="cti-pg-")))
    try:
        server.start()
        yield server
    finally:
        server.stop()


async def _migrated(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_crm_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite CRM migrated once per session; each test gets a copy of the file."""
    path = tmp_path_factory.mktemp("crm-template") / "crm.db"
    asyncio.run(_migrated(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_crm_template(postgres_server: PostgresServer) -> str:
    """A PostgreSQL CRM database migrated once per session, the template of each test's."""
    name = "crm_template"
    asyncio.run(_migrated(postgres_server.create_database(name)))
    return name


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    ids=["sqlite", "postgresql"],
)
def crm_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh CRM database at the current schema for one test: SQLite, then PostgreSQL.

    The PostgreSQL server starts only when a postgresql case runs, so `-m "not postgres"`
    (or a machine without PostgreSQL, where those cases skip) never starts it.
    """
    if request.param == "sqlite":
        path = tmp_path / "crm.db"
        shutil.copyfile(request.getfixturevalue("sqlite_crm_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    template: str = request.getfixturevalue("postgres_crm_template")
    name = f"crm_{uuid.uuid4().hex[:16]}"
    url = server.create_database(name, template=template)
    yield url
    server.drop_database(name)


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2, with the cost turned down: tests create many users."""
    monkeypatch.setattr(
        crm_people, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest_asyncio.fixture
async def crm(crm_database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A CRM database at the current schema (SQLite, then PostgreSQL) and its session factory."""
    engine = make_engine(crm_database_url)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def cti_app(asterisk_node: AsteriskNode) -> AsyncIterator[web.Application]:
    """`cti serve`'s application, in this process so the test can watch its bus."""
    async with serving(asterisk_node.settings) as app:
        yield app
