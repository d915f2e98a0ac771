"""API tokens over /api/tokens: an expiry in the answer, the caller's own tokens with their last
use, revocation (one's own; an admin's of anyone), and sign-in throttled as the desktop's is.
Every answer is checked against the OpenAPI document."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.api.app import create_api, openapi_document
from crm_core.models import ApiToken, utcnow
from crm_core.people import create_user
from crm_core.settings import CrmSettings, LoginSettings
from tests.support.openapi import ResponseChecker

Sessions = async_sessionmaker[AsyncSession]
SETTINGS = CrmSettings(
    token_days=2,
    login=LoginSettings(first_delay_seconds=0.05, max_delay_seconds=0.05, account_lockout_after=3),
)


@dataclass
class Api:
    client: TestClient[Any, Any]
    crm: Sessions

    async def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with self.client.request(method, "/api" + path, headers=headers, **kwargs) as resp:
            return resp.status, await resp.json()

    async def sign_in(self, username: str, password: str | None = None) -> dict[str, Any]:
        status, body = await self.call(
            "POST", "/tokens", json={"username": username, "password": password or username * 3}
        )
        assert status == 201, body
        return dict(body)

    async def row(self, token_id: int) -> ApiToken:
        async with self.crm() as s:
            row = await s.get(ApiToken, token_id)
            assert row is not None
            return row


@pytest_asyncio.fixture
async def api(crm: Sessions) -> AsyncIterator[Api]:
    async with crm() as s, s.begin():
        for name, role in (("ann", "agent"), ("bob", "agent"), ("root", "admin")):
            await create_user(s, username=name, password=name * 3, role=role)
    checker = ResponseChecker(openapi_document())
    root = web.Application(middlewares=[checker.middleware])
    root.add_subapp("/api", create_api(crm, SETTINGS))
    client: TestClient[Any, Any] = TestClient(TestServer(root))
    await client.start_server()
    try:
        yield Api(client, crm)
    finally:
        await client.close()
    assert checker.problems == []


@pytest.mark.asyncio
async def test_a_token_says_when_it_expires_and_then_answers_as_an_unknown_one(api: Api) -> None:
    signed_in = await api.sign_in("ann")
    expires = datetime.fromisoformat(signed_in["expires_at"])
    assert abs(expires - (utcnow() + timedelta(days=2))) < timedelta(minutes=1)
    token = signed_in["token"]
    assert (await api.call("GET", "/tokens", token))[0] == 200
    async with api.crm() as s, s.begin():
        await s.execute(
            update(ApiToken)
            .where(ApiToken.id == signed_in["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    expired = await api.call("GET", "/tokens", token)
    unknown = await api.call("GET", "/tokens", "no-such-token-" + "x" * 30)
    assert expired[0] == 401
    assert expired == unknown


@pytest.mark.asyncio
async def test_the_caller_sees_their_own_live_tokens_and_when_each_was_last_used(
    api: Api,
) -> None:
    first, second = await api.sign_in("ann"), await api.sign_in("ann")
    await api.sign_in("bob")
    status, body = await api.call("GET", "/tokens", first["token"])
    assert status == 200
    listed = {item["id"]: item for item in body["items"]}
    assert set(listed) == {first["id"], second["id"]}  # not bob's
    assert listed[first["id"]]["current"] is True
    assert listed[second["id"]]["current"] is False
    assert listed[first["id"]]["last_used_at"] is not None
    assert listed[second["id"]]["last_used_at"] is None  # never used yet
    assert "token" not in listed[first["id"]]  # the token itself is shown only once

    used = (await api.row(first["id"])).last_used_at
    await api.call("GET", "/tokens", first["token"])
    assert (await api.row(first["id"])).last_used_at == used  # at most a write a minute
    async with api.crm() as s, s.begin():
        earlier = utcnow() - timedelta(minutes=2)
        await s.execute(
            update(ApiToken).where(ApiToken.id == first["id"]).values(last_used_at=earlier)
        )
    await api.call("GET", "/tokens", first["token"])
    refreshed = (await api.row(first["id"])).last_used_at
    assert refreshed is not None
    assert refreshed > earlier + timedelta(minutes=1)


@pytest.mark.asyncio
async def test_a_user_revokes_their_own_tokens_and_only_an_admin_revokes_anyones(
    api: Api,
) -> None:
    ann, ann_other, bob = (
        await api.sign_in("ann"),
        await api.sign_in("ann"),
        await api.sign_in("bob"),
    )
    status, body = await api.call("DELETE", f"/tokens/{ann_other['id']}", ann["token"])
    assert status == 200
    assert body["revoked"] is True
    assert (await api.call("GET", "/tokens", ann_other["token"]))[0] == 401
    _, listed = await api.call("GET", "/tokens", ann["token"])
    assert [item["id"] for item in listed["items"]] == [ann["id"]]
    # someone else's token is no more there for ann than an id that does not exist
    assert (await api.call("DELETE", f"/tokens/{bob['id']}", ann["token"]))[0] == 404
    assert (await api.call("DELETE", "/tokens/999999", ann["token"]))[0] == 404
    assert (await api.call("DELETE", f"/tokens/{ann_other['id']}", ann["token"]))[0] == 404
    assert (await api.call("GET", "/tokens", bob["token"]))[0] == 200
    assert (await api.call("DELETE", f"/tokens/{bob['id']}", None))[0] == 401

    admin = await api.sign_in("root")
    bob_id = bob["user"]["id"]
    assert (await api.call("GET", f"/tokens?user_id={bob_id}", ann["token"]))[0] == 403
    status, listed = await api.call("GET", f"/tokens?user_id={bob_id}", admin["token"])
    assert status == 200
    assert [item["id"] for item in listed["items"]] == [bob["id"]]
    assert listed["items"][0]["current"] is False
    assert (await api.call("DELETE", f"/tokens/{bob['id']}", admin["token"]))[0] == 200
    assert (await api.call("GET", "/tokens", bob["token"]))[0] == 401
    async with api.crm() as s:
        revoked = await s.scalars(select(ApiToken.id).where(ApiToken.revoked))
        assert set(revoked) == {ann_other["id"], bob["id"]}
    await api.sign_in("ann")  # a new token: ann's dead ones go
    async with api.crm() as s:
        revoked = await s.scalars(select(ApiToken.id).where(ApiToken.revoked))
        assert set(revoked) == {bob["id"]}


@pytest.mark.asyncio
async def test_sign_in_is_throttled_and_a_locked_account_answers_as_a_wrong_password(
    api: Api,
) -> None:
    answers = [
        await api.call("POST", "/tokens", json={"username": "ann", "password": "wrong guess"})
        for _ in range(3)
    ]
    locked = await api.call("POST", "/tokens", json={"username": "ann", "password": "annannann"})
    assert locked[0] == 401
    assert all(answer == locked for answer in answers)
    assert (await api.sign_in("bob"))["user"]["username"] == "bob"


@pytest.mark.asyncio
async def test_behind_the_local_proxy_the_client_address_is_the_one_it_forwards(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"username": "ann", "password": "wrong guess"}
    forwarded = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}  # the proxy appended the last
    with caplog.at_level(logging.WARNING, logger="crm_core.login_throttle"):
        assert (await api.call("POST", "/tokens", json=body, headers=forwarded))[0] == 401
    assert "from 203.0.113.9" in caplog.text
