"""A pause of ``[speech] end_silence_seconds`` closes an utterance: a supervisor reads the line
and a spoken menu answers that much sooner than with the model's own, longer rules."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cti_server.config import SpeechSettings
from cti_server.speech import models
from cti_server.speech.decoder import model_rate
from cti_server.speech.models import SpeechModels, with_end_silence
from tests.support.voice import korean_model_dir


def test_the_models_are_loaded_through_a_view_with_the_pause_as_their_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Kaldi dithers its input, so whether a given voice closes by the sure or the unsure rule
    varies from run to run: the rules themselves are what is checked; the live latency is
    measured by bench/transcript_latency.py.)"""
    source = korean_model_dir()
    loaded: list[Path] = []

    def load(path: Path) -> Path:
        loaded.append(path)
        return path

    monkeypatch.setattr(models, "load_model", load)
    tuned = SpeechModels({"ko": source}, end_silence=0.5)  # its views live as long as it does
    asyncio.run(SpeechModels({"ko": source}).get("ko"))
    asyncio.run(tuned.get("ko"))
    own, quick = loaded
    assert own == source
    rules = (quick / "conf" / "model.conf").read_text()
    assert "--endpoint.rule2.min-trailing-silence=0.5" in rules
    assert "--endpoint.rule3.min-trailing-silence=0.5" in rules  # the model says 1.0
    assert "--endpoint.rule4.min-trailing-silence=1" in rules  # the model says 2.0
    assert model_rate(quick) == model_rate(source)


def test_the_view_changes_only_the_endpoint_rules(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "am").mkdir(parents=True)
    (model / "conf").mkdir()
    (model / "am" / "final.mdl").write_bytes(b"weights")
    (model / "conf" / "mfcc.conf").write_text("--sample-frequency=16000\n")
    (model / "conf" / "model.conf").write_text(
        "--beam=10.0\n"
        "--endpoint.rule2.min-trailing-silence=0.5\n"
        "--endpoint.rule3.min-trailing-silence=1.0\n"
        "--endpoint.rule4.min-trailing-silence=2.0\n"
    )
    view = with_end_silence(model, 0.4, tmp_path / "view")
    assert (view / "conf" / "model.conf").read_text().splitlines() == [
        "--beam=10.0",
        "--endpoint.rule2.min-trailing-silence=0.4",
        "--endpoint.rule3.min-trailing-silence=0.4",
        "--endpoint.rule4.min-trailing-silence=0.8",
    ]
    assert (view / "am" / "final.mdl").read_bytes() == b"weights"
    assert model_rate(view) == 16000
    assert (model / "conf" / "model.conf").read_text().startswith("--beam")  # untouched
    bare = tmp_path / "bare"
    (bare / "am").mkdir(parents=True)
    assert with_end_silence(bare, 0.4, tmp_path / "bare-view") == bare


def test_the_pause_is_a_setting_with_sane_bounds() -> None:
    assert SpeechSettings().end_silence_seconds == 0.4
    assert SpeechSettings(end_silence_seconds=None).end_silence_seconds is None
    with pytest.raises(ValueError, match="end_silence_seconds"):
        SpeechSettings(end_silence_seconds=0.01)
