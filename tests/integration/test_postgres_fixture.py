"""The CRM database fixture gives a working database on both SQLite and a real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, UnicodeText, select
from sqlalchemy.ext.asyncio import create_async_engine

TEXT = "张伟 <script>"


@pytest.mark.asyncio
async def test_unicode_text_round_trips(crm_database_url: str) -> None:
    metadata = MetaData()
    notes = Table(
        "notes",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("body", UnicodeText, nullable=False),
    )
    engine = create_async_engine(crm_database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(notes.insert().values(body=TEXT))
        async with engine.connect() as conn:
            body = (await conn.execute(select(notes.c.body))).scalar_one()
        assert body == TEXT
    finally:
        await engine.dispose()
