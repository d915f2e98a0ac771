"""``cti routing``: routing policies tried on recorded traffic."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cti_server.cli.common import Group


@click.group(cls=Group)
def routing() -> None:
    """Routing policies, tried on recorded traffic."""


@routing.command("simulate")
@click.option(
    "--traffic",
    "traffic_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Recorded calls (the bank's CSV format, plain or .gz).",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    default=("bank-observed", "default"),
    show_default=True,
    help="A policy file or a built-in one (default, bank-fifo, bank-observed); repeat to compare.",
)
@click.option(
    "--agents",
    type=click.IntRange(min=1),
    default=None,
    help="N agents serving every type, on duty whenever anyone was (default: as recorded).",
)
@click.option("--days", default=None, help="YYYY-MM-DD or FIRST..LAST (default: every day).")
@click.option(
    "--service-level",
    "service_level_s",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    help="Seconds within which an answer counts for the service level.",
)
def routing_simulate(
    traffic_file: Path,
    policies: tuple[str, ...],
    agents: int | None,
    days: str | None,
    service_level_s: float,
) -> None:
    """Replay recorded arrivals, patience and handle times through the routing core under
    each policy; print ASA, abandon rate and service level per customer class beside the
    recorded ones. By default: the bank's rule as its data shows it against ours."""
    from cti_server.routing.policy import PolicyError, policy_from
    from cti_server.routing.simulator import observed, simulate, table
    from cti_server.routing.traffic import TrafficError, load_traffic, parse_days

    try:
        chosen = [policy_from(spec) for spec in policies]
        traffic = load_traffic(traffic_file, parse_days(days) if days else None)
    except (PolicyError, TrafficError) as exc:
        click.echo(f"cti routing simulate: {exc}", err=True)
        sys.exit(2)
    recorded = len({shift.agent for shift in traffic.shifts})
    staff = f"{agents} agents" if agents else f"{recorded} agents as recorded"
    click.echo(
        f"{traffic_file.name}: {len(traffic.calls)} calls, {traffic.days[0]}..{traffic.days[-1]}"
        f", {staff}"
    )
    reports = [observed(traffic, service_level_s)]
    reports += [
        simulate(traffic, p, service_level_s=service_level_s, agents=agents) for p in chosen
    ]
    click.echo(table(reports, service_level_s))
