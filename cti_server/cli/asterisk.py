"""``cti dialplan`` and ``cti asterisk``: the Asterisk configuration and the local Asterisk."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cti_server.asterisk.local import AsteriskError
from cti_server.asterisk.render import RenderError, render_config, write_config
from cti_server.asterisk.sip_digests import SipDigestError, read_digests
from cti_server.cli.common import (
    Group,
    asterisk_instance,
    config_option,
    no_secret_needed,
    read_settings,
)


@click.group(cls=Group)
def dialplan() -> None:
    """The Asterisk configuration rendered from the settings."""


@dialplan.command("render")
@config_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def dialplan_render(config_file: Path | None, out: Path) -> None:
    """Write manager.conf, extensions.conf, queues.conf, pjsip.conf, ... into OUT."""
    settings = read_settings(config_file)
    digests = settings.dialplan.sip_digests
    try:
        files = render_config(settings, digests=read_digests(digests) if digests else None)
    except (RenderError, SipDigestError) as exc:
        click.echo(f"cti dialplan render: {exc}", err=True)
        sys.exit(2)
    for path in write_config(files, out):
        click.echo(str(path))


@click.group(cls=Group)
def asterisk() -> None:
    """The local development Asterisk (Debian sid in a cached chroot)."""


@asterisk.command("up")
@config_option
@click.option("--instance", default=None, help="Instance name (default: settings).")
def asterisk_up(config_file: Path | None, instance: str | None) -> None:
    """Provision the chroot if needed, install the configuration, start, wait until ready."""
    settings = read_settings(config_file)
    node = asterisk_instance(settings, instance)
    try:
        node.up()
    except AsteriskError as exc:
        click.echo(f"cti asterisk up: {exc}", err=True)
        sys.exit(1)
    click.echo(f"Asterisk instance {node.name!r} ready (AMI 127.0.0.1:{settings.ami.port})")


@asterisk.command("provision")
def asterisk_provision() -> None:
    """Build the Debian sid chroot with Asterisk, unless a complete one is cached, and the
    instance's self-signed certificate for browser phones, unless the settings name one."""
    settings = read_settings(None, **no_secret_needed())
    node = asterisk_instance(settings, None)
    try:
        node.chroot.provision()
        certificate = node.ensure_certificate()
    except AsteriskError as exc:
        click.echo(f"cti asterisk provision: {exc}", err=True)
        sys.exit(1)
    click.echo(f"Asterisk chroot ready at {node.chroot.root}")
    if certificate:
        click.echo(f"WSS certificate of instance {node.name!r}: {certificate[0]} (in the chroot)")


@asterisk.command("down")
@config_option
@click.option("--instance", default=None)
def asterisk_down(config_file: Path | None, instance: str | None) -> None:
    """Stop the instance and unmount what was mounted for it."""
    node = asterisk_instance(read_settings(config_file, **no_secret_needed()), instance)
    node.stop()
    click.echo(f"Asterisk instance {node.name!r} stopped")


@asterisk.command("status")
@config_option
@click.option("--instance", default=None)
def asterisk_status(config_file: Path | None, instance: str | None) -> None:
    """Say whether the chroot is cached and the instance is running; exit 1 if not running."""
    node = asterisk_instance(read_settings(config_file, **no_secret_needed()), instance)
    click.echo(f"chroot: {node.chroot.root} ({'complete' if node.chroot.complete else 'missing'})")
    pid = node.pid()
    click.echo(f"instance {node.name!r}: {f'running, pid {pid}' if pid else 'stopped'}")
    sys.exit(0 if pid else 1)
