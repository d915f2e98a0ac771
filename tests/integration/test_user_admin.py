"""User administration in the CRM's service layer: every change audited, the user signed out
where it matters, bad input refused before anything changes. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Literal

import pytest
import pytest_asyncio
from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core import people
from crm_core.database import make_engine
from crm_core.errors import Conflict, CrmError, InvalidInput, NotFound
from crm_core.models import UiSessionRecord, User, utcnow
from crm_core.people import (
    Actor,
    UserChanges,
    authenticate,
    change_user,
    create_user,
    issue_token,
    list_users,
    user_audit,
    user_for_token,
)

Sessions = async_sessionmaker[AsyncSession]
ADMIN = Actor("api:root", None)
PASSWORD = "correct horse battery"


@pytest_asyncio.fixture
async def crm(crm_database_url: str) -> AsyncIterator[Sessions]:
    engine = make_engine(crm_database_url)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


async def _signed_in(crm: Sessions, username: str) -> str:
    """A browser session row for the user, as the agent UI writes one; an API token too."""
    async with crm() as s, s.begin():
        user = await s.scalar(select(User).where(User.username == username))
        assert user is not None
        now = utcnow()
        s.add(
            UiSessionRecord(
                id_hash=f"{user.id:064d}",
                user_id=user.id,
                fingerprint="f" * 64,
                csrf="c" * 43,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(minutes=30),
            )
        )
        return await issue_token(s, user)


async def _sessions_of(crm: Sessions, username: str) -> int:
    async with crm() as s:
        count = await s.scalar(
            select(func.count())
            .select_from(UiSessionRecord)
            .join(User, User.id == UiSessionRecord.user_id)
            .where(User.username == username)
        )
        return int(count or 0)


@pytest.mark.asyncio
async def test_every_change_is_audited_and_signs_the_user_out_where_it_matters(
    crm: Sessions,
) -> None:
    async with crm() as s, s.begin():
        await create_user(s, username="root", password=PASSWORD, role="admin", by=ADMIN)
        await create_user(
            s, username="ann", password=PASSWORD, role="agent", extension="8101", by=ADMIN
        )

    token = await _signed_in(crm, "ann")
    async with crm() as s, s.begin():
        await change_user(s, "ann", UserChanges(display_name="Ann Lee"), by=ADMIN)
    assert await _sessions_of(crm, "ann") == 1  # a new display name signs nobody out
    async with crm() as s:
        assert await user_for_token(s, token) is not None  # nor revokes a token

    steps = [  # a token carries the rights it was issued with: each of these revokes it
        UserChanges(role="supervisor"),
        UserChanges(extension="8102"),
        UserChanges(password="a new and longer secret"),
        UserChanges(active=False),
    ]
    for changes in steps:
        async with crm() as s, s.begin():
            await change_user(s, "ann", changes, by=ADMIN)
        assert await _sessions_of(crm, "ann") == 0, changes
        async with crm() as s:
            assert await user_for_token(s, token) is None, changes
        token = await _signed_in(crm, "ann")

    async with crm() as s, s.begin():
        await change_user(s, "ann", UserChanges(active=True), by=Actor("cli:ops"))
        await change_user(s, "ann", UserChanges(role="supervisor"), by=ADMIN)  # no change
    async with crm() as s:
        entries = await user_audit(s, "ann")
        assert await authenticate(s, "ann", "a new and longer secret") is not None

    assert [(e.action, e.actor, e.changes) for e in reversed(entries)] == [
        ("created", "api:root", {"role": "agent", "extension": "8101", "display_name": "ann"}),
        ("changed", "api:root", {"display_name": {"from": "ann", "to": "Ann Lee"}}),
        ("changed", "api:root", {"role": {"from": "agent", "to": "supervisor"}}),
        ("changed", "api:root", {"extension": {"from": "8101", "to": "8102"}}),
        ("changed", "api:root", {"password": "changed"}),
        ("disabled", "api:root", {"active": {"from": True, "to": False}}),
        ("enabled", "cli:ops", {"active": {"from": False, "to": True}}),
    ]
    assert all(e.username == "ann" for e in entries)
    assert entries[0].at >= entries[-1].at


@pytest.mark.asyncio
async def test_the_last_active_admin_can_be_neither_demoted_nor_disabled(crm: Sessions) -> None:
    async with crm() as s, s.begin():
        await create_user(s, username="root", password=PASSWORD, role="admin")
    for changes in (UserChanges(role="manager"), UserChanges(active=False)):
        async with crm() as s:
            with pytest.raises(Conflict, match="last active admin"):
                await change_user(s, "root", changes)
    async with crm() as s, s.begin():
        await create_user(s, username="deputy", password=PASSWORD, role="admin")
        await change_user(s, "root", UserChanges(role="manager"))
    async with crm() as s:
        assert {u.username: u.role for u in await list_users(s)} == {
            "deputy": "admin",
            "root": "manager",
        }


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        (UserChanges(role="boss"), InvalidInput, "role: must be one of"),
        (UserChanges(extension="81a1"), InvalidInput, "extension: 2 to 10 digits"),
        (UserChanges(password="short"), InvalidInput, "password: at least 8"),
        (UserChanges(display_name=" "), InvalidInput, "display name"),
    ],
)
async def test_bad_input_changes_nothing_and_is_not_audited(
    crm: Sessions, changes: UserChanges, error: type[CrmError], message: str
) -> None:
    async with crm() as s, s.begin():
        await create_user(s, username="ann", password=PASSWORD, role="agent", extension="8101")
    async with crm() as s:
        with pytest.raises(error, match=message):
            await change_user(s, "ann", changes)
    async with crm() as s:
        assert [e.action for e in await user_audit(s)] == ["created"]
        with pytest.raises(NotFound, match="'bob' does not exist"):
            await change_user(s, "bob", UserChanges(role="agent"))


class _WatchedHasher(PasswordHasher):
    """argon2 as the CRM uses it, noting whether each hash or check ran on the event loop."""

    def __init__(self) -> None:
        super().__init__()
        self.on_loop: list[bool] = []

    def _note(self) -> None:
        self.on_loop.append(threading.current_thread() is threading.main_thread())

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._note()
        return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self._note()
        return super().verify(hash, password)


@pytest.mark.asyncio
async def test_passwords_are_hashed_and_checked_off_the_event_loop(
    crm: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argon2 costs tens of milliseconds by design: every sign-in would stall every call."""
    hasher = _WatchedHasher()
    monkeypatch.setattr(people, "_HASHER", hasher)
    people._dummy_hash.cache_clear()
    async with crm() as s, s.begin():
        await create_user(s, username="ann", password=PASSWORD, role="agent")
        await change_user(s, "ann", UserChanges(password="a new and longer secret"))
    async with crm() as s:
        assert await authenticate(s, "ann", "a new and longer secret") is not None
        assert await authenticate(s, "ann", "wrong password") is None
        assert await authenticate(s, "nobody", "whatever it is") is None
    people._dummy_hash.cache_clear()
    assert len(hasher.on_loop) >= 6
    assert not any(hasher.on_loop)
