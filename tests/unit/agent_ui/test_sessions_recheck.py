"""The periodic recheck ends the sessions of a user changed straight in the database (no CLI,
no API to sign them out), and only theirs: it reads each user's fingerprinted facts, not the
whole row, and must still see every one of them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from agent_ui.sessions import SessionStore
from crm_core.models import User
from crm_core.people import create_user
from tests.support.blank_crm import blank_crm

PASSWORD = "not used here"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "change",
    [
        {"role": "supervisor"},
        {"extension": "8199"},
        {"active": False},
        {"password_hash": "another"},
    ],
)
async def test_a_user_changed_in_the_database_loses_their_session_at_the_next_recheck(
    tmp_path: Path, change: dict[str, object]
) -> None:
    store = SessionStore(600)
    ended: list[str] = []
    store.on_revoke(ended.append)
    async with blank_crm(tmp_path) as crm, crm() as db:
        alice = await create_user(
            db, username="alice", password=PASSWORD, role="agent", extension="8101"
        )
        bob = await create_user(
            db, username="bob", password=PASSWORD, role="agent", extension="8102"
        )
        await db.commit()
        alices, bobs = await store.create(db, alice), await store.create(db, bob)
        assert await store.recheck(db) == 0  # nobody changed: nobody signed out

        await db.execute(update(User).where(User.id == alice.id).values(**change))
        await db.commit()
        await store.recheck(db)
        assert ended == [alices.id]
        assert store.get(alices.id) is None
        assert store.get(bobs.id) is bobs
