"""The CRM's database engine: SQLite embedded by default, PostgreSQL to scale out."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def make_engine(url: str, password: str | None = None) -> AsyncEngine:
    """An async engine; a password given apart (from the environment) fills the URL's."""
    parsed = make_url(url)
    if password is not None:
        parsed = parsed.set(password=password)
    # a server connection may have died while pooled; a SQLite file cannot: no ping for it
    return create_async_engine(parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite")


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
