"""``cti agent``: each agent's own SIP password, made and shown once, stored only as its hash."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cti_server.asterisk.local import AsteriskError
from cti_server.asterisk.sip_digests import SipDigestError, rotate
from cti_server.cli.common import (
    Group,
    asterisk_instance,
    config_option,
    read_settings,
)


@click.group(cls=Group)
def agent() -> None:
    """The agents' phones."""


@agent.group("secret", cls=Group)
def secret() -> None:
    """Each agent's own SIP password (instead of the shared [dialplan] sip_secret)."""


@secret.command("rotate")
@config_option
@click.option("--instance", default=None, help="Local Asterisk instance (default: settings).")
@click.argument("extension")
def secret_rotate(config_file: Path | None, instance: str | None, extension: str) -> None:
    """Give EXTENSION a new SIP password and print it once; the old one stops working.

    Only the password's digest hash is kept ([dialplan] sip_digests, readable by its owner
    only). A running local Asterisk reloads PJSIP at once, without dropping calls.
    """
    settings = read_settings(config_file)  # a running Asterisk gets its whole configuration again
    if extension not in {a.extension for a in settings.dialplan.agents}:
        click.echo(f"cti agent secret rotate: {extension} is not in [dialplan] agents", err=True)
        sys.exit(2)
    node = asterisk_instance(settings, instance)
    try:
        password = rotate(node.digests_file, extension)
    except (SipDigestError, OSError) as exc:
        click.echo(f"cti agent secret rotate: {exc}", err=True)
        sys.exit(1)
    click.echo(f"SIP password of {extension} (shown this once): {password}")
    if node.running():
        try:
            node.reload_sip()
        except AsteriskError as exc:
            click.echo(f"cti agent secret rotate: stored, but Asterisk did not reload: {exc}")
            sys.exit(1)
        click.echo(f"Asterisk instance {node.name!r} reloaded PJSIP: the new password works now")
    elif settings.dialplan.sip_digests is not None:
        click.echo(
            "it takes effect once the configuration is rendered again (`cti dialplan render`) "
            "and Asterisk reloads PJSIP (`module reload res_pjsip.so`)"
        )
    else:
        click.echo("it takes effect when Asterisk next starts (`cti asterisk up`)")
