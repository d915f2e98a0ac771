"""User administration over the REST API (admins only, every answer checked against the OpenAPI
document), and what the user notices: a role changed over the API or on the command line signs
them out of the desktop (their page goes to the sign-in form, their websocket closes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import agent_ui.app
from crm_core.api.app import create_api, openapi_document
from crm_core.database import make_engine
from crm_core.models import User
from crm_core.people import issue_token
from crm_core.settings import CrmSettings
from cti_server.cli.main import main
from tests.support.openapi import ResponseChecker
from tests.support.ui import PASSWORD, add_users, sign_in, ui_app

Sessions = async_sessionmaker[AsyncSession]


@dataclass
class Server:
    """The desktop (``/ui``) and the CRM API (``/api``) on one database, as ``cti serve`` has."""

    client: TestClient[Any, Any]
    url: str  # the database's
    ids: dict[str, int]
    tokens: dict[str, str]

    @property
    def base(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def call(
        self, method: str, path: str, who: str | None = "admin", **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        async with self.client.request(method, "/api" + path, headers=headers, **kwargs) as resp:
            return resp.status, await resp.json()


@pytest_asyncio.fixture
async def server(crm_database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Server]:
    monkeypatch.setattr(agent_ui.app, "USER_CHECK_EVERY", 0.1)  # not the server's 5 s
    engine = make_engine(crm_database_url)
    db = async_sessionmaker(engine, expire_on_commit=False)
    try:
        ids = await add_users(
            db, ("admin", "admin", None), ("sam", "supervisor", "7001"), ("alice", "agent", "8101")
        )
        async with db() as s, s.begin():
            tokens = {name: await issue_token(s, await _user(s, uid)) for name, uid in ids.items()}
        root, _, _ = ui_app(db)
        checker = ResponseChecker(openapi_document())
        root.middlewares.append(checker.middleware)
        root.add_subapp("/api", create_api(db, CrmSettings()))
        client: TestClient[Any, Any] = TestClient(TestServer(root))
        await client.start_server()
        try:
            yield Server(client, crm_database_url, ids, tokens)
        finally:
            await client.close()
        # every answer of the API is one its OpenAPI document describes (the desktop has none)
        assert [p for p in checker.problems if not p.split()[1].startswith("/ui/")] == []
    finally:
        await engine.dispose()


async def _user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    assert user is not None
    return user


@pytest.mark.asyncio
async def test_admins_create_change_disable_and_list_users_and_read_the_audit(
    server: Server,
) -> None:
    status, ann = await server.call(
        "POST",
        "/users",
        json={"username": "ann", "password": "ann's long password", "role": "agent"},
    )
    assert (status, ann["role"], ann["extension"]) == (201, "agent", None)
    path = f"/users/{ann['id']}"

    status, ann = await server.call(
        "PATCH", path, json={"role": "supervisor", "extension": "8105", "display_name": "Ann"}
    )
    assert status == 200
    assert (ann["role"], ann["extension"], ann["display_name"]) == ("supervisor", "8105", "Ann")
    status, ann = await server.call("PATCH", path, json={"extension": None})
    assert (status, ann["extension"], ann["role"]) == (200, None, "supervisor")

    status, token = await server.call(
        "POST", "/tokens", who=None, json={"username": "ann", "password": "ann's long password"}
    )
    assert status == 201
    server.tokens["ann"] = token["token"]
    assert (await server.call("PUT", f"{path}/password", json={"password": "a fresh one!"}))[
        0
    ] == 200
    assert (await server.call("GET", "/agents", who="ann"))[0] == 401  # her token is revoked
    status, _ = await server.call(
        "POST", "/tokens", who=None, json={"username": "ann", "password": "a fresh one!"}
    )
    assert status == 201

    status, ann = await server.call("PATCH", path, json={"active": False})
    assert (status, ann["active"]) == (200, False)
    status, _ = await server.call(
        "POST", "/tokens", who=None, json={"username": "ann", "password": "a fresh one!"}
    )
    assert status == 401
    status, listed = await server.call("GET", "/users")
    assert status == 200
    assert [(u["username"], u["active"]) for u in listed["items"]] == [
        ("admin", True),
        ("alice", True),
        ("ann", False),
        ("sam", True),
    ]
    assert (await server.call("PATCH", path, json={"active": True}))[0] == 200

    status, audit = await server.call("GET", "/users/audit", params={"username": "ann"})
    assert status == 200
    assert [(e["actor"], e["action"], e["changes"]) for e in reversed(audit["items"])] == [
        ("api:admin", "created", {"role": "agent", "extension": None, "display_name": "ann"}),
        (
            "api:admin",
            "changed",
            {
                "role": {"from": "agent", "to": "supervisor"},
                "extension": {"from": None, "to": "8105"},
                "display_name": {"from": "ann", "to": "Ann"},
            },
        ),
        ("api:admin", "changed", {"extension": {"from": "8105", "to": None}}),
        ("api:admin", "changed", {"password": "changed"}),
        ("api:admin", "disabled", {"active": {"from": True, "to": False}}),
        ("api:admin", "enabled", {"active": {"from": False, "to": True}}),
    ]
    status, everyone = await server.call("GET", "/users/audit", params={"limit": "2"})
    assert (status, len(everyone["items"])) == (200, 2)


@pytest.mark.asyncio
async def test_only_admins_may_and_bad_requests_say_why(server: Server) -> None:
    alice = f"/users/{server.ids['alice']}"
    admin = f"/users/{server.ids['admin']}"
    for method, path, body in [
        ("GET", "/users", None),
        ("GET", "/users/audit", None),
        ("POST", "/users", {"username": "x1", "password": "long enough!", "role": "agent"}),
        ("PATCH", alice, {"role": "admin"}),
        ("PUT", f"{alice}/password", {"password": "long enough!"}),
    ]:
        assert (await server.call(method, path, who="sam", json=body))[0] == 403, path
        assert (await server.call(method, path, who=None, json=body))[0] == 401, path

    cases: list[tuple[str, str, Any, int, str]] = [
        ("PATCH", alice, {"role": "boss"}, 422, "role"),
        ("PATCH", alice, {"extension": "12ab"}, 422, "extension"),
        ("PATCH", alice, {"password": "sneaky!!"}, 422, "password"),
        ("PUT", f"{alice}/password", {"password": "short"}, 422, "password"),
        ("PATCH", "/users/999999", {"role": "agent"}, 404, "user 999999 does not exist"),
        ("PATCH", admin, {"role": "agent"}, 409, "last active admin"),
        ("GET", "/users/audit?username=nobody", None, 404, "'nobody' does not exist"),
        ("GET", "/users/audit?user=alice", None, 422, "user"),
    ]
    for method, path, body, code, said in cases:
        status, answer = await server.call(method, path, json=body)
        assert status == code, (path, body, answer)
        assert said in str(answer), (path, answer)
    _, audit = await server.call("GET", "/users/audit")
    assert {e["action"] for e in audit["items"]} == {"created"}  # nothing changed


async def _desk(server: Server) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    """Alice signed in on the desktop, her websocket open and greeted."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    status, _ = await sign_in(http, server.base, "alice", PASSWORD)
    assert status == 303
    ws = await http.ws_connect(server.base + "/ui/ws?view=desk", headers={"Origin": server.base})
    assert (await ws.receive_json(timeout=5))["type"] == "hello"
    return http, ws


async def _signed_out(
    server: Server, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse
) -> None:
    while (message := await ws.receive(timeout=10)).type == aiohttp.WSMsgType.TEXT:
        pass  # the desk's state, as it opened
    assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 4401)
    async with http.get(server.base + "/ui/desktop", allow_redirects=False) as page:
        assert (page.status, page.headers["Location"]) == (303, "/ui/login")


async def _over_the_api(server: Server) -> None:
    status, _ = await server.call("PATCH", f"/users/{server.ids['alice']}", json={"role": "admin"})
    assert status == 200


async def _on_the_command_line(server: Server) -> None:
    result = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["crm", "user", "set", "alice", "--role", "admin"],
        env={"CTI_DATABASE__URL": server.url},
    )
    assert result.exit_code == 0, result.output


@pytest.mark.asyncio
@pytest.mark.parametrize("change", [_over_the_api, _on_the_command_line], ids=["api", "cli"])
async def test_a_signed_in_user_whose_role_is_changed_is_signed_out(
    server: Server, change: Callable[[Server], Awaitable[None]]
) -> None:
    http, ws = await _desk(server)
    try:
        await change(server)
        await _signed_out(server, http, ws)
        status, _ = await sign_in(http, server.base, "alice", PASSWORD)
        assert status == 303  # and signs in again, with the new role
        async with http.get(server.base + "/ui/wallboard") as wallboard:
            assert wallboard.status == 200
    finally:
        await http.close()
