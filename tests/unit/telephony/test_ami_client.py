"""AmiClient against a fake Asterisk that plays the server side of the AMI wire."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from panoramisk.message import Message
from prometheus_client import generate_latest

from cti_server.config import AmiSettings
from cti_server.health.metrics import CtiCollector, make_registry
from cti_server.telephony import ami_client
from cti_server.telephony.ami_client import AmiClient, AmiDisconnected, _AmiProtocol
from cti_server.tracker.tracker import Tracker
from tests.support.ports import free_port

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
EOM = b"\r\n\r\n"
NAME = "José 张伟"
TIMEOUT = 2.0


class FakeConnection:
    """One client connection seen from the Asterisk side."""

    def __init__(
        self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.index = index
        self.reader = reader
        self.writer = writer
        self.actions: list[dict[str, str]] = []

    async def read_action(self) -> dict[str, str] | None:
        """The next action block, or None when the client closed the connection."""
        try:
            raw = await self.reader.readuntil(EOM)
        except asyncio.IncompleteReadError:
            return None
        action: dict[str, str] = {}
        for line in raw.decode("utf-8").split("\r\n"):
            key, sep, value = line.partition(": ")
            if sep:
                action[key] = value
        self.actions.append(action)
        return action

    async def send(self, text: str) -> None:
        self.writer.write(text.encode("utf-8"))
        await self.writer.drain()

    async def login(self, *, accept: bool = True) -> dict[str, str]:
        action = await self.read_action()
        assert action is not None
        assert action["Action"] == "Login"
        if accept:
            await self.send(
                f"Response: Success\r\nActionID: {action['ActionID']}\r\n"
                "Message: Authentication accepted\r\n\r\n"
            )
        else:
            await self.send(
                f"Response: Error\r\nActionID: {action['ActionID']}\r\n"
                "Message: Authentication failed\r\n\r\n"
            )
        return action

    async def until_closed(self) -> None:
        """Read (and record) actions until the client goes away."""
        while await self.read_action() is not None:
            pass

    def close(self) -> None:
        self.writer.close()


Script = Callable[[FakeConnection], Awaitable[None]]


class FakeAsterisk:
    """A TCP server on 127.0.0.1:0; each connection gets the banner, then runs ``script``."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self.connections: list[FakeConnection] = []
        self.accepted: asyncio.Queue[FakeConnection] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = FakeConnection(len(self.connections), reader, writer)
        self.connections.append(conn)
        self.accepted.put_nowait(conn)
        try:
            writer.write(BANNER)
            await writer.drain()
            await self._script(conn)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


@asynccontextmanager
async def running_client(
    script: Script,
    on_event: Callable[[Message], None] | None = None,
    on_state: Callable[[bool], None] | None = None,
) -> AsyncIterator[tuple[AmiClient, FakeAsterisk]]:
    fake = FakeAsterisk(script)
    port = await fake.start()
    settings = AmiSettings(host="127.0.0.1", port=port, secret="x", reconnect_max_delay=0.2)
    client = AmiClient(settings, on_event=on_event or (lambda _m: None), on_state=on_state)
    runner = asyncio.create_task(client.run())
    try:
        yield client, fake
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        assert runner.done()
        await fake.stop()


async def _next_connection(fake: FakeAsterisk) -> FakeConnection:
    return await asyncio.wait_for(fake.accepted.get(), TIMEOUT)


@pytest.mark.asyncio
async def test_login_then_event_with_utf8_split_across_reads() -> None:
    events: asyncio.Queue[Message] = asyncio.Queue()
    states: list[bool] = []

    async def script(conn: FakeConnection) -> None:
        await conn.login()
        event = (
            "Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/trunk-00000001\r\n"
            f"CallerIDNum: +8613800138000\r\nCallerIDName: {NAME}\r\n"
            "Uniqueid: 1700000000.1\r\n\r\n"
        ).encode()
        for i in range(len(event)):
            conn.writer.write(event[i : i + 1])
            await conn.writer.drain()
            await asyncio.sleep(0)  # let the client read this byte on its own
        await conn.until_closed()

    async with running_client(script, on_event=events.put_nowait, on_state=states.append) as (
        client,
        fake,
    ):
        await client.wait_connected(TIMEOUT)
        assert client.connected
        assert client.status.asterisk_version == "11.0.0"
        event = await asyncio.wait_for(events.get(), TIMEOUT)
        assert event["Event"] == "Newchannel"
        assert event["CallerIDName"] == NAME
        assert event["CallerIDNum"] == "+8613800138000"
        assert event["Uniqueid"] == "1700000000.1"
        assert client.status.events == 1
        login = fake.connections[0].actions[0]
        assert login["Username"] == "cti"
        assert login["Secret"] == "x"
        assert login["ActionID"].startswith("cti-")
        assert states == [True]


@pytest.mark.asyncio
async def test_protocol_keeps_utf8_characters_split_across_reads() -> None:
    """The same, deterministically: every byte is its own ``data_received`` call."""
    received: list[Message] = []
    client = AmiClient(AmiSettings(host="127.0.0.1", port=1, secret="x"), on_event=received.append)
    protocol = _AmiProtocol(client)
    wire = (
        BANNER
        + (
            f"Event: Newchannel\r\nCallerIDName: {NAME}\r\n\r\n"
            f"Event: Hangup\r\nCallerIDName: {NAME[::-1]}\r\n\r\n"
        ).encode()
    )
    for i in range(len(wire)):
        protocol.data_received(wire[i : i + 1])
    assert client.process_queued() == 2
    assert [m["Event"] for m in received] == ["Newchannel", "Hangup"]
    assert received[0]["CallerIDName"] == NAME
    assert received[1]["CallerIDName"] == NAME[::-1]
    assert client.status.asterisk_version == "11.0.0"


@pytest.mark.asyncio
async def test_event_list_action_resolves_to_all_its_messages() -> None:
    events: list[Message] = []

    async def script(conn: FakeConnection) -> None:
        await conn.login()
        action = await conn.read_action()
        assert action is not None
        assert action["Action"] == "QueueStatus"
        aid = action["ActionID"]
        await conn.send(
            f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n"
            "Message: Queue status will follow\r\n\r\n"
            # an unrelated event in the middle of the list goes to on_event
            "Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\n"
            f"Event: QueueParams\r\nActionID: {aid}\r\nQueue: {action['Queue']}\r\n"
            "Calls: 0\r\n\r\n"
        )
        await conn.send(
            f"Event: QueueMember\r\nActionID: {aid}\r\nQueue: support\r\n"
            "Name: Local/1001@cti-sim-agent/n\r\n\r\n"
            f"Event: QueueStatusComplete\r\nActionID: {aid}\r\nEventList: Complete\r\n"
            "ListItems: 2\r\n\r\n"
        )
        await conn.until_closed()

    async with running_client(script, on_event=events.append) as (client, _fake):
        await client.wait_connected(TIMEOUT)
        reply = await client.send_action("QueueStatus", {"Queue": "support"}, timeout=TIMEOUT)
        assert isinstance(reply, list)
        assert len(reply) == 4
        assert reply[0]["Response"] == "Success"
        assert [m.get("Event") for m in reply[1:]] == [
            "QueueParams",
            "QueueMember",
            "QueueStatusComplete",
        ]
        assert [m["Event"] for m in events] == ["FullyBooted"]


@pytest.mark.asyncio
async def test_single_response_action_resolves_to_one_message() -> None:
    async def script(conn: FakeConnection) -> None:
        await conn.login()
        action = await conn.read_action()
        assert action is not None
        # a QueueAdd reply: success text that panoramisk would mistake for a list
        await conn.send(
            f"Response: Success\r\nActionID: {action['ActionID']}\r\n"
            "Message: Added interface to queue\r\n\r\n"
        )
        await conn.until_closed()

    async with running_client(script) as (client, _fake):
        await client.wait_connected(TIMEOUT)
        reply = await client.send_action(
            "QueueAdd",
            {"Queue": "support", "Interface": "Local/1001@cti-sim-agent/n"},
            timeout=TIMEOUT,
        )
        assert isinstance(reply, Message)
        assert reply["Message"] == "Added interface to queue"


@pytest.mark.asyncio
async def test_pending_action_fails_on_disconnect_and_is_not_resent() -> None:
    originate_seen = asyncio.Event()

    async def script(conn: FakeConnection) -> None:
        await conn.login()
        if conn.index == 0:
            action = await conn.read_action()
            assert action is not None
            originate_seen.set()
            conn.close()  # the link drops before Asterisk replies
            return
        while (action := await conn.read_action()) is not None:
            if action["Action"] == "Ping":
                await conn.send(
                    f"Response: Success\r\nActionID: {action['ActionID']}\r\nPing: Pong\r\n\r\n"
                )

    async with running_client(script) as (client, fake):
        await client.wait_connected(TIMEOUT)
        with pytest.raises(AmiDisconnected):
            await client.send_action(
                "Originate",
                {"Channel": "Local/s@cti-sim-caller", "Context": "cti-inbound", "Exten": "100"},
                timeout=TIMEOUT,
            )
        assert originate_seen.is_set()
        await client.wait_connected(TIMEOUT)
        # A Ping after the reconnect: anything re-sent would have reached the server before it.
        pong = await client.send_action("Ping", timeout=TIMEOUT)
        assert isinstance(pong, Message)
        assert pong["Ping"] == "Pong"
        assert len(fake.connections) == 2
        assert [a["Action"] for a in fake.connections[0].actions] == ["Login", "Originate"]
        assert [a["Action"] for a in fake.connections[1].actions] == ["Login", "Ping"]
        assert client.status.reconnects >= 1


@pytest.mark.asyncio
async def test_action_while_disconnected_fails_at_once() -> None:
    async def script(conn: FakeConnection) -> None:
        await conn.login(accept=False)
        await conn.until_closed()

    async with running_client(script) as (client, _fake):
        with pytest.raises(AmiDisconnected):
            await client.send_action("Ping", timeout=TIMEOUT)


@pytest.mark.asyncio
async def test_login_refused_stays_disconnected_and_says_why() -> None:
    states: list[bool] = []

    async def script(conn: FakeConnection) -> None:
        await conn.login(accept=False)
        await conn.until_closed()

    async with running_client(script, on_state=states.append) as (client, fake):
        await _next_connection(fake)
        # The client tries again only after it has recorded why the first attempt failed.
        await _next_connection(fake)
        assert not client.connected
        assert not client.status.connected
        assert "login refused" in client.status.last_error
        assert "Authentication failed" in client.status.last_error
        assert states == []
        assert client.status.as_dict()["connected"] is False


class _RecordingAsyncio:
    """Stands in for the ``asyncio`` module inside ami_client: records the reconnect delays."""

    def __init__(self, wanted: int) -> None:
        self.delays: list[float] = []
        self.enough = asyncio.Event()
        self._wanted = wanted

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float) -> None:
        if delay < 1.0:  # the reconnect backoff, not the ping interval
            self.delays.append(delay)
            if len(self.delays) >= self._wanted:
                self.enough.set()
        await asyncio.sleep(delay)


@pytest.mark.asyncio
async def test_backoff_resets_after_a_successful_login(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _RecordingAsyncio(wanted=3)
    monkeypatch.setattr(ami_client, "asyncio", recorder)
    monkeypatch.setattr(random, "random", lambda: 0.5)  # no jitter: delay * 1.0

    async def script(conn: FakeConnection) -> None:
        await conn.login()
        conn.close()  # every session logs in, then drops

    async with running_client(script):
        await asyncio.wait_for(recorder.enough.wait(), TIMEOUT)
    assert recorder.delays[:3] == [0.1, 0.1, 0.1]


def _events(names: list[str]) -> str:
    return "".join(f"Event: {name}\r\nUniqueid: 1.{i}\r\n\r\n" for i, name in enumerate(names))


@pytest.mark.asyncio
async def test_a_slow_consumer_does_not_stop_the_reader() -> None:
    """Asterisk drops a client that stops reading: the whole burst is read while the handler
    is still busy with its start, and every event is then handled, in order."""
    names = [f"E{i}" for i in range(2000)]
    handled: list[str] = []
    handled_when_last_read: list[int] = []
    all_handled = asyncio.Event()

    def slow_handler(message: Message) -> None:
        time.sleep(0.0003)  # a slow tracker / bus / journal
        handled.append(message["Event"])
        if len(handled) == len(names):
            all_handled.set()

    async def script(conn: FakeConnection) -> None:
        await conn.login()
        await conn.send(_events(names))
        await conn.until_closed()

    async with running_client(script, on_event=slow_handler) as (client, _fake):
        receive = client.receive

        def watch(message: Message) -> bool:
            if message.get("Event") == names[-1]:
                handled_when_last_read.append(len(handled))
            return receive(message)

        client.receive = watch  # type: ignore[method-assign]
        await asyncio.wait_for(all_handled.wait(), 30)
    assert handled == names
    [handled_then] = handled_when_last_read
    assert handled_then < len(names) // 2
    assert client.inbox.stats.peak > len(names) // 2
    assert client.inbox.stats.overflows == 0


@pytest.mark.asyncio
async def test_inbox_overflow_is_counted_logged_and_resynced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A burst beyond the inbox drops the link (nothing lost unnoticed), what was read is still
    handled, and the reconnect runs the after-login resync again."""
    handled: list[str] = []
    logins: list[int] = []
    first_resync_done = asyncio.Event()
    second_login = asyncio.Event()

    async def script(conn: FakeConnection) -> None:
        await conn.login()
        if conn.index == 0:
            await first_resync_done.wait()
            await conn.send(_events([f"E{i}" for i in range(40)]))  # one read: 40 > 10
        await conn.until_closed()

    fake = FakeAsterisk(script)
    port = await fake.start()
    settings = AmiSettings(host="127.0.0.1", port=port, secret="x", inbox_size=10)

    async def after_login() -> None:
        logins.append(len(handled))
        first_resync_done.set()
        if len(logins) == 2:
            second_login.set()

    client = AmiClient(
        settings, on_event=lambda m: handled.append(m["Event"]), on_login=after_login
    )
    runner = asyncio.create_task(client.run())
    try:
        await _next_connection(fake)
        await _next_connection(fake)  # the first link was dropped: a second one
        await asyncio.wait_for(second_login.wait(), 10)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await fake.stop()
    assert client.inbox.stats.overflows == 1
    assert client.inbox.stats.behind == 1  # the high-water mark was passed, said once
    assert handled == [f"E{i}" for i in range(10)]  # what fitted was handled, in order
    assert logins == [0, 10]  # the second login (its resync) after the backlog was handled
    messages = [r.getMessage() for r in caplog.records]
    assert sum("dropping the link" in m for m in messages) == 1
    assert sum("behind reading" in m for m in messages) == 1


@pytest.mark.asyncio
async def test_replies_and_events_are_handled_in_the_order_asterisk_sent_them() -> None:
    """An Originate's reply is matched to it, after the events sent before it and before the
    ones sent after it (a reply never overtakes the state it follows)."""
    seen: list[str] = []

    async def script(conn: FakeConnection) -> None:
        await conn.login()
        action = await conn.read_action()
        assert action is not None
        await conn.send(
            _events(["Before1", "Before2"])
            + f"Response: Success\r\nActionID: {action['ActionID']}\r\n"
            "Message: Originate successfully queued\r\n\r\n" + _events(["After"])
        )
        await conn.until_closed()

    async with running_client(script, on_event=lambda m: seen.append(m["Event"])) as (
        client,
        _fake,
    ):
        await client.wait_connected(TIMEOUT)
        handle = client.handle_message

        def log_replies(message: Message) -> None:
            if "Response" in message:
                seen.append(f"reply:{message['Message']}")
            handle(message)

        client.handle_message = log_replies  # type: ignore[method-assign]
        reply = await client.send_action(
            "Originate",
            {"Channel": "Local/s@cti-sim-caller", "Context": "cti-inbound", "Exten": "100"},
            timeout=TIMEOUT,
        )
        assert isinstance(reply, Message)
        assert reply["Message"] == "Originate successfully queued"
        await asyncio.wait_for(client.inbox.empty.wait(), TIMEOUT)
    assert seen == ["Before1", "Before2", "reply:Originate successfully queued", "After"]


@pytest.mark.asyncio
async def test_metrics_show_how_far_processing_is_behind() -> None:
    """What an operator graphs: depth now, the peak, the limit, and each overflow."""
    client = AmiClient(
        AmiSettings(host="127.0.0.1", port=1, secret="x", inbox_size=10), on_event=lambda _m: None
    )
    protocol = _AmiProtocol(client)
    protocol.data_received(BANNER + _events([f"E{i}" for i in range(6)]).encode())
    client.process_queued(2)

    class _Stub:
        last_lag = 0.0
        stalls = 0

        def status(self) -> dict[str, int]:
            return {"spooled": 0, "written": 0, "dropped": 0}

    stub: Any = _Stub()
    collector = CtiCollector(Tracker(lambda _e: None), [client], stub, stub, stub)
    text = generate_latest(make_registry(collector)).decode()
    assert 'cti_ami_inbox_depth{node="pbx1"} 4.0' in text
    assert 'cti_ami_inbox_peak{node="pbx1"} 6.0' in text
    assert 'cti_ami_inbox_capacity{node="pbx1"} 10.0' in text
    assert 'cti_ami_inbox_behind_total{node="pbx1"} 1.0' in text
    assert 'cti_ami_inbox_overflows_total{node="pbx1"} 0.0' in text


@pytest.mark.asyncio
async def test_run_ends_when_cancelled_at_any_moment_of_a_refused_connect() -> None:
    """`cti serve` hung for ever at start on Python 3.11 when a port was taken: stopping the AMI
    link met a connect that had just been refused, the cancellation was taken for that error and
    the link went on reconnecting. Cancelled at each step of an attempt, the link ends."""
    settings = AmiSettings(host="127.0.0.1", port=free_port(), secret="x", reconnect_max_delay=0.2)
    for steps in range(12):
        client = AmiClient(settings, on_event=lambda _m: None)
        runner = asyncio.create_task(client.run())
        for _ in range(steps):
            await asyncio.sleep(0)
        runner.cancel()
        done, _ = await asyncio.wait({runner}, timeout=TIMEOUT)
        assert runner in done, f"cancelled after {steps} steps, the link went on reconnecting"
        assert runner.cancelled()
