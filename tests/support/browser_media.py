"""Real Chromium with a fake microphone, for the browser phone's tests: a known tone as the
microphone, and media over loopback (a machine with no network but 127.0.0.1 works too)."""

from __future__ import annotations

import math
import os
import struct
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, async_playwright

TONE_HERTZ = 1000.0


def write_tone(path: Path, level: float, hertz: float = TONE_HERTZ, rate: int = 48000) -> Path:
    """One second of ``hertz`` at ``level`` of full scale (Chromium loops the file)."""
    samples = (int(level * 32767 * math.sin(2 * math.pi * hertz * n / rate)) for n in range(rate))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", v) for v in samples))
    return path


def tone_flags(tone: Path) -> tuple[str, ...]:
    """The tone as every page's microphone, and ICE candidates on 127.0.0.1 too."""
    return (f"--use-file-for-fake-audio-capture={tone}", "--allow-loopback-in-peer-connection")


@asynccontextmanager
async def launched(chromium: str, *args: str) -> AsyncIterator[Browser]:
    """Chromium with a fake microphone and these flags (never the fake consent: a page is refused
    the microphone unless its context was granted it)."""
    flags = ["--use-fake-device-for-media-stream", *args]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, args=[*flags, "--no-sandbox"] if os.geteuid() == 0 else flags
        )
        try:
            yield browser
        finally:
            await browser.close()
