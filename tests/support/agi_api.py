"""The server's /agi API for cti-agi, served on a free port with lookups that know one VIP
and a speech listener a test plays Asterisk on (tests of the API, of cti-agi, and the fuzzers)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web
from pydantic import SecretStr

from cti_server.events import CallKey, DomainEvent
from cti_server.ivr.channels.agi_api import PREFIX, create_agi_api
from cti_server.ivr.channels.agi_client import CtiServerClient
from cti_server.ivr.engine import Customer, Lookup, PinCheck
from cti_server.speech.audiosocket import Listening
from cti_server.speech.heard import Heard
from tests.support.ports import free_port

TOKEN = "t0ken-for-tests-0123456789"
VIP = Customer(customer_id=7, name="王总", tier="platinum", language="zh", has_pin=True)


class FakeSpeech:
    """The server's AudioSocket listener as the API sees it, with a Korean model only; a test
    plays Asterisk by connecting a listening and hearing a word or a key on it."""

    address = "127.0.0.1:4575"

    def __init__(self) -> None:
        self.pending: dict[uuid.UUID, Listening] = {}
        self.peers: dict[uuid.UUID, str | None] = {}  # whom each listening is bound to
        self.forgotten: list[uuid.UUID] = []

    def languages(self) -> set[str]:
        return {"ko"}

    def expect(
        self, words: Mapping[str, str], language: str, timeout: float, peer: str | None = None
    ) -> Listening | None:
        if language not in self.languages() or not words:
            return None
        listening = Listening(words, language, timeout)
        self.pending[listening.id] = listening
        self.peers[listening.id] = peer
        return listening

    def forget(self, listening: Listening) -> None:
        listening.hear(Heard(""))
        self.pending.pop(listening.id, None)
        self.forgotten.append(listening.id)

    def hear(self, named: str, heard: Heard) -> None:
        """Asterisk connected, and the caller said a word or pressed a key."""
        listening = self.pending[uuid.UUID(named)]
        listening.connected.set()
        listening.hear(heard)


@dataclass
class Server:
    url: str
    speech: FakeSpeech | None = None
    published: list[DomainEvent] = field(default_factory=list)
    lookups: list[tuple[str, Customer | None]] = field(default_factory=list)
    calls_identified: list[CallKey] = field(default_factory=list)
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
async def running(
    token: str | None = TOKEN, speech: FakeSpeech | None = None
) -> AsyncIterator[Server]:
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", speech)

    def caller_lookup(key: CallKey) -> Lookup:
        async def by_caller_id(number: str) -> Customer | None:
            server.calls_identified.append(key)
            return VIP if number == "+8613911112222" else None

        return by_caller_id

    async def by_account(digits: str) -> Customer | None:
        return VIP if digits == "12345678" else None

    async def self_service(name: str, customer: Customer | None) -> dict[str, str] | None:
        if name != "last_order":
            raise KeyError(f"no IVR lookup function named {name!r}")
        server.lookups.append((name, customer))
        return {"last_order_amount": "1234"} if customer else None

    async def verify_pin(customer: Customer, pin: str) -> PinCheck:
        server.pins.append((customer.customer_id, pin))
        if customer.customer_id == 8:
            return PinCheck.LOCKED
        return PinCheck.MATCH if (customer.customer_id, pin) == (7, "4711") else PinCheck.WRONG

    app = web.Application()
    app.add_subapp(
        PREFIX,
        create_agi_api(
            token=SecretStr(token) if token else None,
            caller_lookup=caller_lookup,
            by_account=by_account,
            self_service=self_service,
            estimated_wait=lambda node, queue: 42.0 if (node, queue) == ("pbx1", "support") else 0,
            publish=server.published.append,
            nodes=["pbx1"],
            verify_pin=verify_pin,
            callers_ahead=lambda node, queue: 3 if (node, queue) == ("pbx1", "support") else 0,
            speech=speech,
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


@pytest_asyncio.fixture
async def listener() -> AsyncIterator[Server]:
    """The API with a speech listener that has a Korean model."""
    async with running(speech=FakeSpeech()) as started:
        yield started
