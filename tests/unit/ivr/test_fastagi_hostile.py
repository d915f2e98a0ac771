"""The FastAGI server and the IVR over it, against real recorded requests and a hostile peer.

The test plays Asterisk's side over a real socket; the route runs the real IVR engine over
:class:`FastAgiChannel` on the shipped ``main`` flow, with CRM lookups that know nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import yaml

from cti_server.asterisk.data import data_dir
from cti_server.config import AgiSettings
from cti_server.ivr.channels.fastagi import FastAgiChannel
from cti_server.ivr.engine import Customer, IvrEngine, IvrResult, PinCheck
from cti_server.ivr.flow import Flow, load_flow
from cti_server.telephony.fastagi import AgiSession, FastAgiServer
from tests.support.agi_peer import KEY, REQUEST, connection, read_until_closed, send_request
from tests.support.agi_sessions import env_lines, recorded_sessions
from tests.support.ports import free_port
from tests.support.waiting import poll_until

TIMEOUT = 5.0
HEADER_TIMEOUT = 1.0
FLOWS = data_dir("ivr_flows")
# What the IVR sends for a caller nobody knows, up to the first prompt that can be interrupted.
FIRST_COMMANDS = [
    'SET VARIABLE CHANNEL(language) "en"',
    'GET OPTION cti/choose_language "0123456789*#" 3000',
    "GET DATA cti/enter_account 8000 9",
    'STREAM FILE cti/welcome ""',
    'GET OPTION cti/main_menu "0123456789*#" 4000',
]
OK = b"200 result=0\n"

Reply = Callable[[str], bytes | None]


class IvrRoute:
    """The ``inbound`` route: the real engine over FastAgiChannel; results and envs recorded."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.envs: list[dict[str, str]] = []
        self.asked: list[str] = []
        self.results: asyncio.Queue[IvrResult] = asyncio.Queue()
        self.engine = IvrEngine(self._nobody, self._nobody)

    async def _nobody(self, key: str) -> Customer | None:
        self.asked.append(key)
        return None

    async def __call__(self, session: AgiSession) -> None:
        self.envs.append(session.env)
        channel = FastAgiChannel(session)
        caller = session.env.get("agi_callerid", "")
        self.results.put_nowait(await self.engine.run(self.flow, channel, caller))

    async def result(self) -> IvrResult:
        return await asyncio.wait_for(self.results.get(), TIMEOUT)


@pytest.fixture(scope="module")
def main_flow() -> Flow:
    return load_flow(FLOWS / "main.yaml", FLOWS / "prompts")


@asynccontextmanager
async def ivr_server(
    flow: Flow, **settings: object
) -> AsyncIterator[tuple[FastAgiServer, int, IvrRoute]]:
    port = free_port()
    server = FastAgiServer(
        AgiSettings.model_validate(
            {"host": "127.0.0.1", "port": port, "header_timeout": HEADER_TIMEOUT, **settings}
        ),
        key=KEY,
    )
    route = IvrRoute(flow)
    server.add_route("inbound", route)
    await server.start()
    try:
        yield server, port, route
    finally:
        await server.stop()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close abruptly: the peer gets a TCP RST, not a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def play_asterisk(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: Reply
) -> list[str]:
    """Answer every command with ``reply(command)`` until the server closes (or reply is None)."""
    commands: list[str] = []
    while True:
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        if not line:
            return commands
        command = line.decode().rstrip("\n")
        commands.append(command)
        answer = reply(command)
        if answer is None:
            return commands
        writer.write(answer)
        await writer.drain()


def answer_ok(_command: str) -> bytes:
    return OK


async def wait_idle(server: FastAgiServer) -> None:
    async def _idle() -> bool:
        return not server.status()["active"]

    await poll_until(_idle, TIMEOUT, interval=0.01, what=f"sessions idle ({server.status()})")


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records at ERROR or above, or carrying a traceback."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info
    ]


# --- (a) recorded AGI environment blocks ------------------------------------------------------


@pytest.mark.parametrize("path", recorded_sessions())
@pytest.mark.asyncio
async def test_recorded_environment_blocks_are_accepted(
    main_flow: Flow, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [ln for ln in env_lines(path) if not ln.startswith("agi_network_script:")]
    assert len(lines) >= 20, f"{path.name}: only {lines}"
    expected = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    request = "\n".join([*lines, "agi_network_script: inbound"]) + "\n\n"
    async with (
        ivr_server(main_flow) as (server, port, route),
        connection(port) as (reader, writer),
    ):
        await send_request(reader, writer, request.encode())
        commands = await play_asterisk(reader, writer, answer_ok)
        result = await route.result()
        await wait_idle(server)

    assert route.envs == [{**expected, "agi_network_script": "inbound"}]
    assert commands[: len(FIRST_COMMANDS)] == FIRST_COMMANDS
    # no language chosen; GET DATA answered "0": account "0", unknown; the menu times out
    # three times: operator. The caller ID is asked again before the account number.
    assert route.asked == [expected["agi_callerid"], expected["agi_callerid"], "0"]
    assert result.outcome == "transfer"
    assert result.attributes["intent"] == "operator"
    assert server.requests == 1
    assert errors(caplog) == []


# --- (b) a 10 MB header ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_ten_megabyte_header_is_refused_and_the_server_stays_responsive(
    main_flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    line = b"agi_arg_1: " + b"x" * 1000 + b"\n"
    huge = b"agi_network_script: inbound\n" + line * (10 * 1024 * 1024 // len(line)) + b"\n"
    assert len(huge) >= 10_000_000
    async with ivr_server(main_flow) as (server, port, route):
        started = time.monotonic()
        async with connection(port) as (reader, writer):
            writer.write(huge)
            with contextlib.suppress(ConnectionError):
                await asyncio.wait_for(writer.drain(), TIMEOUT)
            assert await read_until_closed(reader, TIMEOUT) == b""
        assert time.monotonic() - started < HEADER_TIMEOUT  # refused by size, not by time
        await wait_idle(server)
        assert server.requests == 0
        assert route.envs == []

        async with connection(port) as (reader, writer):
            await send_request(reader, writer, REQUEST)
            commands = await play_asterisk(reader, writer, answer_ok)
        assert commands[: len(FIRST_COMMANDS)] == FIRST_COMMANDS
        assert (await route.result()).outcome == "transfer"
        assert server.requests == 1
    assert errors(caplog) == []


# --- (c) a peer trickling one byte every 0.2 s ------------------------------------------------


@pytest.mark.asyncio
async def test_trickling_peer_is_closed_after_the_header_timeout(main_flow: Flow) -> None:
    async with (
        ivr_server(main_flow) as (server, port, route),
        connection(port) as (reader, writer),
    ):
        started = time.monotonic()
        deadline = started + HEADER_TIMEOUT + 2.0
        closed = False
        sent = 0
        while not closed:
            assert time.monotonic() < deadline, f"still open after {sent} bytes"
            try:
                writer.write(REQUEST[sent : sent + 1])
                await writer.drain()
            except ConnectionError:
                break
            sent += 1
            # the pace of the trickle, and the watch for the server's close
            try:
                closed = await asyncio.wait_for(reader.read(1), 0.2) == b""
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed = True
        elapsed = time.monotonic() - started
        assert HEADER_TIMEOUT * 0.8 <= elapsed < HEADER_TIMEOUT + 1.0
        assert sent < len(REQUEST)
        await wait_idle(server)
    assert route.envs == []
    assert server.requests == 0


# --- (d) a thousand connections at once --------------------------------------------------------


@pytest.mark.asyncio
async def test_thousand_connections_at_once_do_not_hang_or_leak(
    main_flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    connections = 1000
    max_sessions = 50
    async with ivr_server(main_flow, max_sessions=max_sessions) as (server, port, route):
        tasks_before = len(asyncio.all_tasks())
        served: list[asyncio.StreamWriter] = []
        refused: list[asyncio.StreamWriter] = []

        unreachable: list[OSError] = []

        async def call() -> None:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError as exc:  # the kernel's accept queue overflowing: refused, not hung
                unreachable.append(exc)
                return
            try:
                served_now = await send_request(reader, writer, REQUEST)
                first = await reader.readline() if served_now else b""  # the IVR's first step
            except ConnectionError:
                first = b""
            (served if first else refused).append(writer)

        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(call() for _ in range(connections))), 30)
        settled = time.monotonic() - started

        # The served ones hold their slot (the IVR waits for an answer) until everyone has one.
        assert len(served) == max_sessions
        assert len(refused) + len(unreachable) == connections - max_sessions
        assert server.rejected == len(refused)
        assert server.status()["active"] == max_sessions

        for i, writer in enumerate(served):
            if i % 2:
                reset(writer)  # abruptly
            else:
                writer.close()
        for writer in refused:
            writer.close()
        for writer in served + refused:
            with contextlib.suppress(OSError):
                await writer.wait_closed()

        await wait_idle(server)

        async def _no_leaked_task() -> bool:
            return len(asyncio.all_tasks()) <= tasks_before

        await poll_until(_no_leaked_task, TIMEOUT, interval=0.01, what="no task leaked")
        # closed in order or reset, each walk ends recorded as the caller gone
        gone = [route.results.get_nowait() for _ in range(route.results.qsize())]
        assert len(gone) == max_sessions
        assert {r.outcome for r in gone} == {"caller_gone"}
        assert server.requests == max_sessions
    assert settled < 15
    assert errors(caplog) == []


# --- (e) the channel dying mid-step ------------------------------------------------------------


def until_welcome(command: str) -> bytes | None:
    """No language chosen, no account given; silence once the welcome starts."""
    if command.startswith("GET DATA"):
        return b"200 result= (timeout)\n"
    if command.startswith("GET OPTION cti/choose_language"):
        return b"200 result=0 endpos=0\n"
    if command.startswith("STREAM FILE"):
        return None
    return b"200 result=1\n"


UNTIL_WELCOME = FIRST_COMMANDS[:4]
STEPS_TO_WELCOME = ["identify", "choose_language", "identify_account", "opening_hours", "welcome"]


@pytest.mark.parametrize("death", ["hangup", "close"])
@pytest.mark.asyncio
async def test_channel_dying_mid_step_ends_the_walk_as_caller_gone(
    main_flow: Flow, death: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with ivr_server(main_flow) as (server, port, route):
        async with connection(port) as (reader, writer):
            await send_request(reader, writer, REQUEST)
            commands = await play_asterisk(reader, writer, until_welcome)
            if death == "hangup":
                writer.write(b"HANGUP\n")
                await writer.drain()
                assert await read_until_closed(reader, TIMEOUT) == b""
        result = await route.result()
        await wait_idle(server)
    assert commands == UNTIL_WELCOME
    assert result.outcome == "caller_gone"
    assert [r.step for r in result.path] == STEPS_TO_WELCOME
    assert result.path[2].input == "account: none given"
    assert errors(caplog) == []


@pytest.mark.asyncio
async def test_connection_reset_mid_step_ends_the_session_quietly(
    main_flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    async with ivr_server(main_flow) as (server, port, _route):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await send_request(reader, writer, REQUEST)
        assert await play_asterisk(reader, writer, until_welcome) == UNTIL_WELCOME
        reset(writer)
        await wait_idle(server)
    assert errors(caplog) == []


@pytest.mark.asyncio
async def test_connection_reset_mid_step_is_the_caller_gone(main_flow: Flow) -> None:
    async with ivr_server(main_flow) as (server, port, route):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await send_request(reader, writer, REQUEST)
        await play_asterisk(reader, writer, until_welcome)
        reset(writer)
        await wait_idle(server)
        assert not route.results.empty(), "the route ended without an IVR result"
        result = route.results.get_nowait()
    assert result.outcome == "caller_gone"
    assert [r.step for r in result.path] == STEPS_TO_WELCOME


# --- (f) "200 result=-1": could not play, or hung up ------------------------------------------


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(b"200 result=-1\n", id="minus-one"),
        pytest.param(
            b"511 Command Not Permitted on a dead channel or intercept routine\n", id="511"
        ),
        pytest.param(b"HANGUP\n", id="hangup"),
    ],
)
@pytest.mark.asyncio
async def test_minus_one_and_failing_channel_status_is_the_caller_gone(
    main_flow: Flow, status: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(command: str) -> bytes:
        if command == "CHANNEL STATUS":
            return status
        if command.startswith("SET VARIABLE"):
            return b"200 result=1\n"
        return b"200 result=-1\n"

    async with (
        ivr_server(main_flow) as (server, port, route),
        connection(port) as (reader, writer),
    ):
        await send_request(reader, writer, REQUEST)
        commands = await play_asterisk(reader, writer, failing)
        result = await route.result()
        await wait_idle(server)
    assert commands == [FIRST_COMMANDS[0], FIRST_COMMANDS[1], "CHANNEL STATUS"]
    assert result.outcome == "caller_gone"
    assert [r.step for r in result.path] == ["identify", "choose_language"]
    assert errors(caplog) == []


@pytest.mark.asyncio
async def test_minus_one_with_the_channel_still_up_goes_on(
    main_flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    def cannot_play(command: str) -> bytes:
        if command == "CHANNEL STATUS":
            return b"200 result=6\n"  # AST_STATE_UP
        if command.startswith(("STREAM FILE", "GET OPTION")):
            return b"200 result=-1\n"
        return OK

    async with (
        ivr_server(main_flow) as (_server, port, route),
        connection(port) as (reader, writer),
    ):
        await send_request(reader, writer, REQUEST)
        commands = await play_asterisk(reader, writer, cannot_play)
        result = await route.result()
    assert (
        commands.count("CHANNEL STATUS")
        == commands.count('GET OPTION cti/main_menu "0123456789*#" 4000') + 2  # language, welcome
    )
    assert result.outcome == "transfer"
    assert result.attributes["intent"] == "operator"
    assert errors(caplog) == []


# --- answers no real Asterisk should send, or sends in a form the session mishandles -----------

USAGE_520 = (
    b"520-Invalid command syntax.  Proper usage follows:\n"
    b" -= Info about AGI 'get data' =-\n"
    b"\n"
    b"[Synopsis]\n"
    b"Prompts for DTMF on a channel\n"
    b"\n"
    b"[Syntax]\n"
    b"GET DATA FILE [TIMEOUT] [MAXDIGITS]\n"
    b"520 End of proper usage.\n"
)


@pytest.mark.parametrize(
    ("target", "answer"),
    [
        pytest.param(
            "GET DATA",
            USAGE_520,
            id="multi-line-520",
        ),
        pytest.param(
            "GET DATA",
            b"garbage\n",
            id="not-a-status-line",
        ),
        pytest.param(
            "STREAM FILE",
            b"200 result=1114112\n",
            id="key-code-out-of-range",
        ),
        pytest.param(
            "GET DATA",
            b"200 result=" + b"1" * 20_000 + b"\n",
            id="answer-over-the-stream-limit",
        ),
    ],
)
@pytest.mark.asyncio
async def test_malformed_answers_do_not_escape_the_server(
    main_flow: Flow, target: str, answer: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    sent = False

    def hostile(command: str) -> bytes:
        nonlocal sent
        if command.startswith(target) and not sent:
            sent = True
            return answer
        return OK

    async with (
        ivr_server(main_flow) as (server, port, route),
        connection(port) as (reader, writer),
    ):
        await send_request(reader, writer, REQUEST)
        with contextlib.suppress(ConnectionError):
            await play_asterisk(reader, writer, hostile)
        await wait_idle(server)
        assert sent
        assert errors(caplog) == []
        assert not route.results.empty(), "the route ended without an IVR result"


# --- (g) 100 digits and a #* flood -------------------------------------------------------------


def hostile_caller() -> Reply:
    """No language chosen; 100 digits for the account; # and * at every offer of the menu."""
    menu_keys = itertools.cycle([b"35", b"42"])  # '#', '*'

    def reply(command: str) -> bytes:
        if command.startswith("GET DATA"):
            return b"200 result=" + b"7" * 100 + b"\n"
        if command.startswith("GET OPTION cti/main_menu"):
            return b"200 result=" + next(menu_keys) + b" endpos=0\n"
        return b"200 result=0 endpos=0\n"

    return reply


@pytest.mark.asyncio
async def test_a_100_digit_account_and_a_hash_star_flood_lead_to_the_operator(
    main_flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        ivr_server(main_flow) as (server, port, route),
        connection(port) as (reader, writer),
    ):
        await send_request(reader, writer, REQUEST)
        commands = await play_asterisk(reader, writer, hostile_caller())
        result = await route.result()
        await wait_idle(server)
    # the 100 digits never reach the CRM: only the caller ID was asked
    assert route.asked == ["+8613800138000", "+8613800138000"]
    by_step = {r.step: r for r in result.path}
    assert by_step["identify_account"].input == "account: 100 characters, refused"
    assert result.inputs == {"account": ""}
    # the menu is offered its 3 times, each # or * refused with the invalid prompt
    assert by_step["menu"].input == "# * #"
    assert sum(c.startswith("GET OPTION cti/main_menu") for c in commands) == 3
    assert sum(c.startswith("STREAM FILE cti/invalid") for c in commands) == 3
    assert result.attributes["intent"] == "operator"
    assert errors(caplog) == []


# --- (h) secrets stay out of the logs ----------------------------------------------------------

PIN, CODE = "4711", "90210"
SECRET_FLOW = {
    "name": "secret",
    "languages": ["en"],
    "start": "identify",
    "steps": {
        "identify": {
            "type": "identify",
            "pin_prompt": "enter_pin",
            "pin_invalid_prompt": "wrong_pin",
            "found": "code",
            "not_found": "code",
            "not_verified": "code",
        },
        "code": {
            "type": "collect",
            "prompt": "enter_code",
            "into": "code",
            "validate": "pin",
            "secret": True,
            "min_digits": 4,
            "max_digits": 6,
            "next": "done",
            "on_fail": "done",
        },
        "done": {"type": "transfer", "queue": "support"},
    },
}


@pytest.mark.asyncio
async def test_secrets_typed_over_fastagi_never_reach_a_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "secret.yaml"
    path.write_text(yaml.safe_dump(SECRET_FLOW), encoding="utf-8")
    flow = load_flow(path)
    holder = Customer(customer_id=5, name="Ann", tier="gold", language="en", has_pin=True)
    checked: list[str] = []

    async def by_caller_id(number: str) -> Customer | None:
        return holder

    async def verify_pin(customer: Customer, pin: str) -> PinCheck:
        checked.append(pin)
        return PinCheck.MATCH if pin == PIN else PinCheck.WRONG

    answers = iter(["-1", "1234", PIN, CODE])  # a failed GET DATA, a wrong PIN, the PIN, code

    def asterisk(command: str) -> bytes:
        if command.startswith("GET DATA"):
            answer = next(answers)
            return f"200 result={answer}\n".encode() if answer != "-1" else b"200 result=-1\n"
        return b"200 result=1\n"  # CHANNEL STATUS and the rest: still there

    async with ivr_server(flow) as (server, port, route):
        route.engine = IvrEngine(by_caller_id, by_caller_id, verify_pin=verify_pin)
        async with connection(port) as (reader, writer):
            await send_request(reader, writer, REQUEST)
            commands = await play_asterisk(reader, writer, asterisk)
            result = await route.result()
        await wait_idle(server)

    assert checked == ["1234", PIN]  # the failed read is no try at the CRM
    assert result.customer == dataclasses.replace(holder, verified=True)
    assert result.secrets == {"code": CODE}
    assert result.path[0].input == "caller id, pin verified"
    assert result.path[1].input == "***"
    assert any("GET DATA failed" in r.getMessage() for r in caplog.records)  # logging works
    for secret in (PIN, CODE, "1234"):
        assert secret not in caplog.text
        assert secret not in repr((result.path, result.inputs, result.attributes))
        assert not any(secret in c for c in commands)
