"""Spoken menu choices: Asterisk streams the caller's audio here over AudioSocket.

The IVR asks for a listening (:meth:`AudioSocketServer.expect`) and has Asterisk run
``AudioSocket(<listening id>,<host:port>)``; the audio (8 kHz signed linear) goes to a Vosk
recognizer that knows only the menu's words, and a key pressed meanwhile (AudioSocket's DTMF
frames) counts as well. The first word or key heard ends the listening: the socket is closed,
``AudioSocket`` returns and the walk goes on. Every connection is bounded in time and size, and
one that names no listening is closed at once.

AudioSocket carries no credential: Asterisk sends the id it was given and then audio. So the id
is the secret, and it is kept as one: random (122 bits), good for one connection, forgotten when
its menu or tap ends, handed to Asterisk only over channels that proved themselves (the FastAGI
session after its challenge, cti-agi with its service token, our own AMI login), and bound to the
address of the Asterisk that asked for it. A peer outside ``speech.allowed_peers`` is closed
before it is read; a known id from another address is refused and stays for the right peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from cti_server.config import SpeechSettings
from cti_server.speech.heard import Heard
from cti_server.speech.models import SpeechModels, grammar_recognizer
from cti_server.telephony.peers import AllowedPeers, IpAddress, address, peer_address

log = logging.getLogger(__name__)

KIND_HANGUP = 0x00
KIND_ID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10
KIND_ERROR = 0xFF
HANGUP = bytes([KIND_HANGUP, 0, 0])
CHUNK = 3200  # 0.2 s of audio per recognizer call
HEADER_TIMEOUT = 5.0


class AudioStream(Protocol):
    """Audio Asterisk streams to us for as long as it lasts (a tap on one side of a call)."""

    id: uuid.UUID
    connected: asyncio.Event

    async def consume(self, reader: asyncio.StreamReader) -> None: ...


class Listening:
    """One menu waiting for a word or a key; :meth:`result` ends it either way."""

    def __init__(self, words: Mapping[str, str], language: str, timeout: float) -> None:
        self.id = uuid.uuid4()
        self.words = dict(words)
        self.language = language
        self.timeout = timeout
        self.connected = asyncio.Event()
        self._heard: asyncio.Future[Heard] = asyncio.get_running_loop().create_future()

    def hear(self, heard: Heard) -> None:
        if not self._heard.done():
            self._heard.set_result(heard)

    @property
    def done(self) -> bool:
        return self._heard.done()

    async def result(self) -> Heard:
        """The first word or key, or ``Heard("")`` once the timeout has passed in silence.

        The clock starts when Asterisk connects (plus a grace for connecting), so a slow
        start does not eat the caller's time."""
        try:
            async with asyncio.timeout(HEADER_TIMEOUT):
                await self.connected.wait()
            async with asyncio.timeout(self.timeout + 1.0):
                return await asyncio.shield(self._heard)
        except TimeoutError:
            self.hear(Heard(""))
            return self._heard.result()


class AudioSocketServer:
    def __init__(self, settings: SpeechSettings, models: SpeechModels) -> None:
        self._settings = settings
        self._models = models
        self._pending: dict[uuid.UUID, tuple[Listening | AudioStream, IpAddress | None]] = {}
        self._allowed = AllowedPeers(settings.allowed_peers)
        self._server: asyncio.Server | None = None
        self._slots = asyncio.Semaphore(settings.max_sessions)
        self._tasks: set[asyncio.Task[None]] = set()
        self.heard = 0
        self.refused = 0

    @property
    def address(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    def languages(self) -> set[str]:
        return self._models.languages()

    async def preload(self) -> None:
        """Load every model now, so the first caller does not wait seconds for it."""
        await self._models.preload()

    def expect(
        self, words: Mapping[str, str], language: str, timeout: float, peer: str | None = None
    ) -> Listening | None:
        """A listening for this menu, or None when no model speaks ``language``; ``peer``: the
        address of the Asterisk that will stream it (no other may)."""
        if self._server is None or language not in self._models.languages() or not words:
            return None
        listening = Listening(words, language, timeout)
        self._pending[listening.id] = (listening, address(peer))
        return listening

    def expect_stream(self, stream: AudioStream, peer: str | None = None) -> bool:
        """Route the connection naming ``stream.id`` to it (a live transcription tap)."""
        if self._server is None:
            return False
        self._pending[stream.id] = (stream, address(peer))
        return True

    def forget_stream(self, stream: AudioStream) -> None:
        self._pending.pop(stream.id, None)

    def forget(self, listening: Listening) -> None:
        listening.hear(Heard(""))
        self._pending.pop(listening.id, None)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self._settings.host, self._settings.port
        )
        log.info("AudioSocket listening on %s", self.address)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def status(self) -> dict[str, Any]:
        return {
            "listening": self._server is not None,
            "languages": sorted(self.languages()),
            "active": len(self._tasks),
            "heard": self.heard,
            "refused": self.refused,
        }

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            peer = peer_address(writer.get_extra_info("peername"))
            if peer is None or not self._allowed.allow(peer):
                self.refused += 1
                log.warning("AudioSocket connection from %s refused: not an allowed peer", peer)
                return
            if self._slots.locked():
                self.refused += 1
                return
            async with self._slots:
                await self._serve(reader, peer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            log.info("AudioSocket connection ended: %r", exc)
        except asyncio.CancelledError:
            # only stop() cancels a connection; ending quietly keeps asyncio's stream callback
            # from logging the cancellation as an error (Python 3.11)
            return
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(OSError, RuntimeError):
                writer.write(HANGUP)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, peer: IpAddress) -> None:
        async with asyncio.timeout(HEADER_TIMEOUT):
            kind, payload = await read_frame(reader)
        named = uuid.UUID(bytes=payload) if kind == KIND_ID and len(payload) == 16 else None
        expected = self._pending.get(named) if named is not None else None
        if expected is not None and expected[1] is not None and expected[1] != peer:
            self.refused += 1  # the id stays: the Asterisk it was given to may still come
            log.warning("AudioSocket id from %s, not from the Asterisk it was given to", peer)
            return
        target = self._pending.pop(named)[0] if expected is not None and named else None
        if target is None or (isinstance(target, Listening) and target.done):
            self.refused += 1
            log.warning("AudioSocket connection for nothing expected (kind %#x) closed", kind)
            return
        target.connected.set()
        if isinstance(target, Listening):
            await self._serve_listening(reader, target)
        else:
            await target.consume(reader)

    async def _serve_listening(self, reader: asyncio.StreamReader, listening: Listening) -> None:
        model = await self._models.get(listening.language)
        recognizer = grammar_recognizer(model, listening.words)
        try:
            async with asyncio.timeout(listening.timeout):
                await self._listen(reader, listening, recognizer)
        except TimeoutError:
            final = await asyncio.to_thread(recognizer.FinalResult)
            listening.hear(self._match(listening, final))
        self.heard += 1

    async def _listen(
        self, reader: asyncio.StreamReader, listening: Listening, recognizer: Any
    ) -> None:
        audio = bytearray()
        while not listening.done:
            kind, payload = await read_frame(reader)
            if kind == KIND_DTMF and payload:
                listening.hear(Heard(payload[:1].decode("ascii", "replace")))
            elif kind == KIND_AUDIO:
                audio += payload
                if len(audio) >= CHUNK:
                    chunk, audio = bytes(audio), bytearray()
                    if await asyncio.to_thread(recognizer.AcceptWaveform, chunk):
                        heard = self._match(listening, recognizer.Result())
                        if heard.key:
                            listening.hear(heard)
            elif kind in (KIND_HANGUP, KIND_ERROR):
                listening.hear(Heard(""))

    @staticmethod
    def _match(listening: Listening, result_json: str) -> Heard:
        try:
            text = str(json.loads(result_json).get("text", ""))
        except (ValueError, AttributeError):
            return Heard("")
        for word in text.split():
            if word in listening.words:
                return Heard(listening.words[word], word)
        return Heard("")


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One AudioSocket message: a kind byte, a big-endian length, the payload."""
    header = await reader.readexactly(3)
    kind, length = struct.unpack(">BH", header)
    payload = await reader.readexactly(length) if length else b""
    return kind, payload
