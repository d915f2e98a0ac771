"""A blank CRM for unit tests of one part's use of it: the ORM's tables in a SQLite file (no
migrations, no seed), and customers added by name and phone."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.customers import create_customer
from crm_core.database import make_engine
from crm_core.models import Base
from crm_core.schemas import CustomerIn

Sessions = async_sessionmaker[AsyncSession]
REGION = "CN"


@contextlib.asynccontextmanager
async def blank_crm(folder: Path) -> AsyncIterator[Sessions]:
    engine = make_engine(f"sqlite+aiosqlite:///{folder / 'crm.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


async def add_customer(crm: Sessions, name: str, *numbers: str) -> int:
    """A customer reachable on ``numbers`` (none: no phone); their id."""
    data = CustomerIn.model_validate({"name": name, "phones": [{"number": n} for n in numbers]})
    async with crm() as session, session.begin():
        return (await create_customer(session, data, REGION)).id
