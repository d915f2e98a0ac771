"""The hub finds an extension's desks from its index, not by a scan of every socket: the index
must say exactly what the scan would, as agents sign in and out, open a second tab, are revoked,
or lose a socket that stopped taking messages."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_ui.sessions import SessionStore, UiSession
from agent_ui.ws import Connection, Hub
from crm_core.people import create_user
from tests.support.blank_crm import blank_crm

PASSWORD = "not used here"


@dataclass
class FakeSocket:
    """What the hub uses of a websocket: what it was sent, and whether it still takes more."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    broken: bool = False

    async def send_str(self, text: str) -> None:
        if self.broken:
            raise ConnectionResetError("the browser went away")
        self.sent.append(json.loads(text))

    async def close(self, **_kwargs: object) -> None:
        self.closed = True


def _session(user_id: int, extension: str | None, role: str = "agent") -> UiSession:
    return UiSession(
        id=f"s{user_id}-{extension}-{role}",
        user_id=user_id,
        username=f"user{user_id}",
        display_name=f"User {user_id}",
        role=role,
        extension=extension,
        csrf="x",
        last_seen=0.0,
    )


def _socket(session: UiSession, view: str = "desk") -> tuple[Connection, FakeSocket]:
    ws = FakeSocket()
    return Connection(cast(web.WebSocketResponse, ws), session, view), ws


def _scanned(hub: Hub, extension: str) -> set[Connection]:
    """What the hub's answer was before the index: every socket looked at."""
    return {c for c in hub.connections if c.view == "desk" and c.session.extension == extension}


@pytest.mark.asyncio
async def test_a_pop_reaches_the_desks_of_its_extension_only_while_they_are_signed_in() -> None:
    hub = Hub(SessionStore(600))
    alice, alice_ws = _socket(_session(1, "8101"))
    alice_tab, alice_tab_ws = _socket(_session(1, "8101"))  # a second tab, same sign-in
    bob, bob_ws = _socket(_session(2, "8102"))
    boss, boss_ws = _socket(_session(3, "8101", "supervisor"), view="wallboard")
    for connection in (alice, alice_tab, bob, boss):
        hub.add(connection)

    assert await hub.to_extension("8101", {"type": "pop", "n": 1}) == 2
    assert alice_ws.sent == alice_tab_ws.sent == [{"type": "pop", "n": 1}]
    assert bob_ws.sent == boss_ws.sent == []  # nor a wallboard of the same extension
    assert hub.user_at("8101") == 1
    assert hub.wallboards() == [boss]

    hub.discard(alice)  # one tab closed: the other still pops
    assert hub.desks_signed_in("8101")
    assert await hub.to_extension("8101", {"type": "pop", "n": 2}) == 1
    hub.discard(alice_tab)
    assert not hub.desks_signed_in("8101")
    assert hub.user_at("8101") is None
    assert await hub.to_extension("8101", {"type": "pop", "n": 3}) == 0
    assert alice_tab_ws.sent == [{"type": "pop", "n": 1}, {"type": "pop", "n": 2}]
    assert hub.desks_signed_in("8102")


@pytest.mark.asyncio
async def test_a_signed_out_or_idle_session_and_a_socket_gone_dead_leave_the_index(
    tmp_path: Path,
) -> None:
    now = [1_000_000.0]
    store = SessionStore(600, clock=lambda: now[0])
    hub = Hub(store)
    async with blank_crm(tmp_path) as crm, crm() as db:
        users = [
            await create_user(db, username=name, password=PASSWORD, role="agent", extension=ext)
            for name, ext in (("alice", "8101"), ("bob", "8102"), ("carol", "8103"))
        ]
        await db.commit()
        alice, bob, carol = [_socket(await store.create(db, user))[0] for user in users]
        for connection in (alice, bob, carol):
            hub.add(connection)

        await store.revoke(db, alice.session.id)  # signed out
        assert not hub.desks_signed_in("8101")
        assert alice not in hub.connections

        now[0] += 601  # carol idle for too long; bob was active
        store.touch(bob.session)
        assert store.expire_idle() == 1
        assert not hub.desks_signed_in("8103")
        assert hub.desks_of("8102") == [bob]

        cast(FakeSocket, bob.ws).broken = True
        assert await hub.to_extension("8102", {"type": "pop"}) == 1  # tried, and dropped
        assert not hub.desks_signed_in("8102")
        assert await hub.to_extension("8102", {"type": "pop"}) == 0
        await hub.close_all()


@pytest.mark.asyncio
async def test_one_message_to_many_sockets_reaches_each_of_them_alike() -> None:
    hub = Hub(SessionStore(600))
    sockets = [_socket(_session(i, None, "supervisor"), view="wallboard") for i in range(5)]
    for connection, _ws in sockets:
        hub.add(connection)
    assert await hub.send_all(hub.wallboards(), {"type": "wallboard", "queues": [1, 2]}) == 5
    assert all(ws.sent == [{"type": "wallboard", "queues": [1, 2]}] for _c, ws in sockets)


EXTENSIONS = ("8101", "8102", "8103")
STEP = st.tuples(
    st.sampled_from(("open", "close")),
    st.integers(min_value=0, max_value=5),  # which user (a user keeps their extension)
    st.sampled_from(("desk", "wallboard")),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(STEP, max_size=40))
def test_the_index_always_says_what_a_scan_of_every_socket_would(
    steps: list[tuple[str, int, str]],
) -> None:
    hub = Hub(SessionStore(600))
    extension_of = {user: (*EXTENSIONS, None)[user % 4] for user in range(6)}
    opened: list[Connection] = []
    for action, user, view in steps:
        if action == "open":
            connection, _ws = _socket(_session(user, extension_of[user]), view)
            hub.add(connection)
            opened.append(connection)
        else:
            for connection in [c for c in opened if c.session.user_id == user][:1]:
                opened.remove(connection)
                hub.discard(connection)
        for extension in EXTENSIONS:
            assert set(hub.desks_of(extension)) == _scanned(hub, extension)
            assert hub.desks_signed_in(extension) == bool(_scanned(hub, extension))
            scanned = _scanned(hub, extension)
            assert hub.user_at(extension) in (
                {c.session.user_id for c in scanned} if scanned else {None}
            )
        assert set(hub.wallboards()) == {c for c in hub.connections if c.view == "wallboard"}
