"""Sign-in that cannot be brute-forced: one guard for the desktop's form and ``POST /api/tokens``.

Failures are counted per account and per address in the database (``login_failures``), so that
every server sharing it throttles alike and a lockout holds whichever server a try reaches. The
answer to any failure (wrong password, unknown user, locked account or address) is sent when
the delay its count earns has passed since the request arrived, so all of them take the same
time: a locked account cannot be told from a wrong password, nor an unknown user from a known
one. A locked account or address is refused without hashing, so a flood against it costs no CPU.
The wait holds no database connection. Every failure is logged (never the password) and counted
by reason for ``/metrics``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import IPv4Network, IPv6Network, ip_address

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core import people
from crm_core.models import LoginFailures, User, utcnow
from crm_core.settings import LoginSettings

log = logging.getLogger(__name__)


class Refusal(enum.StrEnum):
    """Why a sign-in was refused, as ``cti_login_failures_total{reason}`` names it."""

    WRONG_CREDENTIALS = "wrong_credentials"  # unknown user, wrong password or disabled user
    ACCOUNT_LOCKED = "account_locked"
    ADDRESS_LOCKED = "address_locked"


@dataclass(frozen=True)
class _Count:
    failures: int
    locked: bool


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Iterable[IPv4Network | IPv6Network]
) -> str:
    """The address a sign-in came from: the peer, or, when the peer is a trusted proxy, the
    address that proxy saw (the last of ``X-Forwarded-For``, the one it appended)."""
    if not peer:
        return "unknown"
    try:
        address = ip_address(peer)
    except ValueError:
        return peer[:45]  # a Unix socket's path, say
    if forwarded_for and any(address in network for network in trusted):
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        try:
            return str(ip_address(last))
        except ValueError:
            return str(address)
    return str(address)


def address_key(address: str) -> str:
    return f"addr:{address}"[:80]


class LoginGuard:
    """Checks a username and password behind the throttle; built once by the composition root."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: LoginSettings) -> None:
        self._sessions = sessions
        self.settings = settings
        self.failures: Counter[Refusal] = Counter()

    async def sign_in(self, username: str, password: str, address: str) -> User | None:
        """The user, or None after the delay every failure of this count waits.

        The user comes from a session that is closed: load it again in yours to change it."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        account, origin = people.account_key(username), address_key(address)
        async with self._sessions() as db:
            counts = await self._counts(db, (account, origin))
            refusal: Refusal | None = None
            if counts[account].locked:
                refusal = Refusal.ACCOUNT_LOCKED
            elif counts[origin].locked:
                refusal = Refusal.ADDRESS_LOCKED
            user = None
            if refusal is None:
                user = await people.authenticate(db, username, password)
            if user is not None:
                await db.execute(delete(LoginFailures).where(LoginFailures.key == account))
                await db.commit()
                return user
        refusal = refusal or Refusal.WRONG_CREDENTIALS
        failures = await self._count_failure(account, origin)
        self.failures[refusal] += 1
        log.warning(
            "sign-in refused (%s) for user %r from %s: failure %d",
            refusal.value,
            username[:64],
            address,
            failures,
        )
        await asyncio.sleep(max(0.0, started + self.delay(failures) - loop.time()))
        return None

    def delay(self, failures: int) -> float:
        """How long the answer to the ``failures``-th failure in a row waits (from its arrival)."""
        first, most = self.settings.first_delay_seconds, self.settings.max_delay_seconds
        doublings = min(max(failures, 1) - 1, 30)
        return min(first * float(2**doublings), most)

    async def _counts(self, db: AsyncSession, keys: tuple[str, str]) -> dict[str, _Count]:
        now = utcnow()
        forgotten = now - timedelta(minutes=self.settings.forget_minutes)
        rows = await db.scalars(select(LoginFailures).where(LoginFailures.key.in_(keys)))
        counts = {key: _Count(0, locked=False) for key in keys}
        for row in rows:
            locked = row.locked_until is not None and row.locked_until > now
            fresh = row.last_failure_at > forgotten
            counts[row.key] = _Count(row.failures if fresh else 0, locked)
        return counts

    async def _count_failure(self, account: str, origin: str) -> int:
        """Count a failure for both keys (atomically: servers race), lock what reached its
        limit, forget old counts; the higher of the two counts."""
        settings = self.settings
        now = utcnow()
        forgotten = now - timedelta(minutes=settings.forget_minutes)
        limits = {account: settings.account_lockout_after, origin: settings.address_lockout_after}
        highest = 0
        async with self._sessions() as db, db.begin():
            for key, limit in limits.items():
                failures = await _increment(db, key, now, forgotten)
                highest = max(highest, failures)
                if failures >= limit:
                    await db.execute(
                        update(LoginFailures)
                        .where(
                            LoginFailures.key == key,
                            (LoginFailures.locked_until.is_(None))
                            | (LoginFailures.locked_until <= now),
                        )
                        .values(locked_until=now + timedelta(minutes=settings.lockout_minutes))
                    )
            await db.execute(
                delete(LoginFailures).where(
                    LoginFailures.last_failure_at <= forgotten,
                    (LoginFailures.locked_until.is_(None)) | (LoginFailures.locked_until <= now),
                )
            )
        return highest


async def _increment(db: AsyncSession, key: str, now: datetime, forgotten: datetime) -> int:
    """One more failure for ``key`` (a count older than ``forgotten`` starts again at one)."""
    dialect = sqlite if db.get_bind().dialect.name == "sqlite" else postgresql
    statement = dialect.insert(LoginFailures).values(key=key, failures=1, last_failure_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=[LoginFailures.key],
        set_={
            "failures": case(
                (LoginFailures.last_failure_at <= forgotten, 1),
                else_=LoginFailures.failures + 1,
            ),
            "last_failure_at": now,
        },
    ).returning(LoginFailures.failures)
    failures: int = (await db.execute(statement)).scalar_one()
    return failures
