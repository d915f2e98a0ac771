"""The shipped Chinese complaint model is what the training script builds from the data in the
repository, byte for byte (about 10 s; the English models take minutes and are left to
``scripts/train_complaints.py --check``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_chinese_model_is_rebuilt_byte_for_byte() -> None:
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
    assert "model_zh.json.gz: identical" in done.stdout
