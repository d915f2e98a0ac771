"""`cti crm seed`: demo data from the command line, into the database the settings name."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from crm_core.database import make_engine
from crm_core.models import Customer, Phone
from cti_server.cli.main import main


async def _counts(url: str) -> tuple[int, int]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            customers = await connection.scalar(select(func.count()).select_from(Customer))
            phones = await connection.scalar(select(func.count()).select_from(Phone))
    finally:
        await engine.dispose()
    return int(customers or 0), int(phones or 0)


def test_crm_seed_adds_customers_with_progress(crm_database_url: str) -> None:
    runner = CliRunner()
    env = {"CTI_DATABASE__URL": crm_database_url}
    result = runner.invoke(main, ["crm", "seed", "--customers", "60", "--seed", "3"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "seeding 60 customers (seed 3)"
    assert "  60 of 60 customers (100 %)" in lines
    assert lines[-1].startswith("added 60 customers")
    customers, phones = asyncio.run(_counts(crm_database_url))
    assert customers == 60
    assert phones >= 60

    again = runner.invoke(main, ["crm", "seed", "--customers", "40"], env=env)
    assert again.exit_code == 0, again.output
    assert asyncio.run(_counts(crm_database_url))[0] == 100, "seeding again adds to the data"


@pytest.mark.parametrize("customers", ["0", "-5", "many"])
def test_crm_seed_refuses_a_count_that_is_not_positive(customers: str) -> None:
    result = CliRunner().invoke(main, ["crm", "seed", "--customers", customers])
    assert result.exit_code == 2
    assert "--customers" in result.output
