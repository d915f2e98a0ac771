"""People who sign in (agents, supervisors, managers, admins), their skills and API tokens.

Every creation and change of a user is audited (:class:`~crm_core.models.UserAudit`: who, when,
what). A change of role, password or extension, or a disable, signs the user out of every
browser at once (their ``ui_sessions`` rows go, so every server refuses the cookie) and revokes
their API tokens. Hashing a password costs tens of milliseconds of CPU by design, so it runs in
a small pool of its own (:func:`_hashing_pool`): a flood of sign-ins waits there for its turn
instead of stalling the event loop or taking every thread of the loop's default executor, which
the database driver, files and name lookups need.

API tokens expire (``lifetime``), can be revoked one by one, and remember when they were last
used (written at most once a minute, to spare the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import re
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import every_row
from crm_core.errors import Conflict, InvalidInput, NotFound
from crm_core.models import (
    ROLES,
    ApiToken,
    LoginFailures,
    Skill,
    Team,
    UiSessionRecord,
    User,
    UserAudit,
    UserSkill,
    utcnow,
)

_HASHER = PasswordHasher()
_EXTENSION = re.compile(r"[0-9]{2,10}")
MIN_PASSWORD = 8
HASHING_THREADS = 1  # one hash at a time (argon2 spreads it over the cores); the rest wait
HASHING_NICENESS = 10
TOKEN_USE_PRECISION = timedelta(minutes=1)  # last_used_at is written at most this often
T = TypeVar("T")
PASSWORD_CHANGED = "changed"  # noqa: S105 - what the audit says of a password, never the hash


@dataclass(frozen=True)
class Actor:
    """Who makes a change, as the audit names them: ``api:alice``, ``cli:root``, ``system``."""

    name: str
    user_id: int | None = None


SYSTEM = Actor("system")


def api_actor(user: User) -> Actor:
    """An admin acting over the REST API, as the audit names them."""
    return Actor(f"api:{user.username}", user.id)


@dataclass(frozen=True)
class UserChanges:
    """What to change of a user; None leaves a field as it is (an extension of "" removes it)."""

    role: str | None = None
    extension: str | None = None
    display_name: str | None = None
    password: str | None = None
    active: bool | None = None


@functools.cache
def _dummy_hash() -> str:
    """Equal work for unknown users (no user probing); made on first use, not on import."""
    return _HASHER.hash("not a password")


@functools.cache
def _hashing_pool() -> ThreadPoolExecutor:
    """Argon2's own thread, made on first use: a flood of sign-ins waits in its queue."""
    return ThreadPoolExecutor(
        max_workers=HASHING_THREADS, thread_name_prefix="argon2", initializer=_yield_the_cpu
    )


def _yield_the_cpu() -> None:
    """Hashing is worth less than the event loop: the pool's thread (and the lanes argon2 starts
    from it, which inherit it) runs at a lower priority, so the loop gets a core when it needs
    one however many sign-ins wait. Linux sets the priority per thread; elsewhere it stays."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


async def in_hashing_pool(work: Callable[..., T], *args: Any) -> T:
    """Argon2 work (passwords here, IVR PINs in :mod:`crm_core.pins`) off the event loop, in the
    one bounded, low-priority pool: a flood of either never takes the loop's default threads."""
    return await asyncio.get_running_loop().run_in_executor(_hashing_pool(), work, *args)


async def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password: at least {MIN_PASSWORD} characters")
    return await in_hashing_pool(_HASHER.hash, password)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role: must be one of {', '.join(ROLES)}")


def _check_extension(extension: str) -> None:
    if not (extension.isascii() and _EXTENSION.fullmatch(extension)):
        raise InvalidInput("extension: 2 to 10 digits")


def _check_display_name(name: str) -> None:
    if not name.strip() or len(name) > 120 or not name.isprintable():
        raise InvalidInput("display name: 1 to 120 printable characters")


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    role: str,
    display_name: str | None = "",
    team: str | None = None,
    extension: str | None = None,
    languages: list[str] | None = None,
    by: Actor = SYSTEM,
) -> User:
    _check_role(role)
    if extension is not None:
        _check_extension(extension)
    if display_name:
        _check_display_name(display_name)
    if await session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} exists already")
    password_hash = await hash_password(password)
    team_id = None
    if team is not None:
        team_row = await session.scalar(select(Team).where(Team.name == team))
        if team_row is None:
            team_row = Team(name=team)
            session.add(team_row)
            await session.flush()
        team_id = team_row.id
    user = User(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=password_hash,
        team_id=team_id,
        extension=extension,
        languages=languages or [],
        skills=[],
    )
    session.add(user)
    await session.flush()
    facts = {"role": role, "extension": extension, "display_name": user.display_name}
    _audit(session, by, user, "created", facts)
    await session.flush()
    return user


async def authenticate(session: AsyncSession, username: str, password: str) -> User | None:
    """The active user with this password, else None (same cost either way)."""
    user = await session.scalar(select(User).where(User.username == username, User.active))
    matches = await in_hashing_pool(_verify, user.password_hash if user else None, password)
    return user if matches else None


def _verify(stored: str | None, password: str) -> bool:
    """In the hashing pool: argon2 costs tens of milliseconds (the dummy hash too, made once)."""
    try:
        _HASHER.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None


async def get_user(session: AsyncSession, username: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    return user


async def change_user(
    session: AsyncSession, username: str, changes: UserChanges, *, by: Actor = SYSTEM
) -> User:
    """Apply ``changes``, audit what really changed, and sign the user out where it matters.

    Preconditions: the user exists; a role is one of :data:`ROLES`; an extension is 2 to 10
    digits (or "" for none); a password has at least 8 characters; the last active admin is
    neither demoted nor disabled (nobody could administer users any more)."""
    user = await get_user(session, username)
    diff = _diff(user, changes)
    if user.role == "admin" and user.active and ("role" in diff or changes.active is False):
        await _keep_an_admin(session, user)
    if changes.password is not None:
        user.password_hash = await hash_password(changes.password)
        diff["password"] = PASSWORD_CHANGED
    if not diff:
        return user
    for name, change in diff.items():
        if name != "password":
            setattr(user, name, change["to"])
    if diff.keys() & {"role", "extension", "password"} or not user.active:
        # a token carries the user's rights as they were: it goes with the change
        await sign_out(session, user.id, tokens=True)
    if "password" in diff:  # an admin's new password lifts a lockout of the account
        await session.execute(delete(LoginFailures).where(LoginFailures.key == account_key(user)))
    action = "changed"
    if "active" in diff:
        action = "enabled" if user.active else "disabled"
    _audit(session, by, user, action, diff)
    await session.flush()
    return user


def _diff(user: User, changes: UserChanges) -> dict[str, Any]:
    """The fields that really change, checked, each as ``{"from": old, "to": new}``."""
    wanted: dict[str, Any] = {}
    if changes.role is not None:
        _check_role(changes.role)
        wanted["role"] = changes.role
    if changes.extension is not None:
        if changes.extension:
            _check_extension(changes.extension)
        wanted["extension"] = changes.extension or None
    if changes.display_name is not None:
        _check_display_name(changes.display_name)
        wanted["display_name"] = changes.display_name
    if changes.active is not None:
        wanted["active"] = changes.active
    return {
        name: {"from": getattr(user, name), "to": value}
        for name, value in wanted.items()
        if getattr(user, name) != value
    }


async def _keep_an_admin(session: AsyncSession, admin: User) -> None:
    others = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == "admin", User.active, User.id != admin.id)
    )
    if not others:
        raise Conflict(f"{admin.username!r} is the last active admin: make another admin first")


async def sign_out(session: AsyncSession, user_id: int, *, tokens: bool = False) -> None:
    """End the user's browser sessions on every server (and revoke their API tokens)."""
    await session.execute(delete(UiSessionRecord).where(UiSessionRecord.user_id == user_id))
    if tokens:
        await session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.revoked.is_(False))
            .values(revoked=True)
        )


def _audit(session: AsyncSession, by: Actor, user: User, action: str, changes: Any) -> None:
    session.add(
        UserAudit(
            actor=by.name[:120],
            actor_id=by.user_id,
            user_id=user.id,
            action=action,
            changes=changes,
            at=utcnow(),
        )
    )


async def set_password(
    session: AsyncSession, username: str, password: str, *, by: Actor = SYSTEM
) -> User:
    return await change_user(session, username, UserChanges(password=password), by=by)


async def list_users(session: AsyncSession) -> list[User]:
    """Everyone, disabled users included, by username."""
    return list(await session.scalars(select(User).order_by(User.username)))


@dataclass(frozen=True)
class AuditEntry:
    """One audited change, with the names of who made it and of whom it changed."""

    id: int
    at: datetime
    actor: str
    username: str
    action: str
    changes: dict[str, Any]


async def names_by_extension(session: AsyncSession) -> dict[str, str]:
    """Each active user's name at their extension, for pages that show phones as people."""
    rows = await session.execute(
        select(User.extension, User.display_name).where(
            User.active.is_(True), User.extension.is_not(None)
        )
    )
    return {str(extension): name for extension, name in rows.all()}


async def user_audit(
    session: AsyncSession, username: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    """The newest changes first, of one user or of everyone."""
    query = (
        select(UserAudit, User.username)
        .join(User, User.id == UserAudit.user_id)
        .order_by(UserAudit.at.desc(), UserAudit.id.desc())
        .limit(limit)
    )
    if username is not None:
        query = query.where(User.id == (await get_user(session, username)).id)
    rows = await session.execute(query)
    return [
        AuditEntry(audit.id, audit.at, audit.actor, name, audit.action, dict(audit.changes))
        for audit, name in rows
    ]


def account_key(user: User | str) -> str:
    """The key of an account's failed sign-ins (:class:`~crm_core.models.LoginFailures`)."""
    return f"user:{user if isinstance(user, str) else user.username}"[:80]


def token_digest(token: str) -> str:
    """What is stored of a token. Ours are ASCII: any other text digests to no stored value."""
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()


DEFAULT_TOKEN_LIFETIME = timedelta(days=30)


async def issue_token(
    session: AsyncSession, user: User, lifetime: timedelta = DEFAULT_TOKEN_LIFETIME
) -> str:
    """A new bearer token; only its hash is stored, so it is shown once."""
    return (await issue_token_row(session, user, lifetime))[0]


async def issue_token_row(
    session: AsyncSession, user: User, lifetime: timedelta = DEFAULT_TOKEN_LIFETIME
) -> tuple[str, ApiToken]:
    """A new bearer token and its row (its id and expiry, to tell the caller)."""
    if lifetime <= timedelta(0):
        raise InvalidInput("token lifetime: must be positive")
    await session.execute(  # the user's dead tokens go: nothing can use or show them any more
        delete(ApiToken).where(
            ApiToken.user_id == user.id,
            ApiToken.revoked
            | (ApiToken.expires_at.is_not(None) & (ApiToken.expires_at <= utcnow())),
        )
    )
    token = secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=token_digest(token), expires_at=utcnow() + lifetime)
    session.add(row)
    await session.flush()
    return token, row


async def user_for_token(session: AsyncSession, token: str) -> User | None:
    """The active user of a live token (not revoked, not expired), else None.

    Notes the use: ``last_used_at`` is written (and committed) when it is older than
    :data:`TOKEN_USE_PRECISION`, so a busy client costs a write a minute, not one a request."""
    if not token.isascii():
        return None
    row = await session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == token_digest(token), ApiToken.revoked.is_(False)
        )
    )
    now = utcnow()
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        return None
    user_id = row.user_id
    if row.last_used_at is None or row.last_used_at <= now - TOKEN_USE_PRECISION:
        await session.execute(
            update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)
        )
        await session.commit()  # before the user is read: nothing of theirs expires with it
    user = await session.get(User, user_id)
    return user if user is not None and user.active else None


async def live_tokens(session: AsyncSession, user_id: int) -> list[ApiToken]:
    """A user's tokens that still open the API (neither revoked nor expired), newest first."""
    return list(
        await session.scalars(
            select(ApiToken)
            .where(
                ApiToken.user_id == user_id,
                ApiToken.revoked.is_(False),
                (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > utcnow()),
            )
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
    )


async def revoke_token(session: AsyncSession, token_id: int, *, by: User) -> ApiToken:
    """Revoke one token: the caller's own, or anyone's for an admin.

    Someone else's token is "does not exist" to a non-admin, as an unknown id is (no probing
    of ids); a revoked or expired token too, since it no longer exists for any use."""
    row = await session.get(ApiToken, token_id)
    now = utcnow()
    if (
        row is None
        or row.revoked
        or (row.expires_at is not None and row.expires_at <= now)
        or (row.user_id != by.id and not every_row(by.role, "session.own"))
    ):
        raise NotFound(f"token {token_id} does not exist")
    row.revoked = True
    await session.flush()
    return row


async def set_skill(session: AsyncSession, user_id: int, skill_name: str, level: int) -> UserSkill:
    if not 1 <= level <= 10:
        raise InvalidInput("level: from 1 to 10")
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    skill = await session.scalar(select(Skill).where(Skill.name == skill_name))
    if skill is None:
        skill = Skill(name=skill_name)
        session.add(skill)
        await session.flush()
    for existing in user.skills:
        if existing.skill_id == skill.id:
            existing.level = level
            await session.flush()
            return existing
    link = UserSkill(user_id=user.id, skill_id=skill.id, level=level)
    user.skills.append(link)
    await session.flush()
    return link
