"""FastAGI server: bounded request headers, allowed peers, routing, safe commands."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from cti_server.config import AgiSettings
from cti_server.telephony.fastagi import (
    AgiError,
    AgiHangup,
    AgiSession,
    FastAgiServer,
    parse_agi_env,
)
from tests.support.agi_peer import KEY, REQUEST, connection, read_until_closed, send_request
from tests.support.ports import free_port

TIMEOUT = 2.0
HEADER_TIMEOUT = 0.5
HEADER_MAX = 2048


class Recorder:
    """A route handler that records every session it gets."""

    def __init__(self) -> None:
        self.sessions: asyncio.Queue[AgiSession] = asyncio.Queue()
        self.calls = 0

    async def __call__(self, session: AgiSession) -> None:
        self.calls += 1
        self.sessions.put_nowait(session)


@asynccontextmanager
async def agi_server(**settings: object) -> AsyncIterator[tuple[FastAgiServer, int]]:
    port = free_port()
    server = FastAgiServer(
        AgiSettings.model_validate(
            {
                "host": "127.0.0.1",
                "port": port,
                "header_timeout": HEADER_TIMEOUT,
                "header_max_bytes": HEADER_MAX,
                **settings,
            }
        ),
        key=KEY,
    )
    await server.start()
    try:
        yield server, port
    finally:
        await server.stop()


@pytest.mark.asyncio
async def test_peer_closing_mid_header_does_not_make_the_server_spin() -> None:
    handler = Recorder()
    async with agi_server() as (server, port), connection(port) as (reader, writer):
        server.add_route("inbound", handler)
        cpu_before = time.process_time()
        wall_before = time.monotonic()
        writer.write(b"agi_network: yes\n")
        await writer.drain()
        writer.write_eof()
        assert await read_until_closed(reader, TIMEOUT) == b""
        cpu_used = time.process_time() - cpu_before
        wall = time.monotonic() - wall_before
        assert cpu_used < 0.3, f"server used {cpu_used:.2f} s of CPU on a half-closed peer"
        assert wall < HEADER_TIMEOUT, "closed by the header timeout, not by the peer's EOF"
        assert handler.calls == 0
        assert server.status()["active"] == 0
        assert server.requests == 0


@pytest.mark.asyncio
async def test_header_over_the_size_limit_is_refused() -> None:
    handler = Recorder()
    padding = "".join(f"agi_arg_{i}: {'x' * 60}\n" for i in range(60))
    request = f"agi_network: yes\nagi_network_script: inbound\n{padding}\n".encode()
    assert len(request) > HEADER_MAX
    async with agi_server() as (server, port), connection(port) as (reader, writer):
        server.add_route("inbound", handler)
        started = time.monotonic()
        writer.write(request)
        await writer.drain()
        assert await read_until_closed(reader, TIMEOUT) == b""
        assert time.monotonic() - started < HEADER_TIMEOUT
    assert handler.calls == 0
    assert server.requests == 0


@pytest.mark.asyncio
async def test_unterminated_header_over_the_size_limit_is_refused() -> None:
    handler = Recorder()
    async with agi_server() as (server, port), connection(port) as (reader, writer):
        server.add_route("inbound", handler)
        writer.write(b"agi_network_script: inbound\n" + b"agi_x: " + b"y" * (HEADER_MAX * 3))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        assert await read_until_closed(reader, TIMEOUT) == b""
    assert handler.calls == 0


@pytest.mark.asyncio
async def test_header_just_under_the_limit_is_served() -> None:
    handler = Recorder()
    padding = f"agi_arg_1: {'x' * (HEADER_MAX - len(REQUEST) - 100)}\n".encode()
    request = REQUEST[:-1] + padding + b"\n"
    assert len(request) < HEADER_MAX
    async with agi_server() as (server, port), connection(port) as (reader, writer):
        server.add_route("inbound", handler)
        await send_request(reader, writer, request)
        session = await asyncio.wait_for(handler.sessions.get(), TIMEOUT)
        assert session.env["agi_calleridname"] == "张伟"
        assert await read_until_closed(reader, TIMEOUT) == b""


@pytest.mark.asyncio
async def test_silent_peer_is_closed_after_the_header_timeout() -> None:
    handler = Recorder()
    async with agi_server() as (server, port):
        server.add_route("inbound", handler)
        started = time.monotonic()
        async with connection(port) as (reader, _writer):
            assert await read_until_closed(reader, TIMEOUT) == b""
        elapsed = time.monotonic() - started
        assert HEADER_TIMEOUT * 0.8 <= elapsed < HEADER_TIMEOUT + 1.0
        assert handler.calls == 0


@pytest.mark.asyncio
async def test_request_reaches_its_route_and_commands_are_single_lines() -> None:
    seen: asyncio.Queue[AgiSession] = asyncio.Queue()

    async def inbound(session: AgiSession) -> None:
        seen.put_nowait(session)
        await session.set_variable("X", "a\r\nEXEC Hangup")

    async with agi_server() as (server, port), connection(port) as (reader, writer):
        server.add_route("inbound", inbound)
        await send_request(reader, writer, REQUEST)
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        assert line == b'SET VARIABLE X "a  EXEC Hangup"\n'
        writer.write(b"200 result=1\n")
        await writer.drain()
        # The handler is done: the server closes without sending anything more.
        assert await read_until_closed(reader, TIMEOUT) == b""
        session = seen.get_nowait()
        assert session.script == "inbound"
        assert session.env["agi_calleridname"] == "张伟"
        assert session.env["agi_callerid"] == "+8613800138000"
        assert session.env["agi_uniqueid"] == "1700000000.1"
        assert server.requests == 1


@pytest.mark.asyncio
async def test_quotes_and_backslashes_in_values_are_escaped() -> None:
    async def inbound(session: AgiSession) -> None:
        await session.set_variable("CTI_NOTE", 'say "hi"\\now\x00')

    async with agi_server() as (server, port), connection(port) as (reader, writer):
        server.add_route("inbound", inbound)
        await send_request(reader, writer, REQUEST)
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        assert line == b'SET VARIABLE CTI_NOTE "say \\"hi\\"\\\\now"\n'
        writer.write(b"200 result=1\n")
        await writer.drain()
        assert await read_until_closed(reader, TIMEOUT) == b""


@pytest.mark.asyncio
async def test_command_results_errors_and_hangup() -> None:
    outcomes: asyncio.Queue[object] = asyncio.Queue()

    async def inbound(session: AgiSession) -> None:
        outcomes.put_nowait(await session.get_variable("${CHANNEL(linkedid)}"))
        try:
            await session.command("BOGUS")
        except AgiError as exc:
            outcomes.put_nowait(exc)
        try:
            await session.command("STREAM FILE", "demo-thanks", '""')
        except AgiHangup as exc:
            outcomes.put_nowait(exc)
            raise

    async with agi_server() as (server, port), connection(port) as (reader, writer):
        server.add_route("inbound", inbound)
        await send_request(reader, writer, REQUEST)
        assert await reader.readline() == b'GET FULL VARIABLE "${CHANNEL(linkedid)}"\n'
        writer.write(b"200 result=1 (1700000000.1)\n")
        assert await reader.readline() == b"BOGUS\n"
        writer.write(b"510 Invalid or unknown command\n")
        assert await reader.readline() == b'STREAM FILE demo-thanks ""\n'
        writer.write(b"HANGUP\n")
        await writer.drain()
        assert await read_until_closed(reader, TIMEOUT) == b""
        assert await asyncio.wait_for(outcomes.get(), TIMEOUT) == "1700000000.1"
        assert isinstance(outcomes.get_nowait(), AgiError)
        assert isinstance(outcomes.get_nowait(), AgiHangup)


@pytest.mark.asyncio
async def test_unknown_script_is_closed_without_a_handler() -> None:
    handler = Recorder()
    async with agi_server() as (server, port), connection(port) as (reader, writer):
        server.add_route("inbound", handler)
        writer.write(REQUEST.replace(b"script: inbound", b"script: other"))
        await writer.drain()
        assert await read_until_closed(reader, TIMEOUT) == b""
    assert handler.calls == 0


@pytest.mark.asyncio
async def test_peer_not_allowed_is_refused() -> None:
    handler = Recorder()
    async with (
        agi_server(allowed_peers=("10.9.9.9",)) as (server, port),
        connection(port) as (reader, writer),
    ):
        server.add_route("inbound", handler)
        writer.write(REQUEST)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        assert await read_until_closed(reader, TIMEOUT) == b""
        assert server.rejected == 1
    assert handler.calls == 0
    assert server.requests == 0


def test_duplicate_route_is_refused() -> None:
    server = FastAgiServer(AgiSettings(), key=KEY)
    server.add_route("inbound", Recorder())
    with pytest.raises(ValueError, match="exists already"):
        server.add_route("inbound", Recorder())


def test_parse_agi_env_without_space_after_the_colon() -> None:
    assert parse_agi_env("agi_foo:bar\n") == {"agi_foo": "bar"}


def test_parse_agi_env() -> None:
    env = parse_agi_env(
        "agi_network: yes\nagi_network_script: inbound?lang=zh\nagi_calleridname: José 张伟\n"
        "agi_arg_1: a: b\nnot_agi: x\ngarbage\n\n"
    )
    assert env == {
        "agi_network": "yes",
        "agi_network_script": "inbound?lang=zh",
        "agi_calleridname": "José 张伟",
        "agi_arg_1": "a: b",
    }


@pytest.mark.asyncio
async def test_route_ignores_the_query_string_and_slashes() -> None:
    handler = Recorder()
    request = REQUEST.replace(b"script: inbound", b"script: /inbound/?lang=zh")
    async with agi_server() as (server, port), connection(port) as (reader, writer):
        server.add_route("inbound", handler)
        await send_request(reader, writer, request)
        session = await asyncio.wait_for(handler.sessions.get(), TIMEOUT)
        assert session.script == "inbound"
        assert session.env["agi_network_script"] == "/inbound/?lang=zh"
        assert await read_until_closed(reader, TIMEOUT) == b""


@pytest.mark.parametrize("separator", ["\u2028", "\x85", "\x1c"])
def test_caller_name_cannot_inject_agi_keys(separator: str) -> None:
    name = f"Eve{separator}agi_network_script: admin"
    env = parse_agi_env(f"agi_network_script: inbound\nagi_calleridname: {name}\n\n")
    assert env["agi_network_script"] == "inbound"
    assert env["agi_calleridname"] == name


@pytest.mark.asyncio
async def test_a_caller_name_that_ends_the_header_cannot_answer_our_commands() -> None:
    """Asterisk writes the caller's name into the header raw: a name with a blank line ends the
    header early, and what it carries after it would read as Asterisk's answers (here a forged
    linkedid). The in-step check sees the forged answer and no route runs."""
    ran: list[AgiSession] = []

    async def inbound(session: AgiSession) -> None:
        ran.append(session)

    forged = REQUEST.replace(
        "agi_calleridname: 张伟\n".encode(),
        b"agi_calleridname: x\n\n200 result=1 (1699999999.9)\n",
    )
    async with agi_server() as (server, port), connection(port) as (reader, writer):
        server.add_route("inbound", inbound)
        writer.write(forged)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        assert line.startswith(b"GET FULL VARIABLE")  # answered by the forged line already sent
        assert await read_until_closed(reader, TIMEOUT) == b""
        assert ran == []
        assert server.rejected == 1


@pytest.mark.asyncio
async def test_a_peer_silent_at_the_challenge_is_dropped_at_the_header_deadline() -> None:
    """Asterisk answers the challenge in milliseconds; a local process that connects and stays
    silent must not hold one of the sessions real calls need for a command's 30 s."""
    ran: list[AgiSession] = []

    async def inbound(session: AgiSession) -> None:
        ran.append(session)

    async with agi_server() as (server, port), connection(port) as (reader, writer):
        server.add_route("inbound", inbound)
        writer.write(REQUEST)
        await writer.drain()
        challenge = await asyncio.wait_for(reader.readline(), TIMEOUT)
        assert challenge.startswith(b'GET FULL VARIABLE "${SHA1(${CTI_AGI_KEY}:')
        started = time.monotonic()
        assert await read_until_closed(reader, TIMEOUT) == b""
        assert time.monotonic() - started < HEADER_TIMEOUT + 1.0
        assert ran == []
        assert server.status()["refused_unproven"] == 1
