"""The CRM API and a log watcher for the hostile-input tests."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.database import make_engine
from tests.support.crm_api import CrmApi, crm_api


@pytest_asyncio.fixture
async def api(crm: async_sessionmaker[AsyncSession]) -> AsyncIterator[CrmApi]:
    """The API on each test database; every answer is one the OpenAPI document describes."""
    async with crm_api(crm) as served:
        yield served
    assert served.checker.problems == []


@pytest_asyncio.fixture
async def sqlite_db(
    sqlite_crm_template: Path, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A fresh SQLite CRM (the fuzz tests run once, not once per database)."""
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_crm_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()
