"""One AMI connection to one Asterisk node: log in first, keep reading, reconnect with backoff.

We use panoramisk's message parser and action bookkeeping but own the connection ourselves:
panoramisk decodes each TCP chunk on its own (a UTF-8 character split across two reads is lost),
reconnects on a fixed timer and re-sends pending actions after a reconnect (an Originate could
happen twice). Here bytes go through an incremental decoder, the delay backs off up to a cap, and
an action pending when the link drops fails with :class:`AmiDisconnected`: never re-sent.

Reading never waits for processing: the read callback only decodes and frames messages into a
bounded :class:`Inbox`, and one consumer task matches replies and runs the event handler, in the
order Asterisk sent them (Asterisk drops a client that does not read for its ``writetimeout``).
When the inbox is full the link is dropped (counted, logged), what was read is still processed,
and the reconnect's resync repairs whatever was sent meanwhile: no event is lost unnoticed.
"""

from __future__ import annotations

import asyncio
import codecs
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from panoramisk.message import Message

from cti_server.config import AmiSettings
from cti_server.telephony.ami_actions import ActionValue, build_action
from cti_server.telephony.tasks import cancel_and_wait

log = logging.getLogger(__name__)

EOM = "\r\n\r\n"
BANNER = "Asterisk Call Manager/"
MAX_BUFFER_CHARS = 4 * 1024 * 1024  # one message larger than this is malformed traffic
BATCH = 256  # messages processed before the consumer lets the reader run again
IMMEDIATE_ACTIONS = frozenset({"Login", "Ping"})
"""Their replies say whether the link is alive, not what happened on the PBX: matched as they are
read, so a ping is answered however far behind processing is."""


class AmiError(RuntimeError):
    """An AMI action failed or could not be sent."""


class AmiDisconnected(AmiError):
    """The connection is down; the action was not (or may not have been) carried out."""


EventSink = Callable[[Message], None]
StateSink = Callable[[bool], None]
LoginHook = Callable[[], Awaitable[None]]


@dataclass
class InboxStats:
    """How far processing is behind reading (exported to ``/metrics`` and ``/status``)."""

    capacity: int
    depth: int = 0
    peak: int = 0
    behind: int = 0  # times the depth passed the high-water mark
    overflows: int = 0  # times it was full: the link was dropped and the node resynced

    def as_dict(self) -> dict[str, int]:
        return {
            "capacity": self.capacity,
            "depth": self.depth,
            "peak": self.peak,
            "behind": self.behind,
            "overflows": self.overflows,
        }


@dataclass
class AmiStatus:
    """What ``/status`` reports about one AMI link."""

    node: str
    connected: bool = False
    since: float = field(default_factory=time.time)
    last_error: str = ""
    reconnects: int = 0
    events: int = 0
    asterisk_version: str = ""
    inbox: InboxStats | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "inbox": self.inbox.as_dict() if self.inbox is not None else None,
            "node": self.node,
            "connected": self.connected,
            "since": self.since,
            "last_error": self.last_error,
            "reconnects": self.reconnects,
            "events": self.events,
            "protocol": self.asterisk_version,
        }


class Inbox:
    """Messages read but not yet processed, in arrival order, at most ``capacity`` of them.

    Past the high-water mark (half full) it logs once, and again only after draining to a
    quarter: one line per episode of falling behind, not one per message.
    """

    def __init__(self, node: str, capacity: int) -> None:
        self._node = node
        self._messages: deque[Message] = deque()
        self._capacity = capacity
        self._high_water = max(1, capacity // 2)
        self._low_water = capacity // 4
        self._behind = False
        self.stats = InboxStats(capacity)
        self.has_work = asyncio.Event()
        self.empty = asyncio.Event()
        self.empty.set()

    def __len__(self) -> int:
        return len(self._messages)

    def put(self, message: Message) -> bool:
        """Queue one message; False (and counted, and logged) when the inbox is full."""
        messages = self._messages
        depth = len(messages)
        if depth >= self._capacity:
            self.stats.overflows += 1
            log.error(
                "AMI %s: %d messages read and not yet processed (the limit): dropping the link "
                "to resync",
                self._node,
                depth,
            )
            return False
        if not depth:
            self.has_work.set()
            self.empty.clear()
        messages.append(message)
        depth += 1
        self.stats.depth = depth
        self.stats.peak = max(self.stats.peak, depth)
        if depth >= self._high_water and not self._behind:
            self._behind = True
            self.stats.behind += 1
            log.warning(
                "AMI %s: processing is behind reading: %d of at most %d messages queued",
                self._node,
                depth,
                self._capacity,
            )
        return True

    def take(self, limit: int) -> list[Message]:
        """Up to ``limit`` of the oldest messages, removed from the inbox."""
        messages = self._messages
        batch = [messages.popleft() for _ in range(min(limit, len(messages)))]
        depth = self.stats.depth = len(messages)
        if self._behind and depth <= self._low_water:
            self._behind = False
            log.info("AMI %s: processing caught up with reading (%d queued)", self._node, depth)
        if not depth:
            self.has_work.clear()
            self.empty.set()
        return batch


class _PendingAction:
    """One action awaiting its reply: a single Response, or a Response plus an event list.

    panoramisk guesses list replies from message texts (a QueueAdd reply "Added ... to queue"
    makes it wait for more that never comes); we follow AMI's own ``EventList`` markers.
    """

    def __init__(self, headers: Mapping[str, str | list[str]]) -> None:
        self.action_id = f"cti-{next(_ACTION_IDS)}"
        self.headers = headers
        self.future: asyncio.Future[Message | list[Message]] = (
            asyncio.get_running_loop().create_future()
        )
        self._messages: list[Message] = []

    def wire(self) -> str:
        lines = [f"Action: {self.headers['Action']}", f"ActionID: {self.action_id}"]
        for key, value in self.headers.items():
            if key == "Action":
                continue
            for item in value if isinstance(value, list) else [value]:
                lines.append(f"{key}: {item}")
        return "\r\n".join(lines) + EOM

    def add(self, message: Message) -> bool:
        """Take one message; True when the reply is complete."""
        self._messages.append(message)
        first = self._messages[0]
        is_list = str(first.get("EventList", "")).lower() == "start" and first.success
        if not is_list:
            done: Message | list[Message] = first
        elif str(message.get("EventList", "")).lower() == "complete":
            done = self._messages
        else:
            return False
        if not self.future.done():
            self.future.set_result(done)
        return True


_ACTION_IDS = itertools.count(1)


class _AmiProtocol(asyncio.Protocol):
    """Splits the byte stream into AMI messages; never blocks, never drops a split character."""

    def __init__(self, client: AmiClient) -> None:
        self._client = client
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._banner_seen = False
        self._overflowed = False
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Decode and frame only; processing happens in the client's consumer task."""
        if self._overflowed:
            return  # the link is being closed: what follows is repaired by the resync
        self._buffer += self._decoder.decode(data)
        if not self._banner_seen:
            if "\r\n" not in self._buffer:
                return
            line, _, self._buffer = self._buffer.partition("\r\n")
            self._banner_seen = True
            if line.startswith(BANNER):
                self._client.status.asterisk_version = line[len(BANNER) :].strip()
            else:
                log.warning("AMI peer sent no banner: %r", line[:80])
        *blocks, self._buffer = self._buffer.split(EOM)
        if len(self._buffer) > MAX_BUFFER_CHARS:
            log.error("AMI message larger than %d characters: dropping the link", MAX_BUFFER_CHARS)
            self.close()
            return
        receive = self._client.receive
        for block in blocks:
            message = Message.from_line(block.strip())
            if message is not None and not receive(message):
                self._overflowed = True
                self._buffer = ""
                self.close()
                return

    def send(self, text: str) -> None:
        if self.transport is None or self.transport.is_closing():
            raise AmiDisconnected("AMI connection is closed")
        self.transport.write(text.encode("utf-8"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class AmiClient:
    """Keeps one AMI link up for as long as :meth:`run` runs; events go to ``on_event``."""

    def __init__(
        self,
        settings: AmiSettings,
        on_event: EventSink,
        on_state: StateSink | None = None,
        on_login: LoginHook | None = None,
    ) -> None:
        self._settings = settings
        self._on_event = on_event
        self._on_state = on_state
        self._on_login = on_login
        self._protocol: _AmiProtocol | None = None
        self._pending: dict[str, _PendingAction] = {}
        self._immediate: set[str] = set()  # ActionIDs of pending IMMEDIATE_ACTIONS
        self._logged_in = asyncio.Event()
        self.status = AmiStatus(node=settings.node)
        self.inbox = Inbox(settings.node, settings.inbox_size)
        self.status.inbox = self.inbox.stats

    @property
    def connected(self) -> bool:
        return self.status.connected

    async def wait_connected(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self._logged_in.wait()

    async def run(self) -> None:
        """Connect, log in, read until the link drops; repeat with backoff until cancelled."""
        consumer = asyncio.create_task(self._consume(), name=f"ami-inbox-{self._settings.node}")
        try:
            await self._keep_connected()
        finally:
            try:
                await cancel_and_wait(consumer)
            finally:
                self._drop_connection()

    async def _keep_connected(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._connect_once()
            except (OSError, TimeoutError, AmiError) as exc:
                self._note_failure(exc)
            finally:
                if self.status.connected:
                    delay = 0.1  # a session that got as far as login resets the backoff
                self._close_link()
            # what was read is processed first: replies in it still reach their actions, and
            # the next session's events (and its resync) come after the last one's
            await self.inbox.empty.wait()
            self._drop_connection()
            self.status.reconnects += 1
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))  # noqa: S311 - jitter
            delay = min(delay * 2, self._settings.reconnect_max_delay)

    async def _consume(self) -> None:
        """Process what the reader queued, in order, a batch at a time."""
        inbox = self.inbox
        while True:
            await inbox.has_work.wait()
            self.process_queued(BATCH)
            await asyncio.sleep(0)  # the reader's turn, even while the inbox is not empty

    def process_queued(self, limit: int | None = None) -> int:
        """Process up to ``limit`` queued messages (all by default); how many were processed."""
        batch = self.inbox.take(len(self.inbox) if limit is None else limit)
        handle = self.handle_message
        for message in batch:
            handle(message)
        return len(batch)

    def _note_failure(self, exc: BaseException) -> None:
        """Say at WARNING when the link fails or fails differently; the same retry again at DEBUG.

        Without ``-v`` an operator sees that Asterisk is unreachable and why, once per episode,
        not once per backoff step.
        """
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        repeated = error == self.status.last_error
        self.status.last_error = error
        (log.debug if repeated else log.warning)(
            "AMI %s at %s:%d unavailable: %s; retrying",
            self._settings.node,
            self._settings.host,
            self._settings.port,
            error,
        )

    async def _connect_once(self) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the inner result (or
        # raises its OSError) when a cancellation meets a finished connect, and the reconnect loop
        # ran on for ever; the server then hung at start when another port was taken
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._settings.connect_timeout):
            _, protocol = await loop.create_connection(
                lambda: _AmiProtocol(self), self._settings.host, self._settings.port
            )
        self._protocol = protocol
        response = await self.send_action(
            "Login",
            {
                "Username": self._settings.username,
                "Secret": self._settings.secret.get_secret_value(),
                "Events": "on",
            },
            timeout=self._settings.connect_timeout,
            _before_login=True,
        )
        if not isinstance(response, Message) or not response.success:
            message = response.get("Message", "") if isinstance(response, Message) else ""
            log.error("AMI %s login refused: %s", self._settings.node, message)
            raise AmiError(f"login refused: {message}")
        self._set_connected(True)
        log.info("AMI %s connected", self._settings.node)
        tasks = [asyncio.create_task(self._ping_forever(), name=f"ami-ping-{self._settings.node}")]
        if self._on_login is not None:
            tasks.append(asyncio.create_task(self._after_login(self._on_login)))
        try:
            await protocol.closed
        finally:
            await cancel_and_wait(*tasks)
        raise AmiDisconnected("connection lost")

    async def _after_login(self, hook: LoginHook) -> None:
        """E.g. a resync; its failure is logged and the link stays up."""
        try:
            await hook()
        except (AmiError, TimeoutError) as exc:
            log.warning("AMI %s: after-login work failed: %s", self._settings.node, exc)

    async def _ping_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.ping_interval)
            try:
                await self.send_action("Ping", timeout=self._settings.connect_timeout)
            except (AmiError, TimeoutError):
                log.warning("AMI %s did not answer a ping: closing the link", self._settings.node)
                if self._protocol is not None:
                    self._protocol.close()
                return

    def _close_link(self) -> None:
        """Stop reading and say the link is down; pending actions wait for what was read."""
        if self._protocol is not None:
            self._protocol.close()
        if self.status.connected:
            log.warning("AMI %s disconnected", self._settings.node)
        self._set_connected(False)

    def _drop_connection(self) -> None:
        self._close_link()
        self._protocol = None
        for action in self._pending.values():
            if not action.future.done():
                action.future.set_exception(AmiDisconnected("AMI connection lost before the reply"))
        self._pending.clear()
        self._immediate.clear()

    def _set_connected(self, connected: bool) -> None:
        if connected == self.status.connected:
            return
        self.status.connected = connected
        self.status.since = time.time()
        if connected:
            self._logged_in.set()
            self.status.last_error = ""
        else:
            self._logged_in.clear()
        if self._on_state is not None:
            self._on_state(connected)

    def receive(self, message: Message) -> bool:
        """One message as read: a ping or login reply is matched now, the rest is queued.

        False when the inbox is full (the caller drops the link).
        """
        if self._immediate:
            action_id = message.get("ActionID")
            if action_id in self._immediate:
                self.handle_message(message)
                return True
        return self.inbox.put(message)

    def handle_message(self, message: Message) -> None:
        action_id = message.get("ActionID")
        action = self._pending.get(action_id) if isinstance(action_id, str) else None
        if action is not None:
            if action.add(message):
                self._pending.pop(action_id, None)
                self._immediate.discard(action_id)
            return
        if "Event" in message:
            self.status.events += 1
            try:
                self._on_event(message)
            except Exception:
                log.exception("AMI event handler failed on %s", message.get("Event"))

    async def send_action(
        self,
        name: str,
        fields: Mapping[str, ActionValue] | None = None,
        *,
        timeout: float = 10.0,
        _before_login: bool = False,
    ) -> Message | list[Message]:
        """Send one action and wait for its complete reply (a list for event-list actions)."""
        headers = build_action(name, fields)
        if self._protocol is None or not (self.status.connected or _before_login):
            raise AmiDisconnected(f"AMI {self._settings.node} is not connected")
        action = _PendingAction(headers)
        self._pending[action.action_id] = action
        if name in IMMEDIATE_ACTIONS:
            self._immediate.add(action.action_id)
        try:
            self._protocol.send(action.wire())
            async with asyncio.timeout(timeout):  # a cancellation is never taken for a reply
                result: Message | list[Message] = await action.future
        finally:
            self._pending.pop(action.action_id, None)
            self._immediate.discard(action.action_id)
        return result
