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
        timeout=880,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)  # about a minute alone; minutes beside a busy suite on 2 cores
def test_the_chinese_models_are_what_the_data_builds() -> None:
    """The linear model always; the embedding model too when the embeddings extra is installed
    and COMPLAINTS_EMBEDDING_CACHE names a directory that keeps the embeddings between runs
    (embedding the 9,000 reviews takes about 8 minutes of one core). One run of the training
    script for both: it builds the linear model whichever it checks."""
    embeddings = embeddings_available() and bool(os.environ.get("COMPLAINTS_EMBEDDING_CACHE"))
    out = _check(*([] if embeddings else ["--no-embeddings"]))
    assert "model_zh.json.gz: same model" in out
    if embeddings:
        assert "model_zh_e5.json.gz: same model" in out
