"""What holds customers' data or secrets on disk is created readable by its owner only, whatever
the umask: the CRM's SQLite file (and its WAL), the recorder's journal."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from crm_core.database import make_engine
from cti_server.recorder.spool import Spool


@pytest.fixture(autouse=True)
def _permissive_umask() -> Iterator[None]:
    """A umask that makes files world-readable, as on many hosts."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.asyncio
async def test_a_new_sqlite_database_and_its_wal_are_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "cti.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (x INTEGER)"))
            await connection.execute(text("INSERT INTO t VALUES (1)"))
        assert _mode(path) == 0o600
        assert _mode(path.parent) == 0o700
        assert _mode(path.with_name("cti.db-wal")) == 0o600
    finally:
        await engine.dispose()


def test_the_journal_is_private_from_the_first_write_and_after_a_rewrite(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool" / "interactions.jsonl")
    try:
        spool.append({"linkedid": "1", "caller": "+8613800138000"})
        assert _mode(spool.path) == 0o600
        assert _mode(spool.path.parent) == 0o700
        spool.append({"linkedid": "2"})
        spool.drop(1)  # rewritten through a temporary file
        assert _mode(spool.path) == 0o600
        assert [e["linkedid"] for e in Spool(spool.path).entries()] == ["2"]
    finally:
        spool.close()
