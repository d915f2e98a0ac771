"""Fixtures every unit test shares."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.database import make_engine
from crm_core.models import Base


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CTI_* variable of the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("CTI_"):
            monkeypatch.delenv(key)


@pytest_asyncio.fixture
async def sqlite_crm(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A CRM database of the test's own: SQLite in its folder, tables made from the models."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()
