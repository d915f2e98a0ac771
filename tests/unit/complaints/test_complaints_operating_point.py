"""The operating point a manager sets: the complaint rate they expect and what a miss costs
against a false alarm decide which calls are flagged, through the model's calibration."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import pytest

from cti_server.complaints import ComplaintDetector, TranscriptLine
from cti_server.complaints.operating_point import OperatingPoint, logit
from cti_server.complaints.resources import data_root

PACKAGE_DATA = Path(str(data_root()))
# a threat a manager would want to see, but no outright complaint word: borderline
BORDERLINE = [TranscriptLine("if this is not fixed I will take legal action", 0.0, 3.0)]


def _data(tmp_path: Path, calibration: dict[str, float]) -> Path:
    """The shipped data files, the English model calibrated as given."""
    tmp_path.mkdir(exist_ok=True)
    for name in ("cues.yaml", "categories.yaml", "weights.yaml", "model_zh.json.gz"):
        shutil.copy(PACKAGE_DATA / name, tmp_path / name)
    model = json.loads(gzip.decompress((PACKAGE_DATA / "model_en.json.gz").read_bytes()))
    model["calibration"] = calibration
    (tmp_path / "model_en.json.gz").write_bytes(gzip.compress(json.dumps(model).encode()))
    return tmp_path


@pytest.fixture
def identity(tmp_path: Path) -> Path:
    return _data(tmp_path, {"slope": 1.0, "intercept": 0.0, "base_rate": 0.5})


def test_a_borderline_call_is_flagged_when_complaints_are_expected_more_often(
    identity: Path,
) -> None:
    default = ComplaintDetector(identity).detect(BORDERLINE)
    busier = ComplaintDetector(identity, operating_point=OperatingPoint(expected_rate=0.3)).detect(
        BORDERLINE
    )
    assert not default.is_complaint, default
    assert default.severity == "low"
    assert busier.is_complaint, busier
    assert busier.probability > default.probability
    assert busier.threshold == default.threshold == pytest.approx(1 / 6)


def test_a_borderline_call_is_flagged_when_a_miss_costs_more(identity: Path) -> None:
    point = OperatingPoint(miss_cost=20.0)
    costly = ComplaintDetector(identity, operating_point=point).detect(BORDERLINE)
    default = ComplaintDetector(identity).detect(BORDERLINE)
    assert costly.is_complaint, costly
    assert costly.severity != "low"
    assert costly.threshold == pytest.approx(1 / 21)
    assert costly.probability == pytest.approx(default.probability)  # the rate sets it, not costs


def test_the_models_calibration_and_base_rate_are_applied(identity: Path, tmp_path: Path) -> None:
    """slope x (text logit + cue priors) + intercept, at the training share; then the shift."""
    raw = ComplaintDetector(identity, operating_point=OperatingPoint(expected_rate=0.5))
    p0 = raw.detect(BORDERLINE).probability
    calibrated = _data(
        tmp_path / "calibrated", {"slope": 2.0, "intercept": -1.0, "base_rate": 0.25}
    )
    at_base = ComplaintDetector(calibrated, operating_point=OperatingPoint(expected_rate=0.25))
    assert logit(at_base.detect(BORDERLINE).probability) == pytest.approx(2 * logit(p0) - 1)
    rarer = ComplaintDetector(calibrated, operating_point=OperatingPoint(expected_rate=0.05))
    expected = 2 * logit(p0) - 1 + logit(0.05) - logit(0.25)
    assert logit(rarer.detect(BORDERLINE).probability) == pytest.approx(expected)


def test_as_trained_flags_what_the_models_own_threshold_flags(identity: Path) -> None:
    detector = ComplaintDetector(identity)
    point = OperatingPoint.as_trained(detector.threshold("en"), detector.calibration("en"))
    trained = ComplaintDetector(identity, operating_point=point)
    signal = trained.detect(BORDERLINE)
    assert signal.threshold == pytest.approx(detector.threshold("en"))
    untouched = ComplaintDetector(identity, operating_point=OperatingPoint(expected_rate=0.5))
    assert signal.probability == pytest.approx(untouched.detect(BORDERLINE).probability)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"expected_rate": 0.0}, "expected_rate must be between 0 and 1"),
        ({"expected_rate": 1.0}, "expected_rate must be between 0 and 1"),
        ({"miss_cost": 0.0}, "miss_cost must be a positive number"),
        ({"false_alarm_cost": -1.0}, "false_alarm_cost must be a positive number"),
        ({"miss_cost": math.inf}, "miss_cost must be a positive number"),
    ],
)
def test_a_point_that_means_nothing_is_refused(values: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OperatingPoint(**values)
