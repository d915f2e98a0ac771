"""FastAGI server: Asterisk connects here when a call enters the inbound context.

panoramisk's FastAGI handler reads the request header until a blank line with no limit on size
or time, and spins when the peer closes early (``read()`` returns ``b''`` forever). This server
bounds the header's size and read time and the number of concurrent sessions, accepts only the
configured peers, and strips line breaks from every value it sends back in a command.

Asterisk writes the caller's name into the request header as it is: a name with a blank line in
it would end the header early, and what follows would read as Asterisk's answers to our first
commands (a forged linkedid, forged keys). And any local process can connect to the port and
claim to be Asterisk with a customer's caller ID. So before any route runs, the peer answers a
challenge only our Asterisk can: ``${SHA1(${CTI_AGI_KEY}:<nonce>)}``, evaluated on the channel,
where CTI_AGI_KEY is a global of the rendered dialplan (:func:`asterisk_key`, derived from the AMI
secret both sides hold) and the nonce is fresh for each session. The key never crosses the wire;
a wrong or missing answer, or one out of step, ends the session before anything is read or
written, and is counted (``refused_unproven`` in ``/status``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from panoramisk.utils import parse_agi_result

from cti_server.config import AgiSettings
from cti_server.telephony.peers import AllowedPeers, peer_address

log = logging.getLogger(__name__)


class AgiError(RuntimeError):
    """An AGI command failed."""


class AgiHangup(AgiError):
    """The channel hung up: no further command will succeed."""


class AgiSession:
    """One FastAGI request: its environment (``agi_*`` headers) and a command channel."""

    def __init__(
        self,
        env: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        command_timeout: float = 30.0,
    ) -> None:
        self.env = env
        self._reader = reader
        self._writer = writer
        self._command_timeout = command_timeout

    @property
    def peer(self) -> str | None:
        """The address of the Asterisk that opened this session."""
        found = peer_address(self._writer.get_extra_info("peername"))
        return str(found) if found is not None else None

    @property
    def script(self) -> str:
        """The path after ``agi://host:port/``, without the query string."""
        return self.env.get("agi_network_script", "").partition("?")[0].strip("/")

    async def command(self, *words: str, timeout: float | None = None) -> dict[str, Any]:
        """Send one AGI command; line breaks in any word are replaced so no command can be added.

        A broken link, silence past the deadline or an answer that is not AGI ends the session
        as a hang-up: nothing more can be said on it.
        """
        line = " ".join(clean(word) for word in words)
        try:
            self._writer.write(line.encode("utf-8") + b"\n")
            await self._writer.drain()
            result = await self._answer(timeout or self._command_timeout)
            if result.get("error") == "AGIUsageError":
                await self._skip_usage()
        except (ConnectionError, OSError, TimeoutError, ValueError) as exc:
            raise AgiHangup(f"AGI session broken during {words[0]}: {exc!r}") from None
        if result.get("error") == "AGIResultHangup":
            raise AgiHangup(result.get("msg", "hangup"))
        if "error" in result:
            raise AgiError(f"{words[0]}: {result.get('msg') or result['error']}")
        return result

    async def _answer(self, timeout: float) -> dict[str, Any]:
        """``timeout``: the command's own deadline (a recording may run for minutes)."""
        while True:
            async with asyncio.timeout(timeout):  # not wait_for: 3.11 could lose a cancel
                raw = await self._reader.readline()
            if not raw:
                raise ConnectionError("Asterisk closed the AGI connection")
            text = raw.decode("utf-8", "replace").rstrip("\n")
            if not text[:3].isdigit() and text != "HANGUP":
                raise ValueError(f"not an AGI answer: {text[:40]!r}")
            result: dict[str, Any] = parse_agi_result(text)
            if result.get("status_code") != 100:
                return result

    async def _skip_usage(self) -> None:
        """A 520 usage answer spans lines up to ``520 End of proper usage.``."""
        for _ in range(100):
            async with asyncio.timeout(self._command_timeout):
                raw = await self._reader.readline()
            if not raw or raw.startswith(b"520 "):
                return

    async def proves_asterisk(self, key: str, timeout: float) -> bool:
        """Whether the peer is our Asterisk, in step: it hashes the dialplan's key with a fresh
        nonce. Nobody without the key can answer; an old answer is no answer to a new nonce.
        Asterisk answers in milliseconds: a peer that stays silent holds its session slot for
        ``timeout`` at most, not a command's 30 s."""
        nonce = secrets.token_hex(16)
        expected = hashlib.sha1(f"{key}:{nonce}".encode()).hexdigest()  # noqa: S324 - Asterisk's
        expression = quote(f"${{SHA1(${{{KEY_VARIABLE}}}:{nonce})}}")
        try:
            result = await self.command("GET FULL VARIABLE", expression, timeout=timeout)
        except (AgiHangup, AgiError):
            return False
        value, answer = result.get("result", ("0", ""))
        return value == "1" and hmac.compare_digest(str(answer).encode(), expected.encode())

    async def set_variable(self, name: str, value: str) -> None:
        await self.command("SET VARIABLE", name, quote(value))

    async def get_variable(self, expression: str) -> str:
        """Evaluate ``${...}`` on the channel, e.g. ``${CHANNEL(linkedid)}``."""
        result = await self.command("GET FULL VARIABLE", quote(expression))
        value, data = result.get("result", ("0", ""))
        return str(data) if value == "1" else ""


def clean(word: str) -> str:
    """No CR, LF or NUL may reach Asterisk inside a value: each would end the command line."""
    return word.replace("\r", " ").replace("\n", " ").replace("\x00", "")


def quote(value: str) -> str:
    """One AGI argument in double quotes, with its quotes and backslashes escaped."""
    return '"' + clean(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


Handler = Callable[[AgiSession], Awaitable[None]]
KEY_VARIABLE = "CTI_AGI_KEY"  # the dialplan global Asterisk proves itself with


def asterisk_key(ami_secret: str) -> str:
    """The key of the FastAGI challenge, derived from the AMI secret: the server and the
    rendered dialplan hold it without one more secret to configure, and a local process that
    does not know the AMI secret cannot answer (with it, it could drive Asterisk anyway)."""
    label = b"cti-server FastAGI key v1"
    return hmac.new(ami_secret.encode("utf-8"), label, hashlib.sha256).hexdigest()


class FastAgiServer:
    """Accepts FastAGI connections and dispatches them by script name to handlers."""

    def __init__(self, settings: AgiSettings, *, key: str) -> None:
        self._settings = settings
        self._key = key
        self._routes: dict[str, Handler] = {}
        self._server: asyncio.Server | None = None
        self._slots = asyncio.Semaphore(settings.max_sessions)
        self._sessions: set[asyncio.Task[None]] = set()
        self._allowed = AllowedPeers(settings.allowed_peers)
        self.requests = 0
        self.rejected = 0
        self.refused_unproven = 0  # peers that could not prove they are our Asterisk

    def add_route(self, script: str, handler: Handler) -> None:
        if script in self._routes:
            raise ValueError(f"FastAGI route {script!r} exists already")
        self._routes[script] = handler

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept,
            self._settings.host,
            self._settings.port,
            limit=self._settings.header_max_bytes,
        )
        log.info("FastAGI listening on %s:%d", self._settings.host, self._settings.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._sessions):
            task.cancel()
        for task in list(self._sessions):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def status(self) -> dict[str, Any]:
        return {
            "listening": self._server is not None,
            "requests": self.requests,
            "rejected": self.rejected,
            "refused_unproven": self.refused_unproven,
            "active": len(self._sessions),
        }

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            # only stop() cancels a session; ending quietly keeps asyncio's stream callback
            # from logging the cancellation as an error (Python 3.11)
            return
        finally:
            self._sessions.discard(task)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not self._allowed.allow(peer_address(peer)):
            self.rejected += 1
            log.warning("FastAGI connection from %r refused: not an allowed peer", peer)
            return
        if self._slots.locked():
            self.rejected += 1
            log.warning(
                "FastAGI connection from %r refused: %d sessions busy",
                peer,
                self._settings.max_sessions,
            )
            return
        async with self._slots:
            env = await self._read_env(reader, peer)
            if env is None:
                return
            self.requests += 1
            session = AgiSession(env, reader, writer)
            handler = self._routes.get(session.script)
            if handler is None:
                log.error("FastAGI request for unknown script %r", session.script)
                return
            if not await session.proves_asterisk(self._key, self._settings.header_timeout):
                self.rejected += 1
                self.refused_unproven += 1
                log.warning(
                    "FastAGI %s from %r refused: it did not prove it is our Asterisk (no or an"
                    " old CTI_AGI_KEY in its dialplan, not Asterisk at all, or answers out of"
                    " step: a line break in the caller's name?)",
                    session.script,
                    peer,
                )
                return
            try:
                await handler(session)
            except AgiHangup:
                log.info("caller hung up during FastAGI %s", session.script)
            except (AgiError, OSError, TimeoutError) as exc:
                log.warning("FastAGI %s failed: %s", session.script, exc)

    async def _read_env(self, reader: asyncio.StreamReader, peer: object) -> dict[str, str] | None:
        try:
            async with asyncio.timeout(self._settings.header_timeout):
                raw = await reader.readuntil(b"\n\n")
        except TimeoutError:
            log.warning("FastAGI peer %r sent no complete request in time", peer)
            return None
        except asyncio.IncompleteReadError:
            log.warning("FastAGI peer %r closed before the end of the request", peer)
            return None
        except asyncio.LimitOverrunError:
            log.warning("FastAGI peer %r sent a request header over the size limit", peer)
            return None
        return parse_agi_env(raw.decode("utf-8", "replace"))


def parse_agi_env(text: str) -> dict[str, str]:
    """``agi_key: value`` lines; tolerates a missing space after the colon (seen in the wild)."""
    env: dict[str, str] = {}
    # only "\n" ends a line: str.splitlines() would also split a caller name at U+2028 & co.,
    # letting the name set agi_* keys such as the script
    for line in text.split("\n"):
        key, sep, value = line.partition(":")
        if sep and key.startswith("agi_"):
            env[key.strip()] = value.strip()
    return env
