"""What every ``cti`` command shares: the settings option, logging flags, running a coroutine.

The logging flags (``-v``, ``--log-format``) are taken before or after a command's name
(`cti serve -v` is `cti -v serve`): :class:`Command` and :class:`Group` add them everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncEngine

from cti_server.asterisk.local import AsteriskChroot, AsteriskInstance
from cti_server.config import ConfigError, LoggingSettings, Settings, load_settings
from cti_server.health.logs import LogFormat, configure_logging

T = TypeVar("T")

config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings file (default: $CTI_CONFIG_FILE; the environment overrides it).",
)


def read_settings(config_file: Path | None, **overrides: Any) -> Settings:
    """The settings, or exit 2 with the message that names the key."""
    try:
        loaded = load_settings(config_file, **overrides)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    _logging_choice().settings = loaded.logging
    apply_logging()
    return loaded


def no_secret_needed() -> dict[str, Any]:
    """For commands that never talk to AMI: let them run without the secret."""
    return {} if os.environ.get("CTI_AMI__SECRET") else {"ami": {"secret": "unused"}}


def crm_settings(config_file: Path | None) -> Settings:
    """CRM commands never talk to AMI: they run without its secret."""
    return read_settings(config_file, **no_secret_needed())


def crm_engine(settings: Settings) -> AsyncEngine:
    from crm_core.database import make_engine

    password = settings.database.password
    return make_engine(settings.database.url, password.get_secret_value() if password else None)


def asterisk_instance(settings: Settings, name: str | None) -> AsteriskInstance:
    """The local Asterisk instance ``name`` (default: the settings')."""
    chroot = AsteriskChroot(settings.asterisk.chroot)
    return AsteriskInstance(chroot, name or settings.asterisk.instance, settings)


SQLITE_THREADS_WAIT = 5.0  # seconds at most for SQLite connections' threads to finish


def run(factory: Callable[[], Awaitable[T]]) -> T:
    async def _main() -> T:
        try:
            return await factory()
        finally:
            await _sqlite_threads_finished(SQLITE_THREADS_WAIT)

    return asyncio.run(_main())


async def _sqlite_threads_finished(within: float) -> None:
    """Keep the loop open until aiosqlite's connection threads have ended (within a bound).

    A connection that fails to open (a database path under a file, say) queues its own close on
    its thread and does not wait for it; if the command then exits at once, the loop is closed
    before that thread hands back its result, and the thread dies with "Event loop is closed"
    printed after the command's own one-line error. Seen on a loaded machine, where the thread is
    slow to run."""
    threads = [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]
    if threads:
        await asyncio.to_thread(_join, threads, time.monotonic() + within)


def _join(threads: list[threading.Thread], deadline: float) -> None:
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


@dataclass
class _LoggingChoice:
    """The flags seen so far (before or after the command name) and the settings' [logging]."""

    verbose: bool = False
    log_format: LogFormat | None = None
    settings: LoggingSettings | None = None


def _logging_choice() -> _LoggingChoice:
    meta = click.get_current_context().meta  # shared by the group's and the command's context
    choice: _LoggingChoice = meta.setdefault("cti.logging", _LoggingChoice())
    return choice


def apply_logging() -> None:
    """Flags win over the settings file and the environment, which win over the defaults."""
    choice = _logging_choice()
    configured = choice.settings or LoggingSettings()
    level = logging.DEBUG if choice.verbose else logging.getLevelName(configured.level.upper())
    configure_logging(level, choice.log_format or configured.format)


def _verbose_flag(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        _logging_choice().verbose = True
        apply_logging()


def _log_format_flag(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        _logging_choice().log_format = "json" if value == "json" else "text"
        apply_logging()


def _logging_options() -> list[click.Parameter]:
    return [
        click.Option(
            ["-v", "--verbose"],
            is_flag=True,
            expose_value=False,
            callback=_verbose_flag,
            help="Debug logging.",
        ),
        click.Option(
            ["--log-format"],
            type=click.Choice(["text", "json"]),
            expose_value=False,
            callback=_log_format_flag,
            help="Log lines as text or one JSON object each (default: [logging] format).",
        ),
    ]


class Command(click.Command):
    """A command that takes the logging options too: `cti serve -v` is `cti -v serve`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_logging_options())


class Group(click.Group):
    """A group whose commands and subgroups all take the logging options."""

    command_class = Command
    group_class = type  # subgroups are Group too

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_logging_options())
