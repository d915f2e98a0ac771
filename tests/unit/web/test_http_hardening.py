"""What a client sees of the whole server's HTTP side (started as `cti serve` starts it, on real
loopback sockets, Asterisk down): no answer names the server software, answers with personal data
are not cached, slow clients are dropped while others are served, websockets live on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from cti_server.app import SESSIONS, _start, _stop
from cti_server.config import Settings, load_settings
from tests.support.ports import free_port
from tests.support.ui import PASSWORD, add_users, sign_in

HEADERS_WITHIN = 1.0  # http.header_timeout in these tests, seconds
BODY_WITHIN = 1.5  # http.body_timeout
IDLE_WITHIN = 3.0  # http.idle_timeout
SLACK = 2.0  # seconds a drop may come after its deadline on a loaded machine


@dataclass
class Server:
    settings: Settings
    runner: web.AppRunner

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.settings.http.port}"

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.settings.http.port)

    async def head_of(self, request: bytes) -> tuple[str, dict[str, str]]:
        """The status line and headers the server writes for ``request``, as on the wire."""
        reader, writer = await self.connect()
        try:
            writer.write(request)
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        finally:
            writer.close()
        status, *lines = raw.decode("latin-1").split("\r\n")
        fields = (line.partition(":") for line in lines if line)
        return status, {name.strip().lower(): value.strip() for name, _, value in fields}

    async def get(self, path: str, headers: str = "") -> tuple[str, dict[str, str]]:
        host = f"127.0.0.1:{self.settings.http.port}"
        return await self.head_of(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n".encode()
        )


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    settings = load_settings(
        None,
        ami={"secret": "x", "port": free_port()},  # nothing listens there: Asterisk is down
        agi={"port": free_port()},
        http={
            "port": free_port(),
            "header_timeout": HEADERS_WITHIN,
            "body_timeout": BODY_WITHIN,
            "idle_timeout": IDLE_WITHIN,
        },
        speech={"port": free_port()},
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}"},
        recorder={"spool_path": str(tmp_path / "spool.jsonl")},
    )
    runner = await _start(settings)
    try:
        await add_users(runner.app[SESSIONS], ("ann", "supervisor", "1001"))
        yield Server(settings, runner)
    finally:
        await _stop(runner, settings.shutdown_timeout)


async def _token(server: Server) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.base}/api/tokens", json={"username": "ann", "password": PASSWORD}
        ) as response,
    ):
        assert response.status == 201, await response.text()
        token: str = (await response.json())["token"]
        return token


async def _customer(server: Server, token: str) -> int:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        http.post(f"{server.base}/api/customers", json={"name": "Ada Lovelace"}) as response,
    ):
        assert response.status == 201, await response.text()
        customer: int = (await response.json())["id"]
        return customer


async def _session_cookie(server: Server) -> str:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        status, cookie = await sign_in(http, server.base, "ann")  # (unsafe: an IP address)
    assert status == 303
    assert cookie is not None
    return f"cti_session={cookie.value}"


async def _closed(reader: asyncio.StreamReader, within: float) -> tuple[bytes, float]:
    """Everything the server wrote until it closed the connection, and when it closed it."""
    started = time.monotonic()
    said = await asyncio.wait_for(reader.read(), within)
    return said, time.monotonic() - started


@pytest.mark.asyncio
async def test_no_answer_names_the_server_software(server: Server) -> None:
    token = await _token(server)
    customer = await _customer(server, token)
    cookie = await _session_cookie(server)
    port = server.settings.http.port
    upgrade = (
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://127.0.0.1:{port}\r\n"
        f"Cookie: {cookie}\r\n"
    )
    answers = {
        "page": await server.get(f"/ui/customers/{customer}", f"Cookie: {cookie}\r\n"),
        "sign-in page": await server.get("/ui/login"),
        "API": await server.get(f"/api/customers/{customer}", f"Authorization: Bearer {token}\r\n"),
        "API refusal": await server.get("/api/customers"),
        "static file": await server.get("/ui/static/common.js"),
        "404": await server.get("/no/such/page"),
        "status": await server.get("/status"),
        "metrics": await server.get("/metrics"),
        "liveness": await server.get("/healthz"),
        "websocket upgrade": await server.head_of(
            f"GET /ui/ws?view=desk HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{upgrade}\r\n".encode()
        ),
        "unparsable request": await server.head_of(b"NOT HTTP AT ALL\r\n\r\n"),
    }
    statuses = {kind: status.split(" ")[1] for kind, (status, _) in answers.items()}
    assert statuses == {
        "page": "200",
        "sign-in page": "200",
        "API": "200",
        "API refusal": "401",
        "static file": "200",
        "404": "404",
        "status": "503",  # Asterisk is down
        "metrics": "200",
        "liveness": "200",
        "websocket upgrade": "101",
        "unparsable request": "400",
    }
    leaks = {kind: head["server"] for kind, (_, head) in answers.items() if "server" in head}
    assert leaks == {}


@pytest.mark.asyncio
async def test_answers_with_personal_data_are_not_cached(server: Server) -> None:
    token = await _token(server)
    customer = await _customer(server, token)
    cookie = await _session_cookie(server)
    private = {
        "customer page": await server.get(f"/ui/customers/{customer}", f"Cookie: {cookie}\r\n"),
        "desktop": await server.get("/ui/desktop", f"Cookie: {cookie}\r\n"),
        "customer over the API": await server.get(
            f"/api/customers/{customer}", f"Authorization: Bearer {token}\r\n"
        ),
        "search over the API": await server.get(
            "/api/customers?q=Ada", f"Authorization: Bearer {token}\r\n"
        ),
        "live model": await server.get("/live", f"Authorization: Bearer {token}\r\n"),
    }
    for kind, (status, head) in private.items():
        assert status.split(" ")[1] == "200", (kind, status)
        assert head.get("cache-control") == "no-store", kind
        assert head.get("x-content-type-options") == "nosniff", kind
        assert head.get("x-frame-options") == "DENY", kind
        assert head.get("referrer-policy") in {"no-referrer", "same-origin"}, kind
    page = private["customer page"][1]
    assert "frame-ancestors 'none'" in page["content-security-policy"]  # the UI's own, kept
    _, api = private["customer over the API"]
    assert api["referrer-policy"] == "no-referrer"
    _, static = await server.get("/ui/static/common.js")
    assert "cache-control" not in static  # scripts may be cached: no personal data in them
    assert static["x-content-type-options"] == "nosniff"


@pytest.mark.asyncio
async def test_headers_that_trickle_are_cut_off_while_others_are_served(server: Server) -> None:
    reader, writer = await server.connect()
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")

    async def trickle() -> None:  # a byte at a time, each well within any per-read timeout
        for _ in range(int(HEADERS_WITHIN * 20)):
            await asyncio.sleep(0.1)
            writer.write(b"a")

    dripping = asyncio.create_task(trickle())
    try:
        async with aiohttp.ClientSession() as http:  # meanwhile the server answers others
            for _ in range(3):
                async with http.get(f"{server.base}/healthz") as response:
                    assert response.status == 200
        said, _ = await _closed(reader, HEADERS_WITHIN + SLACK)
    finally:
        dripping.cancel()
        writer.close()
    lasted = time.monotonic() - started
    assert said.startswith(b"HTTP/1.1 408 ")
    assert HEADERS_WITHIN * 0.9 <= lasted < HEADERS_WITHIN + SLACK


@pytest.mark.asyncio
async def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    reader, writer = await server.connect()
    try:
        said, lasted = await _closed(reader, HEADERS_WITHIN + SLACK)
    finally:
        writer.close()
    assert said == b""
    assert lasted >= HEADERS_WITHIN * 0.9


@pytest.mark.asyncio
async def test_a_body_that_trickles_is_refused_with_408(server: Server) -> None:
    reader, writer = await server.connect()
    try:
        writer.write(
            b"POST /api/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"username": "ann", '
        )
        said, lasted = await _closed(reader, BODY_WITHIN + SLACK)
    finally:
        writer.close()
    assert said.startswith(b"HTTP/1.1 408 "), said[:200]
    assert b"server:" not in said.lower()
    assert lasted >= BODY_WITHIN * 0.9
    async with (  # the server is none the worse for it
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.base}/api/tokens", json={"username": "ann", "password": PASSWORD}
        ) as response,
    ):
        assert response.status == 201


@pytest.mark.asyncio
async def test_a_websocket_outlives_every_read_timeout(server: Server) -> None:
    cookie = await _session_cookie(server)
    port = server.settings.http.port
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            f"{server.base}/ui/ws?view=desk",
            headers={"Origin": f"http://127.0.0.1:{port}", "Cookie": cookie},
        ) as ws,
    ):
        quiet_until = time.monotonic() + HEADERS_WITHIN + BODY_WITHIN + 1.0
        while (left := quiet_until - time.monotonic()) > 0:  # the socket must not be closed
            try:
                message = await ws.receive(timeout=left)
            except TimeoutError:
                break
            assert message.type == aiohttp.WSMsgType.TEXT, message
        await ws.send_str("not json")
        while True:  # skip the desk's own updates until the answer
            message = await ws.receive(timeout=10)
            assert message.type == aiohttp.WSMsgType.TEXT, message
            if message.json().get("type") == "error":
                break
        assert message.json()["message"] == "not a message"


@pytest.mark.asyncio
async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    server: Server,
) -> None:
    reader, writer = await server.connect()
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        said, lasted = await _closed(reader, IDLE_WITHIN + SLACK)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"HTTP/1.1" not in said  # the body of /healthz, then a silent close
    assert lasted >= IDLE_WITHIN * 0.9  # idle is not slow: the header clock waits for a byte


@pytest.mark.asyncio
async def test_half_a_request_behind_a_whole_one_is_closed_like_an_idle_connection(
    server: Server,
) -> None:
    reader, writer = await server.connect()
    try:
        writer.write(  # pipelined: a whole request, then the start of the next one, then silence
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a"
        )
        said, _ = await _closed(reader, IDLE_WITHIN + SLACK)
    finally:
        writer.close()
    assert said.startswith(b"HTTP/1.1 200 OK\r\n")
    assert said.count(b"HTTP/1.1 ") == 1
