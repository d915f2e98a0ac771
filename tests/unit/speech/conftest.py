"""What the speech tests share: the packaged Korean model (its folder, loaded once), a voice
that says a few Korean words, and a listener for the taps the transcription service sets up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cti_server.speech.models import load_model
from tests.support.voice import korean_model_dir
from tests.support.voice import spoken as voice
from tests.unit.speech.taps import TapListener


@pytest.fixture(scope="session")
def ko_dir() -> Path:
    return korean_model_dir()


@pytest.fixture(scope="session")
def ko_model(ko_dir: Path) -> Any:
    return load_model(ko_dir)


@pytest.fixture(scope="session")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A caller's few Korean words, as an 8 kHz call's wav."""
    return voice(tmp_path_factory.mktemp("voice"))


@pytest.fixture
def listener() -> TapListener:
    return TapListener()
