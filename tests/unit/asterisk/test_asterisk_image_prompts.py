"""The Asterisk image speaks the IVR prompts at build time (docker/asterisk/prompts.sh), as the
development chroot does: every prompt of ivr_flows/prompts is a sound Playback() finds."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from cti_server.asterisk.data import data_dir

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "docker" / "asterisk" / "prompts.sh"


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_prompt_is_spoken_into_the_language_folders_asterisk_reads(tmp_path: Path) -> None:
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        pytest.fail("espeak-ng and sox are missing: run scripts/bootstrap (Debian packages)")
    prompts = data_dir("ivr_flows") / "prompts"
    # Debian's sounds/en is a link to the voice's folder: the install must go through it
    sounds = tmp_path / "sounds"
    (tmp_path / "en_US_f_Allison").mkdir()
    sounds.mkdir()
    (sounds / "en").symlink_to("../en_US_f_Allison")

    spoken = _run("speak", prompts, tmp_path / "out")
    assert spoken.returncode == 0, spoken.stderr
    installed = _run("install", tmp_path / "out", sounds)
    assert installed.returncode == 0, installed.stderr

    assert (sounds / "en").is_symlink()
    texts = sorted(prompts.glob("*/*.txt")) + sorted(prompts.glob("*/digits/*.txt"))
    assert len(texts) > 10
    for text in texts:
        language = text.relative_to(prompts).parts[0]
        kind = "digits" if text.parent.name == "digits" else "cti"
        sound = sounds / language / kind / f"{text.stem}.wav"
        with wave.open(str(sound)) as audio:
            assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (
                8000,
                1,
                2,
            )
            assert audio.getnframes() > 8000 * 0.3, f"{sound} is hardly speech"


def test_a_missing_prompts_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = _run("speak", tmp_path / "nowhere", tmp_path / "out")
    assert result.returncode != 0
    assert "no prompts folder" in result.stderr
