"""Signed-in browsers: server-side sessions with an idle timeout, revocable at any moment.

The cookie carries only a random id. The user, the role and the CSRF token stay on the server,
so a revoked or idle session stops working at once, for pages and for its websocket alike.

Sessions are kept in the CRM database (``ui_sessions``), which every server shares already: a
restart signs nobody out, and a browser sent to another server (a failover, a load balancer
without stickiness) is still signed in there. Redis is not needed for this. Only the SHA-256 of
the cookie's id is stored. Each process keeps the sessions it has seen in memory, so that a
websocket's messages need no query; :meth:`SessionStore.recheck`, run every few seconds, brings
that cache and the database together: activity is written, sessions revoked or signed out on
another server are ended here (their sockets close), expired rows are purged.

A user disabled, or given another role, password or extension, loses their sessions: the CLI and
the REST API delete the user's rows (:func:`crm_core.people.sign_out`), and the user's row is
also compared with what the session was opened with (a fingerprint) on every page, every socket
opened, and every recheck, so a change made straight in the database is noticed too.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.api.http import role_rank
from crm_core.models import UiSessionRecord, User

Clock = Callable[[], float]  # seconds since the epoch: shared by every server, unlike monotonic
RevokeListener = Callable[[str], None]
PURGE_EVERY = 60.0  # seconds between deletions of expired rows, per process


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
    return _fingerprint(user.active, user.role, user.extension, user.password_hash)


def _fingerprint(active: bool, role: str, extension: str | None, password_hash: str) -> str:
    facts = f"{active}|{role}|{extension}|{password_hash}"
    return hashlib.sha256(facts.encode()).hexdigest()


# what a recheck reads of each user: their fingerprint's facts, not the whole row as an object
# (1,000 users made into objects every few seconds held up the event loop, and the pops, ~20 ms)
_FINGERPRINTED = (User.active, User.role, User.extension, User.password_hash)


def id_hash(session_id: str) -> str:
    """What the database keeps of a cookie's id: a copy of the table opens no session."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class SessionStore:
    """Sessions by id, kept in the database and cached here; one idle for longer than
    ``idle_seconds`` (on any server) is gone on its next look-up."""

    def __init__(self, idle_seconds: float, clock: Clock = time.time) -> None:
        self.idle_seconds = idle_seconds
        self.clock = clock
        self._sessions: dict[str, UiSession] = {}
        self._saved: dict[str, float] = {}  # session id -> the last_seen the database has
        self._listeners: list[RevokeListener] = []
        self._purged = 0.0

    def __len__(self) -> int:
        """Sessions known to this process (not every server's)."""
        return len(self._sessions)

    def on_revoke(self, listener: RevokeListener) -> None:
        """Called with the session id whenever a session ends here (sign-out, revoke, idle,
        or ended on another server and noticed by :meth:`recheck`)."""
        self._listeners.append(listener)

    async def create(self, db: AsyncSession, user: User) -> UiSession:
        now = self.clock()
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
        db.add(
            UiSessionRecord(
                id_hash=id_hash(session.id),
                user_id=user.id,
                fingerprint=session.fingerprint,
                csrf=session.csrf,
                created_at=_at(now),
                last_seen_at=_at(now),
                expires_at=_at(now + self.idle_seconds),
            )
        )
        await db.commit()
        self._keep(session, now)
        return session

    async def open(self, db: AsyncSession, session_id: str | None) -> UiSession | None:
        """The live session of a cookie, from the database (so one opened on another server,
        or before a restart, works); None, and the row deleted, when it is idle for too long
        or its user was disabled or changed since. Not counted as activity."""
        if not session_id:
            return None
        row = (
            await db.execute(
                select(UiSessionRecord, User)
                .join(User, User.id == UiSessionRecord.user_id)
                .where(UiSessionRecord.id_hash == id_hash(session_id))
            )
        ).first()
        if row is None:
            self._drop(session_id)
            return None
        record, user = row
        cached = self._sessions.get(session_id)
        last_seen = record.last_seen_at.timestamp()
        if cached is not None:
            last_seen = max(last_seen, cached.last_seen)
        if self.clock() - last_seen > self.idle_seconds or fingerprint(user) != record.fingerprint:
            await self._delete(db, [session_id])
            return None
        if cached is None:
            cached = UiSession(
                id=session_id,
                user_id=user.id,
                username=user.username,
                display_name=user.display_name,
                role=user.role,
                extension=user.extension,
                csrf=record.csrf,
                last_seen=last_seen,
                created=record.created_at.timestamp(),
                fingerprint=record.fingerprint,
            )
            self._keep(cached, record.last_seen_at.timestamp())
        cached.last_seen = last_seen
        return cached

    def get(self, session_id: str | None) -> UiSession | None:
        """A session this process knows and that is not idle (no query: a websocket's messages
        use it); the database's word comes with :meth:`open` and :meth:`recheck`."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if self.clock() - session.last_seen > self.idle_seconds:
            self._drop(session_id)
            return None
        return session

    def touch(self, session: UiSession) -> None:
        """The user did something: the idle clock starts again (written at the next recheck)."""
        session.last_seen = self.clock()

    def of_user(self, user_id: int) -> list[UiSession]:
        return [s for s in self._sessions.values() if s.user_id == user_id]

    async def revoke(self, db: AsyncSession, session_id: str) -> None:
        """End a session on every server (sign-out)."""
        await self._delete(db, [session_id])

    async def revoke_user(self, db: AsyncSession, user_id: int) -> int:
        """End every session of a user on every server; how many ended."""
        result = await db.execute(delete(UiSessionRecord).where(UiSessionRecord.user_id == user_id))
        await db.commit()
        for session in self.of_user(user_id):
            self._drop(session.id)
        return int(getattr(result, "rowcount", 0) or 0)

    async def recheck(self, db: AsyncSession) -> int:
        """Bring this process and the database together; how many sessions ended here.

        Writes the activity seen here, takes the activity seen on other servers, ends the
        sessions deleted elsewhere (sign-out, revoke, a user changed by the CLI or the API) or
        whose user no longer matches their fingerprint, and purges expired rows now and then."""
        now = self.clock()
        await self._save_activity(db)
        ended = 0
        if self._sessions:
            by_hash = {id_hash(s.id): s for s in self._sessions.values()}
            rows = await db.execute(
                select(UiSessionRecord.id_hash, UiSessionRecord.last_seen_at, *_FINGERPRINTED)
                .join(User, User.id == UiSessionRecord.user_id)
                .where(UiSessionRecord.id_hash.in_(by_hash))
            )
            alive: set[str] = set()
            stale: list[str] = []
            for hashed, seen, active, role, extension, password_hash in rows:
                session = by_hash[hashed]
                if _fingerprint(active, role, extension, password_hash) != session.fingerprint:
                    stale.append(session.id)
                    continue
                alive.add(hashed)
                session.last_seen = max(session.last_seen, seen.timestamp())
                self._saved[session.id] = max(self._saved.get(session.id, 0.0), seen.timestamp())
            gone = [s.id for hashed, s in by_hash.items() if hashed not in alive]
            ended = len(gone)
            for session_id in gone:
                self._drop(session_id)
            if stale:
                await self._delete(db, stale, commit=False)
        if now - self._purged >= PURGE_EVERY:
            self._purged = now
            await db.execute(delete(UiSessionRecord).where(UiSessionRecord.expires_at < _at(now)))
        await db.commit()
        return ended

    def expire_idle(self) -> int:
        """End the sessions idle here for too long; how many ended. (Their rows have expired
        too, unless another server saw activity since: then :meth:`open` finds them again.)"""
        now = self.clock()
        ids = [s.id for s in self._sessions.values() if now - s.last_seen > self.idle_seconds]
        for session_id in ids:
            self._drop(session_id)
        return len(ids)

    # -- inside -------------------------------------------------------------------------------

    def _keep(self, session: UiSession, saved: float) -> None:
        self._sessions[session.id] = session
        self._saved[session.id] = saved

    def _drop(self, session_id: str) -> None:
        self._saved.pop(session_id, None)
        if self._sessions.pop(session_id, None) is None:
            return
        for listener in self._listeners:
            listener(session_id)

    async def _delete(self, db: AsyncSession, ids: Iterable[str], *, commit: bool = True) -> None:
        ids = list(ids)
        hashes = [id_hash(session_id) for session_id in ids]
        await db.execute(delete(UiSessionRecord).where(UiSessionRecord.id_hash.in_(hashes)))
        if commit:
            await db.commit()
        for session_id in ids:
            self._drop(session_id)

    async def _save_activity(self, db: AsyncSession) -> None:
        """Write the last activity of the sessions used here since they were last written."""
        dirty = [s for s in self._sessions.values() if s.last_seen > self._saved.get(s.id, 0.0)]
        if not dirty:
            return
        statement = (
            update(UiSessionRecord)
            .where(
                UiSessionRecord.id_hash == bindparam("hashed"),
                UiSessionRecord.last_seen_at < bindparam("seen"),
            )
            .values(last_seen_at=bindparam("seen"), expires_at=bindparam("expires"))
        )
        connection = await db.connection()  # a plain executemany, not the ORM's bulk update
        await connection.execute(
            statement,
            [
                {
                    "hashed": id_hash(s.id),
                    "seen": _at(s.last_seen),
                    "expires": _at(s.last_seen + self.idle_seconds),
                }
                for s in dirty
            ],
        )
        for session in dirty:
            self._saved[session.id] = session.last_seen
