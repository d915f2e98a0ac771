"""A model file's calibration: absent means the identity, present is read, bad values are named."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from cti_server.complaints.resources import (
    Calibration,
    ComplaintDataError,
    data_root,
    parse_model,
)

PACKAGE_DATA = Path(str(data_root()))


def _model() -> dict[str, Any]:
    model: dict[str, Any] = json.loads(
        gzip.decompress((PACKAGE_DATA / "model_zh.json.gz").read_bytes())
    )
    return model


def test_a_file_without_calibration_loads_as_the_identity_at_half() -> None:
    model = _model()
    model.pop("calibration", None)
    assert parse_model(model, "m", "zh").calibration == Calibration(1.0, 0.0, 0.5)


def test_the_calibration_field_is_read() -> None:
    model = _model()
    model["calibration"] = {"slope": 0.8, "intercept": -0.3, "base_rate": 0.4}
    assert parse_model(model, "m", "zh").calibration == Calibration(0.8, -0.3, 0.4)


@pytest.mark.parametrize(
    ("calibration", "message"),
    [
        ({"slope": 1, "intercept": 0}, "m: calibration.base_rate: missing"),
        ({"slope": 0, "intercept": 0, "base_rate": 0.3}, "calibration.slope: must be greater"),
        ({"slope": 1, "intercept": "x", "base_rate": 0.3}, "calibration.intercept: expected"),
        ({"slope": 1, "intercept": 0, "base_rate": 1}, "calibration.base_rate: must be strictly"),
        ([1, 0, 0.5], "m: calibration: expected a mapping"),
    ],
)
def test_a_bad_calibration_names_the_key(calibration: Any, message: str) -> None:
    model = _model()
    model["calibration"] = calibration
    with pytest.raises(ComplaintDataError, match=message):
        parse_model(model, "m", "zh")
