"""The embedded SQLite database keeps taking writes while something else is reading it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from crm_core.database import make_engine


@pytest.mark.asyncio
async def test_a_reader_left_mid_query_does_not_block_the_recorders_writes(
    tmp_path: Path,
) -> None:
    """A screen-pop look-up cancelled when its caller hung up left a statement half read; in
    SQLite's rollback journal that reader's lock refused every write ("database is locked")."""
    path = tmp_path / "crm.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE calls (id INTEGER PRIMARY KEY, n INT)"))
            await connection.execute(text("INSERT INTO calls (n) VALUES (1), (2), (3)"))
        reader = sqlite3.connect(path, timeout=0.1)
        half_read = reader.execute("SELECT n FROM calls")
        assert half_read.fetchone() == (1,)  # the statement stays open with rows left
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO calls (n) VALUES (4)"))
        async with engine.connect() as connection:
            count = await connection.scalar(text("SELECT count(*) FROM calls"))
            mode = await connection.scalar(text("PRAGMA journal_mode"))
        assert count == 4
        assert mode == "wal"
        reader.close()
    finally:
        await engine.dispose()
