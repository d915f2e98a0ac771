"""``cti call`` and ``cti simulate``: simulated customers calling the local Asterisk."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from cti_server.cli.common import Command, config_option, crm_engine, read_settings, run


@click.command(cls=Command)
@config_option
@click.option("--number", default="+8613800138000", show_default=True)
@click.option("--name", default="张伟", show_default=True)
@click.option("--dialed", default="100", show_default=True)
@click.option("--agent", "agents", multiple=True, help="Add a simulated agent EXT to the queue.")
def call(
    config_file: Path | None, number: str, name: str, dialed: str, agents: tuple[str, ...]
) -> None:
    """Place one simulated customer call into the local Asterisk."""
    from cti_server.sim.simulation import add_sim_agent, place_customer_call
    from cti_server.telephony.ami_client import AmiClient

    settings = read_settings(config_file)

    async def _call() -> str:
        client = AmiClient(settings.ami, on_event=lambda _m: None)
        runner = asyncio.create_task(client.run())
        try:
            await client.wait_connected(10.0)
            for ext in agents:
                await add_sim_agent(client, settings.dialplan.default_queue, ext)
            placed = await place_customer_call(
                client,
                context=settings.dialplan.inbound_context,
                number=number,
                name=name,
                dialed=dialed,
                audio="cti/sim-hello",
            )
            return placed.uniqueid
        finally:
            runner.cancel()

    click.echo(f"call placed: {run(_call)}")


@click.command(cls=Command)
@config_option
@click.option("--rate", default=3.0, show_default=True, help="Calls per minute (Poisson).")
@click.option(
    "--bank-data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Replay a day of the bank's calls (august_1999_calls.csv.gz) instead of --rate.",
)
@click.option("--day", default="1999-08-02", show_default=True, help="The bank day to replay.")
@click.option("--speed", default=60.0, show_default=True, help="Replay this many times faster.")
@click.option("--max-calls", type=int, default=None, help="Stop placing calls after this many.")
@click.option("--agents", default=3, show_default=True, help="Virtual agents 1001, 1002, ...")
@click.option("--seed", type=int, default=None, help="Repeat the same traffic.")
@click.option(
    "--call-back-after",
    type=click.FloatRange(min=0),
    default=None,
    help="Unhappy customers call again this many seconds after their call (beyond --max-calls).",
)
def simulate(
    config_file: Path | None,
    rate: float,
    bank_data: Path | None,
    day: str,
    speed: float,
    max_calls: int | None,
    agents: int,
    seed: int | None,
    call_back_after: float | None,
) -> None:
    """Realistic traffic into the Asterisk of the settings: CRM customers call, walk the IVR,
    wait, talk (personas, complaints included) or give up; virtual agents answer."""
    import random
    from datetime import date

    from sqlalchemy.ext.asyncio import AsyncSession

    from cti_server.sim.arrivals import bank_day, poisson
    from cti_server.sim.callers import load_callers
    from cti_server.sim.runner import CallSimulator, Summary

    settings = read_settings(config_file)
    try:
        arrivals = (
            bank_day(bank_data, date.fromisoformat(day), speed)
            if bank_data is not None
            else poisson(rate, random.Random(seed))  # noqa: S311 - simulated traffic
        )
    except ValueError as exc:
        click.echo(f"cti simulate: {exc}", err=True)
        sys.exit(2)
    if bank_data is None and max_calls is None:
        click.echo("cti simulate: give --max-calls with --rate (Ctrl-C stops it too)", err=True)

    async def _simulate() -> Summary:
        engine = crm_engine(settings)
        try:
            async with AsyncSession(engine) as session:
                callers = await load_callers(session)
        finally:
            await engine.dispose()
        simulator = CallSimulator(
            settings,
            callers,
            agents=[str(1001 + n) for n in range(agents)],
            seed=seed,
            call_back_after=call_back_after,
        )
        return await simulator.run(arrivals, max_calls)

    for line in run(_simulate).lines():
        click.echo(line)
