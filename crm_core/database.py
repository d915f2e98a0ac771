"""The CRM's database engine: SQLite embedded by default, PostgreSQL to scale out."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# How long a SQLite writer waits for another writer before giving up (the recorder then retries).
SQLITE_BUSY_MS = 10_000


def make_engine(url: str, password: str | None = None) -> AsyncEngine:
    """An async engine; a password given apart (from the environment) fills the URL's."""
    parsed = make_url(url)
    if password is not None:
        parsed = parsed.set(password=password)
    sqlite = parsed.get_backend_name() == "sqlite"
    # a server connection may have died while pooled; a SQLite file cannot: no ping for it
    engine = create_async_engine(parsed, pool_pre_ping=not sqlite)
    if sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_foreign_keys)
    if sqlite and parsed.database not in (None, "", ":memory:"):
        _create_private(Path(parsed.database))
        event.listen(engine.sync_engine, "connect", _sqlite_wal)
    return engine


def _create_private(path: Path) -> None:
    """A new SQLite database file is created readable by its owner only: it holds customers and
    password hashes. SQLite gives its -wal and -shm files the database file's mode."""
    if str(path).startswith("file:"):
        return
    # a path that cannot be made is left to SQLite, which says why when the server starts
    with contextlib.suppress(OSError):  # (and FileExistsError: another process made it)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    """SQLite ignores foreign keys unless asked on every connection; PostgreSQL always checks
    them, so without this a follow-up for a user who does not exist was stored on one only."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    """Write-ahead logging: readers never block the recorder's writes. In the default rollback
    journal, a reader cancelled mid-query (a screen pop for a caller who hung up) kept its shared
    lock, and every later write failed with "database is locked" until it was collected."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    finally:
        cursor.close()


async def ping(engine: AsyncEngine, timeout: float = 2.0) -> bool:
    """True when the database answers a trivial query within ``timeout`` seconds."""

    async def _query() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(_query(), timeout)
    except Exception:
        return False
    return True
