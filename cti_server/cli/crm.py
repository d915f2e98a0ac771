"""``cti crm``: the CRM database (schema, demo data) and its users (:mod:`.users`)."""

from __future__ import annotations

from pathlib import Path

import click

from cti_server.cli.common import Group, config_option, crm_engine, crm_settings, run
from cti_server.cli.users import register_user_commands


@click.group(cls=Group)
def crm() -> None:
    """The CRM database: schema, users, demo data."""


@crm.command("migrate")
@config_option
def crm_migrate(config_file: Path | None) -> None:
    """Bring the CRM schema up to date (cti serve also does this at start)."""
    from crm_core.migrate import upgrade

    settings = crm_settings(config_file)

    async def _migrate() -> None:
        engine = crm_engine(settings)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    run(_migrate)
    click.echo("CRM schema up to date")


@crm.command("seed")
@config_option
@click.option(
    "--customers", type=click.IntRange(min=1), required=True, help="How many customers to add."
)
@click.option(
    "--seed",
    "seed",
    type=int,
    default=1,
    show_default=True,
    help="Random seed: the same seed into the same database gives the same data.",
)
def crm_seed(config_file: Path | None, customers: int, seed: int) -> None:
    """Add realistic demo customers with phones, orders, past calls and complaints."""
    from crm_core.migrate import upgrade
    from crm_core.seed import SeedReport, seed_crm

    settings = crm_settings(config_file)
    step = max(1, customers // 20)  # about twenty progress lines, whatever the size
    shown = 0

    def progress(done: int) -> None:
        nonlocal shown
        if done - shown >= step or done == customers:
            shown = done
            click.echo(f"  {done:,} of {customers:,} customers ({100 * done // customers} %)")

    async def _seed() -> SeedReport:
        engine = crm_engine(settings)
        try:
            await upgrade(engine)
            return await seed_crm(
                engine,
                customers,
                seed=seed,
                region=settings.crm.default_region,
                policy=settings.crm.value,
                progress=progress,
            )
        finally:
            await engine.dispose()

    click.echo(f"seeding {customers:,} customers (seed {seed})")
    report = run(_seed)
    tiers = ", ".join(f"{tier} {count:,}" for tier, count in sorted(report.tiers.items()))
    click.echo(
        f"added {report.customers:,} customers ({report.organisations:,} organisations), "
        f"{report.phones:,} phones, {report.transactions:,} transactions, "
        f"{report.interactions:,} interactions, {report.cases:,} cases "
        f"in {report.seconds:.1f} s; tiers: {tiers}"
    )


register_user_commands(crm, config_option, lambda config: crm_engine(crm_settings(config)))
