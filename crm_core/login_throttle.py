"""Sign-in that cannot be brute-forced: one guard for the desktop's form and ``POST /api/tokens``.

Tries are counted per account and per address in the database (``login_failures``), before the
password is checked, so that every server sharing it throttles alike, a lockout holds whichever
server a try reaches, and a burst of parallel tries gets no more guesses than the limit. The
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
from datetime import timedelta
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from sqlalchemy import case, delete, update
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
        address = _unmapped(ip_address(peer))
    except ValueError:
        return peer[:45]  # a Unix socket's path, say
    if forwarded_for and any(address in network for network in trusted):
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        try:
            return str(_unmapped(ip_address(last)))
        except ValueError:
            return str(address)
    return str(address)


def _unmapped(address: IPv4Address | IPv6Address) -> IPv4Address | IPv6Address:
    """``::ffff:127.0.0.1`` (an IPv4 peer on a dual-stack socket) is ``127.0.0.1``."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


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

        Each try is counted before its password is checked (atomically, on every server), so a
        burst of parallel tries cannot slip past the limit while the first ones are checked: at
        most ``account_lockout_after`` guesses at an account are ever checked per lockout. A
        success forgets the account's count and takes its try back from the address's.
        The user comes from a session that is closed: load it again in yours to change it."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        account, origin = people.account_key(username), address_key(address)
        settings = self.settings
        async with self._sessions() as db, db.begin():
            tries = await self._count_try(db, account, settings.account_lockout_after)
            from_origin = await self._count_try(db, origin, settings.address_lockout_after)
            await self._forget_old(db)
        refusal: Refusal | None = None
        if tries.locked:
            refusal = Refusal.ACCOUNT_LOCKED
        elif from_origin.locked:
            refusal = Refusal.ADDRESS_LOCKED
        else:
            async with self._sessions() as db:
                user = await people.authenticate(db, username, password)
            if user is not None:
                await self._succeeded(account, origin)
                return user
        refusal = refusal or Refusal.WRONG_CREDENTIALS
        failures = max(tries.failures, from_origin.failures)
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

    async def _count_try(self, db: AsyncSession, key: str, limit: int) -> _Count:
        """Count one more try for ``key`` and say whether it is locked out.

        A count older than ``forget_minutes`` starts again; so does one whose lockout ended
        (its holder gets ``limit`` tries again). Tries during a lockout are not counted (they
        do not prolong it). The try past ``limit`` starts the lockout."""
        now = utcnow()
        forgotten = now - timedelta(minutes=self.settings.forget_minutes)
        locked_now = LoginFailures.locked_until > now
        dialect = sqlite if db.get_bind().dialect.name == "sqlite" else postgresql
        statement = (
            dialect.insert(LoginFailures)
            .values(key=key, failures=1, last_failure_at=now, locked_until=None)
            .on_conflict_do_update(
                index_elements=[LoginFailures.key],
                set_={
                    "failures": case(
                        (locked_now, LoginFailures.failures),
                        (LoginFailures.locked_until.is_not(None), 1),  # its lockout ended
                        (LoginFailures.last_failure_at <= forgotten, 1),
                        else_=LoginFailures.failures + 1,
                    ),
                    "locked_until": case((locked_now, LoginFailures.locked_until), else_=None),
                    "last_failure_at": now,
                },
            )
            .returning(LoginFailures.failures, LoginFailures.locked_until)
        )
        failures, locked_until = (await db.execute(statement)).one()
        if locked_until is not None and locked_until > now:
            return _Count(failures, locked=True)
        if failures <= limit:
            return _Count(failures, locked=False)
        until = now + timedelta(minutes=self.settings.lockout_minutes)
        await db.execute(
            update(LoginFailures).where(LoginFailures.key == key).values(locked_until=until)
        )
        return _Count(failures, locked=True)

    async def _succeeded(self, account: str, origin: str) -> None:
        """Forget the account's count and take the try back from the address's."""
        async with self._sessions() as db, db.begin():
            await db.execute(delete(LoginFailures).where(LoginFailures.key == account))
            await db.execute(
                update(LoginFailures)
                .where(LoginFailures.key == origin, LoginFailures.failures > 0)
                .values(failures=LoginFailures.failures - 1)
            )

    async def _forget_old(self, db: AsyncSession) -> None:
        """Rows of counts that are forgotten and not locked go (the table stays small)."""
        now = utcnow()
        forgotten = now - timedelta(minutes=self.settings.forget_minutes)
        await db.execute(
            delete(LoginFailures).where(
                LoginFailures.last_failure_at <= forgotten,
                LoginFailures.locked_until.is_(None) | (LoginFailures.locked_until <= now),
            )
        )
