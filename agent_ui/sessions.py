"""Signed-in browsers: server-side sessions with an idle timeout, revocable at any moment.

The cookie carries only a random id. The user, the role and the CSRF token stay on the server,
so a revoked or idle session stops working at once, for pages and for its websocket alike.
Sessions live in this process: a browser keeps talking to the process it signed in to.

A user disabled, or given another role, password or extension, loses their sessions: the CLI and
the REST API change the database, not this process, so the user's row is compared with what the
session was opened with (a fingerprint) on every page, every socket opened, and every few
seconds for the sockets already open (:meth:`SessionStore.recheck`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.api.http import role_rank
from crm_core.models import User

Clock = Callable[[], float]
RevokeListener = Callable[[str], None]


@dataclass
class UiSession:
    """One browser's sign-in: who, with which role and extension, and its CSRF token."""

    id: str
    user_id: int
    username: str
    display_name: str
    role: str
    extension: str | None
    csrf: str
    last_seen: float
    created: float = field(default=0.0)
    fingerprint: str = ""  # of the user's row as signed in: see :func:`fingerprint`

    def at_least(self, role: str) -> bool:
        return role_rank(self.role) >= role_rank(role)


def fingerprint(user: User) -> str:
    """What a session depends on: active, role, password and extension (the password hash is
    hashed again, so that the session holds nothing that could be checked offline)."""
    facts = f"{user.active}|{user.role}|{user.extension}|{user.password_hash}"
    return hashlib.sha256(facts.encode()).hexdigest()


class SessionStore:
    """Sessions by id; one idle for longer than ``idle_seconds`` is gone on its next look-up."""

    def __init__(self, idle_seconds: float, clock: Clock = time.monotonic) -> None:
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._sessions: dict[str, UiSession] = {}
        self._listeners: list[RevokeListener] = []

    def __len__(self) -> int:
        return len(self._sessions)

    def on_revoke(self, listener: RevokeListener) -> None:
        """Called with the session id whenever a session ends (sign-out, revoke, idle)."""
        self._listeners.append(listener)

    def create(self, user: User) -> UiSession:
        now = self._clock()
        session = UiSession(
            id=secrets.token_urlsafe(32),
            user_id=user.id,
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            extension=user.extension,
            csrf=secrets.token_urlsafe(32),
            last_seen=now,
            created=now,
            fingerprint=fingerprint(user),
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> UiSession | None:
        """The live session, without counting this look-up as activity."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if self._clock() - session.last_seen > self.idle_seconds:
            self.revoke(session_id)
            return None
        return session

    def touch(self, session: UiSession) -> None:
        """The user did something: the idle clock starts again."""
        session.last_seen = self._clock()

    def of_user(self, user_id: int) -> list[UiSession]:
        return [s for s in self._sessions.values() if s.user_id == user_id]

    def revoke(self, session_id: str) -> None:
        if self._sessions.pop(session_id, None) is None:
            return
        for listener in self._listeners:
            listener(session_id)

    def revoke_user(self, user_id: int) -> int:
        """End every session of a user (disabled, password changed); how many ended."""
        ids = [s.id for s in self._sessions.values() if s.user_id == user_id]
        for session_id in ids:
            self.revoke(session_id)
        return len(ids)

    async def still_valid(self, db: AsyncSession, session: UiSession) -> bool:
        """Whether the user is as they were at sign-in; else the session is revoked."""
        user = await db.get(User, session.user_id, populate_existing=True)
        if user is not None and fingerprint(user) == session.fingerprint:
            return True
        self.revoke(session.id)
        return False

    async def recheck(self, db: AsyncSession) -> int:
        """Revoke the sessions of users disabled or changed since they signed in; how many."""
        ids = {s.user_id for s in self._sessions.values()}
        if not ids:
            return 0
        rows = await db.scalars(select(User).where(User.id.in_(ids)))
        now = {user.id: fingerprint(user) for user in rows}
        stale = [s.id for s in self._sessions.values() if now.get(s.user_id) != s.fingerprint]
        for session_id in stale:
            self.revoke(session_id)
        return len(stale)

    def expire_idle(self) -> int:
        """End the sessions idle for too long; how many ended."""
        now = self._clock()
        ids = [s.id for s in self._sessions.values() if now - s.last_seen > self.idle_seconds]
        for session_id in ids:
            self.revoke(session_id)
        return len(ids)
