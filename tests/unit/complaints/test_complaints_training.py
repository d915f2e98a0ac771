"""The shipped Chinese complaint model is what the training script builds from the data in the
repository: the same settings, vocabulary and decisions, numbers within tolerance (about 10 s;
the English models are checked in test_complaints_data.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_the_chinese_model_is_what_the_data_builds() -> None:
    pytest.importorskip("sklearn", reason="training needs the dev extra (scikit-learn)")
    done = subprocess.run(
        [sys.executable, "scripts/train_complaints.py", "--language", "zh", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "model_zh.json.gz: same model" in done.stdout
