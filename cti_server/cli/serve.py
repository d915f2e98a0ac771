"""``cti serve`` and ``cti demo``: the commands that run the CTI server."""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from cti_server.asterisk.local import AsteriskError
from cti_server.asterisk.sip_digests import SipDigestError
from cti_server.cli.common import (
    Command,
    asterisk_instance,
    config_option,
    crm_engine,
    read_settings,
    run,
)

log = logging.getLogger(__name__)


def _run_until_stopped(command: str, start: Callable[[], Awaitable[None]]) -> None:
    """Run the server; a failure to start (or to stop in time) is one line on standard error
    and exit 1, its traceback only with -v."""
    from cti_server.app import ServeError, StartupError

    try:
        run(start)
    except ServeError as exc:
        log.debug("cti %s failed", command, exc_info=exc)
        what = "cannot start: " if isinstance(exc, StartupError) else ""
        click.echo(f"cti {command}: {what}{exc}", err=True)
        sys.exit(1)


@click.command(cls=Command)
@config_option
def serve(config_file: Path | None) -> None:
    """Run the CTI server until SIGTERM or SIGINT."""
    from cti_server.app import serve as run_server

    settings = read_settings(config_file)
    _run_until_stopped("serve", lambda: run_server(settings))


@click.command(cls=Command)
@config_option
@click.option("--customers", default=2000, show_default=True, help="CRM customers to seed once.")
@click.option("--every", default=20.0, show_default=True, help="Seconds between demo calls.")
def demo(config_file: Path | None, customers: int, every: float) -> None:
    """The living demo: Asterisk, the CTI server, a seeded CRM, demo accounts, demo calls."""
    from cti_server.app import DATABASE
    from cti_server.app import serve as run_server
    from cti_server.sim.demo import (
        demo_phone,
        demo_settings,
        demo_traffic,
        phone_lines,
        prepare_demo_data,
    )

    made_up = not os.environ.get("CTI_AMI__SECRET")
    if made_up:
        os.environ["CTI_AMI__SECRET"] = secrets.token_urlsafe(24)
    settings = demo_settings(read_settings(config_file))
    node = asterisk_instance(settings, "demo")
    try:
        settings = demo_phone(settings, node.digests_file)
        node.up()
    except (AsteriskError, SipDigestError, OSError) as exc:
        click.echo(f"cti demo: {exc}", err=True)
        sys.exit(1)

    async def _prepare() -> list[Any]:
        engine = crm_engine(settings)
        try:
            return await prepare_demo_data(engine, settings, customers)
        finally:
            await engine.dispose()

    accounts = run(_prepare)
    base = f"http://{settings.http.host}:{settings.http.port}"
    lines = [
        "",
        "The demo call center is up. Simulated agents answer; a customer calls every "
        f"~{every:g} s.",
        f"  desktop and wallboard: {base}/ui/   (sign in with an account below)",
        f"  status:   {base}/status        metrics: {base}/metrics",
        f"  API:      {base}/api/openapi.json",
        "  accounts (new passwords each start):",
        *(f"    {a.username:<11} {a.password}" for a in accounts),
        *phone_lines(settings, base),
        "Try:",
        f'  curl -s {base}/api/tokens -d \'{{"username":"supervisor","password":"..."}}\'',
        f"  curl -s -H 'Authorization: Bearer TOKEN' {base}/live",
    ]
    if made_up:
        lines.append(
            f"  export CTI_AMI__SECRET={os.environ['CTI_AMI__SECRET']}"
            "   # then: .venv/bin/cti call --agent 1001"
        )
    lines.append("Stop with Ctrl-C.\n")
    click.echo("\n".join(lines))
    try:
        _run_until_stopped(
            "demo",
            lambda: run_server(
                settings, background=lambda app: demo_traffic(app[DATABASE], settings, every)
            ),
        )
    finally:
        node.stop()
