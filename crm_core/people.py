"""People who sign in (agents, supervisors, managers, admins), their skills and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.errors import Conflict, InvalidInput, NotFound
from crm_core.models import ROLES, ApiToken, Skill, Team, User, UserSkill, utcnow

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a password")  # equal work for unknown users (no user probing)


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise InvalidInput("password: at least 8 characters")
    return _HASHER.hash(password)


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
    team: str | None = None,
    extension: str | None = None,
    languages: list[str] | None = None,
) -> User:
    if role not in ROLES:
        raise InvalidInput(f"role: must be one of {', '.join(ROLES)}")
    if await session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} exists already")
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
        password_hash=hash_password(password),
        team_id=team_id,
        extension=extension,
        languages=languages or [],
        skills=[],
    )
    session.add(user)
    await session.flush()
    return user


async def authenticate(session: AsyncSession, username: str, password: str) -> User | None:
    """The active user with this password, else None (same cost either way)."""
    user = await session.scalar(select(User).where(User.username == username, User.active))
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


async def set_password(session: AsyncSession, username: str, password: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    user.password_hash = hash_password(password)
    await session.flush()
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def issue_token(session: AsyncSession, user: User, lifetime: timedelta | None = None) -> str:
    """A new bearer token; only its hash is stored, so it is shown once."""
    token = secrets.token_urlsafe(32)
    expires: datetime | None = utcnow() + lifetime if lifetime else None
    session.add(ApiToken(user_id=user.id, token_hash=_digest(token), expires_at=expires))
    await session.flush()
    return token


async def user_for_token(session: AsyncSession, token: str) -> User | None:
    row = await session.scalar(
        select(ApiToken).where(ApiToken.token_hash == _digest(token), ApiToken.revoked.is_(False))
    )
    if row is None or (row.expires_at is not None and row.expires_at <= utcnow()):
        return None
    user = await session.get(User, row.user_id)
    return user if user is not None and user.active else None


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
