"""``cti ivr``: the IVR's flow files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cti_server.cli.common import Group


@click.group(cls=Group)
def ivr() -> None:
    """IVR flows."""


@ivr.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def ivr_check(paths: tuple[Path, ...]) -> None:
    """Validate flow files (default: every flow shipped); exit 1 naming each problem."""
    from cti_server.asterisk.data import data_dir
    from cti_server.ivr.calendar import CALENDAR_FILE, CalendarError, load_calendar
    from cti_server.ivr.flow import FlowError
    from cti_server.ivr.registry import check_flow_file

    directory = data_dir("ivr_flows")
    files = [
        p for path in paths for p in (sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    ]
    failed = False
    for path in files or sorted(directory.glob("*.yaml")):
        try:
            if path.name == CALENDAR_FILE:
                load_calendar(path)
                click.echo(f"{path.name}: calendar ok")
                continue
            flow = check_flow_file(path)
        except (FlowError, CalendarError) as exc:
            click.echo(str(exc), err=True)
            failed = True
            continue
        click.echo(f"{path.name}: flow {flow.name!r} ok ({len(flow.steps)} steps)")
    sys.exit(1 if failed else 0)
