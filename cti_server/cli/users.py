"""``cti crm user``: create, change, disable, re-enable and list the people who sign in, and read
the audit of those changes.

``cti crm user NAME --role R`` creates a user, as it always has (scripts and tests rely on it);
changing one is explicit, ``cti crm user set NAME ...``, so that a mistyped name never creates a
second account and an existing one is never changed by a command meant to create. Passwords come
from an environment variable or a prompt, never from the command line (which ``ps`` shows).
Every change is audited as ``cli:<the system user>`` and signs the user out where it matters
(:func:`crm_core.people.change_user`).
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from crm_core.errors import Conflict, CrmError
from crm_core.models import ROLES
from crm_core.people import (
    Actor,
    AuditEntry,
    UserChanges,
    change_user,
    create_user,
    list_users,
    user_audit,
)

T = TypeVar("T")
EngineFor = Callable[[Path | None], AsyncEngine]  # the settings file -> the CRM's engine
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
DEFAULT_PASSWORD_ENV = "CTI_NEW_PASSWORD"  # noqa: S105 - the variable's name, not a password


class _CreateByDefault(click.Group):
    """``cti crm user NAME --role R`` (no subcommand) is ``cti crm user create NAME --role R``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["create", *args]
        return super().parse_args(ctx, args)


def _actor() -> Actor:
    try:
        who = getpass.getuser()
    except (OSError, KeyError):  # no login name (a container's bare uid)
        who = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return Actor(f"cli:{who}")


def _password(env: str) -> str:
    return os.environ.get(env) or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )


@dataclass(frozen=True)
class _Crm:
    """The CRM database as the commands reach it."""

    engine_for: EngineFor

    def run(
        self, command: str, config_file: Path | None, work: Callable[[AsyncSession], Awaitable[T]]
    ) -> T:
        """``work`` in one transaction on the migrated CRM; a domain error is one line, exit 1."""
        from crm_core.migrate import upgrade

        async def _main() -> T:
            engine = self.engine_for(config_file)
            try:
                await upgrade(engine)
                async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
                    return await work(session)
            finally:
                await engine.dispose()

        try:
            return asyncio.run(_main())
        except CrmError as exc:
            click.echo(f"cti crm user {command}: {exc}", err=True)
            sys.exit(1)


def register_user_commands(
    crm: click.Group, config_option: Decorator, engine_for: EngineFor
) -> None:
    """Add ``user`` and its subcommands to the ``crm`` group (the CLI's settings and engine
    given, so that this module needs nothing of ``cti_server.cli.main``)."""

    crm_db = _Crm(engine_for)

    @crm.group("user", cls=_CreateByDefault)
    def user() -> None:
        """The people who sign in: `cti crm user NAME --role R` creates one (as `create` does);
        set, disable, enable, list and audit look after them. A username that is also a
        command's name is created with `cti crm user create NAME`."""

    user.command_class = crm.command_class  # the options every command of the CLI takes

    password_env = click.option(
        "--password-env",
        default=DEFAULT_PASSWORD_ENV,
        show_default=True,
        help="Environment variable holding the password (else it is asked for).",
    )

    @user.command("create")
    @config_option
    @click.argument("username")
    @click.option("--role", type=click.Choice(ROLES), required=True)
    @click.option("--name", "display_name", default="", help="Display name.")
    @click.option("--extension", default=None, help="The agent's phone extension.")
    @password_env
    def create(
        config_file: Path | None,
        username: str,
        role: str,
        display_name: str,
        extension: str | None,
        password_env: str,
    ) -> None:
        """Create a user who can sign in."""
        password = _password(password_env)

        async def _create(session: AsyncSession) -> int:
            try:
                made = await create_user(
                    session,
                    username=username,
                    password=password,
                    role=role,
                    display_name=display_name,
                    extension=extension,
                    by=_actor(),
                )
            except Conflict as exc:
                raise Conflict(f"{exc} (to change it: cti crm user set {username} ...)") from exc
            return made.id

        user_id = crm_db.run("create", config_file, _create)
        click.echo(f"user {username!r} ({role}) created with id {user_id}")

    @user.command("set")
    @config_option
    @click.argument("username")
    @click.option("--role", type=click.Choice(ROLES), default=None, help="A new role.")
    @click.option("--extension", default=None, help="A new phone extension.")
    @click.option("--no-extension", is_flag=True, help="Take the phone extension away.")
    @click.option("--name", "display_name", default=None, help="A new display name.")
    @click.option(
        "--password", "new_password", is_flag=True, help="Set a new password (see --password-env)."
    )
    @password_env
    def set_(
        config_file: Path | None,
        username: str,
        role: str | None,
        extension: str | None,
        no_extension: bool,
        display_name: str | None,
        new_password: bool,
        password_env: str,
    ) -> None:
        """Change a user's role, extension, display name or password; signs them out."""
        if extension is not None and no_extension:
            raise click.UsageError("--extension and --no-extension exclude each other")
        changes = UserChanges(
            role=role,
            extension="" if no_extension else extension,
            display_name=display_name,
            password=_password(password_env) if new_password else None,
        )
        if changes == UserChanges():
            raise click.UsageError(
                "say what to change: --role, --extension, --no-extension, --name or --password"
            )
        _change(crm_db, "set", config_file, username, changes)

    @user.command("disable")
    @config_option
    @click.argument("username")
    def disable(config_file: Path | None, username: str) -> None:
        """Stop a user signing in; signs them out everywhere and revokes their API tokens."""
        _change(crm_db, "disable", config_file, username, UserChanges(active=False))

    @user.command("enable")
    @config_option
    @click.argument("username")
    def enable(config_file: Path | None, username: str) -> None:
        """Let a disabled user sign in again."""
        _change(crm_db, "enable", config_file, username, UserChanges(active=True))

    @user.command("list")
    @config_option
    def list_(config_file: Path | None) -> None:
        """Everyone who can sign in, and who is disabled."""

        async def _list(session: AsyncSession) -> list[tuple[str, ...]]:
            return [
                (
                    u.username,
                    u.role,
                    u.extension or "-",
                    "active" if u.active else "disabled",
                    u.display_name,
                )
                for u in await list_users(session)
            ]

        rows = crm_db.run("list", config_file, _list)
        _table(("USERNAME", "ROLE", "EXTENSION", "STATUS", "NAME"), rows)

    @user.command("audit")
    @config_option
    @click.argument("username", required=False)
    @click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
    def audit(config_file: Path | None, username: str | None, limit: int) -> None:
        """Who created or changed users, when, and what changed (newest first)."""

        async def _audit(session: AsyncSession) -> list[AuditEntry]:
            return await user_audit(session, username, limit)

        entries = crm_db.run("audit", config_file, _audit)
        _table(
            ("WHEN (UTC)", "BY", "USER", "ACTION", "WHAT"),
            [
                (
                    e.at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.actor,
                    e.username,
                    e.action,
                    describe(e.changes),
                )
                for e in entries
            ],
        )


def _change(
    crm_db: _Crm, command: str, config_file: Path | None, username: str, changes: UserChanges
) -> None:
    async def _apply(session: AsyncSession) -> str:
        changed = await change_user(session, username, changes, by=_actor())
        return f"{changed.role}, {'active' if changed.active else 'disabled'}"

    state = crm_db.run(command, config_file, _apply)
    click.echo(f"user {username!r} ({state})")


def describe(changes: dict[str, Any]) -> str:
    """``role: agent -> admin, password: changed`` (or ``role=agent ...`` for a creation)."""
    parts = []
    for name, change in changes.items():
        if isinstance(change, dict):
            parts.append(f"{name}: {change.get('from')} -> {change.get('to')}")
        elif name == "password":
            parts.append(f"{name}: {change}")
        else:
            parts.append(f"{name}={change}")
    return ", ".join(parts)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
