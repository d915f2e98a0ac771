"""The server's /agi API for cti-agi: its token, its checks, and cti-agi's client against it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from pydantic import SecretStr

from cti_server.agi_api import PREFIX, create_agi_api
from cti_server.agi_client import CtiServerClient, ServerUnavailable
from cti_server.events import (
    AgentStateChanged,
    CallArrived,
    DomainEvent,
    IvrFinished,
    SurveyAnswered,
)
from cti_server.ivr.engine import Customer
from tests.support.ports import free_port

TOKEN = "t0ken-for-tests-0123456789"
VIP = Customer(customer_id=7, name="王总", tier="platinum", language="zh", has_pin=True)
ARRIVED = CallArrived(
    node="pbx1",
    linkedid="1700000000.1",
    uniqueid="1700000000.1",
    channel="PJSIP/trunk-00000001",
    caller_number="+8613911112222",
    caller_name="王总",
    dialed="100",
)


@dataclass
class Server:
    url: str
    published: list[DomainEvent] = field(default_factory=list)
    lookups: list[tuple[str, Customer | None]] = field(default_factory=list)
    pins: list[tuple[int, str]] = field(default_factory=list)

    def client(self, token: str = TOKEN) -> CtiServerClient:
        return CtiServerClient(self.url, token, "pbx1", timeout=2.0)

    async def request(
        self, method: str, path: str, token: str | None = TOKEN, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.url + PREFIX + path, headers=headers, **kwargs) as answer,
        ):
            return answer.status, await answer.json()


@asynccontextmanager
async def running(token: str | None = TOKEN) -> AsyncIterator[Server]:
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}")

    async def by_caller_id(number: str) -> Customer | None:
        return VIP if number == "+8613911112222" else None

    async def by_account(digits: str) -> Customer | None:
        return VIP if digits == "12345678" else None

    async def self_service(name: str, customer: Customer | None) -> dict[str, str] | None:
        if name != "last_order":
            raise KeyError(f"no IVR lookup function named {name!r}")
        server.lookups.append((name, customer))
        return {"last_order_amount": "1234"} if customer else None

    async def verify_pin(customer: Customer, pin: str) -> bool:
        server.pins.append((customer.customer_id, pin))
        return (customer.customer_id, pin) == (7, "4711")

    app = web.Application()
    app.add_subapp(
        PREFIX,
        create_agi_api(
            token=SecretStr(token) if token else None,
            by_caller_id=by_caller_id,
            by_account=by_account,
            self_service=self_service,
            estimated_wait=lambda node, queue: 42.0 if (node, queue) == ("pbx1", "support") else 0,
            publish=server.published.append,
            nodes=["pbx1"],
            verify_pin=verify_pin,
            callers_ahead=lambda node, queue: 3 if (node, queue) == ("pbx1", "support") else 0,
        ),
    )
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def server() -> AsyncIterator[Server]:
    async with running() as started:
        yield started


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("token", "status"),
    [(None, 401), ("", 401), ("wrong-token-0123456789", 403), (TOKEN[:-1], 403)],
    ids=["none", "empty", "wrong", "prefix"],
)
async def test_a_request_without_the_token_is_refused(
    server: Server, token: str | None, status: int
) -> None:
    code, body = await server.request("GET", "/customer?caller_id=%2B8613911112222", token)
    assert code == status
    assert "token" in body["error"]
    code, _ = await server.request("POST", "/events", token, json=ARRIVED.to_dict())
    assert code == status
    assert server.published == []


@pytest.mark.asyncio
async def test_without_a_configured_token_the_api_is_off() -> None:
    async with running(token=None) as off:
        code, body = await off.request("GET", "/customer?caller_id=1")
    assert code == 503
    assert "ivr.service_token" in body["error"]


@pytest.mark.asyncio
async def test_the_ivr_events_reach_the_bus(server: Server) -> None:
    finished = IvrFinished(
        node="pbx1",
        linkedid="1700000000.1",
        flow="main",
        outcome="transfer",
        queue="support",
        attributes={"intent": "billing", "tier": "platinum"},
        path=[{"step": "menu", "type": "menu", "seconds": 1.5, "input": "1"}],
        inputs={},
        customer_id=7,
        recordings=["/var/spool/asterisk/recordings/ivr/voicemail-1.wav"],
    )
    survey = SurveyAnswered(node="pbx1", linkedid="x", score=5, comment="/x/comment-1.wav")
    for event in (ARRIVED, finished, survey):
        code, body = await server.request("POST", "/events", json=event.to_dict())
        assert (code, body) == (202, {"accepted": type(event).__name__})
    assert server.published == [ARRIVED, finished, survey]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "AgentStateChanged"}, "not accepted here"),
        ({"type": "CallEnded"}, "not accepted here"),
        ({"type": None}, "not accepted here"),
        ({"version": 2}, "version"),
        ({"data": []}, "must be an object"),
        ({"data": {"node": "pbx1"}}, "Field required"),
        ({"data_extra": {"queue": "support"}}, "has no field queue"),
        ({"data_extra": {"caller_number": 8613911112222}}, "caller_number"),
        ({"data_extra": {"node": "pbx9"}}, "not an Asterisk node"),
        ({"data_extra": {"linkedid": ""}}, "linkedid"),
        ({"data_extra": {"at": "2026-01-01T00:00:00"}}, "time zone"),
    ],
)
async def test_anything_but_a_well_formed_ivr_event_is_refused(
    server: Server, change: dict[str, Any], message: str
) -> None:
    payload = ARRIVED.to_dict()
    payload["data"] = {**payload["data"], **change.pop("data_extra", {})}
    payload.update(change)
    code, body = await server.request("POST", "/events", json=payload)
    assert code == 422
    assert message in body["error"]
    assert server.published == []


@pytest.mark.asyncio
async def test_other_domain_rules_are_checked(server: Server) -> None:
    survey = SurveyAnswered(node="pbx1", linkedid="x", score=9).to_dict()
    agent = AgentStateChanged(
        node="pbx1", agent="sim-1", state="paused", reason="", linkedid=""
    ).to_dict()
    for payload, message in ((survey, "score"), (agent, "AgentStateChanged")):
        code, body = await server.request("POST", "/events", json=payload)
        assert code == 422
        assert message in body["error"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b"\xff\xfe", b'"text"'],
    ids=["broken", "list", "bytes", "str"],
)
async def test_malformed_json_is_a_400(server: Server, body: bytes) -> None:
    code, answer = await server.request("POST", "/events", data=body)
    assert code == 400
    assert answer["error"]


@pytest.mark.asyncio
async def test_an_oversized_body_is_refused(server: Server) -> None:
    code, _ = await server.request("POST", "/events", data=b"{" + b" " * 300_000 + b"}")
    assert code == 413


@pytest.mark.asyncio
async def test_the_client_asks_what_the_ivr_needs(server: Server) -> None:
    """cti-agi's blocking client, as it runs in its own process (here in a thread)."""
    client = server.client()
    assert await asyncio.to_thread(_sync, client.by_caller_id("+8613911112222")) == VIP
    assert await asyncio.to_thread(_sync, client.by_caller_id("+8613700000000")) is None
    assert await asyncio.to_thread(_sync, client.by_account("12345678")) == VIP
    answer = await asyncio.to_thread(_sync, client.self_service("last_order", VIP))
    assert answer == {"last_order_amount": "1234"}
    assert server.lookups == [("last_order", VIP)]
    with pytest.raises(ServerUnavailable, match="404"):
        await asyncio.to_thread(_sync, client.self_service("nothing", VIP))
    assert await asyncio.to_thread(client.estimated_wait, "support") == 42.0
    assert await asyncio.to_thread(client.callers_ahead, "support") == 3
    await asyncio.to_thread(client.publish, ARRIVED)
    assert server.published == [ARRIVED]


@pytest.mark.asyncio
async def test_the_client_has_a_pin_checked_without_it_in_any_url_or_answer(
    server: Server,
) -> None:
    client = server.client()
    assert await asyncio.to_thread(_sync, client.verify_pin(VIP, "4711")) is True
    assert await asyncio.to_thread(_sync, client.verify_pin(VIP, "4712")) is False
    assert server.pins == [(7, "4711"), (7, "4712")]
    for body in ({"customer_id": "7", "pin": "4711"}, {"customer_id": 7, "pin": "1" * 33}, {}):
        code, answer = await server.request("POST", "/pin", json=body)
        assert code == 422
        assert "4711" not in str(answer)
    code, _ = await server.request("POST", "/pin", "wrong-token-0123456789", json={})
    assert code == 403
    assert len(server.pins) == 2


@pytest.mark.asyncio
async def test_the_client_gives_up_on_a_wrong_token_or_no_server(server: Server) -> None:
    with pytest.raises(ServerUnavailable, match="403"):
        await asyncio.to_thread(server.client("wrong-token-0123456789").publish, ARRIVED)
    gone = CtiServerClient(f"http://127.0.0.1:{free_port()}", TOKEN, "pbx1", timeout=1.0)
    with pytest.raises(ServerUnavailable):
        await asyncio.to_thread(gone.estimated_wait, "support")


def _sync(awaitable: Any) -> Any:
    """The client's async lookups do blocking I/O inside: run one to its end in this thread."""
    return asyncio.run(awaitable)


def test_cti_agi_exits_1_without_a_server_and_sets_nothing() -> None:
    """The exit status is Asterisk's AGISTATUS: 1 is FAILURE, and the fallback takes the call."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTI_")}
    env.update(CTI_HTTP__PORT=str(free_port()), CTI_IVR__SERVICE_TOKEN=TOKEN)
    agi_env = "agi_channel: Local/s@x-1;1\nagi_uniqueid: 1.1\nagi_arg_1: inbound\n\n"
    answers = "200 result=1 (1.1)\n200 result=1 (100)\n"
    done = subprocess.run(
        [sys.executable, "-m", "cti_server.agi_main"],
        input=(agi_env + answers).encode(),
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1, done.stderr.decode()
    assert b"CTI server unavailable" in done.stderr
    assert b"CTI_QUEUE" not in done.stdout
    assert done.stdout.decode().splitlines() == [
        'GET FULL VARIABLE "${CHANNEL(linkedid)}"',
        'GET FULL VARIABLE "${CTI_DID}"',
    ]


def test_cti_agi_without_a_token_exits_before_the_call() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTI_")}
    done = subprocess.run(
        [sys.executable, "-m", "cti_server.agi_main", "survey"],
        input=b"agi_channel: x\n\n",
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert b"service_token" in done.stderr
    assert done.stdout == b""
