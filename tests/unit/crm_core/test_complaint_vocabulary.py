"""One complaint vocabulary: the cases the CRM opens by hand and the detector's categories."""

from __future__ import annotations

from crm_core.cases import CATEGORIES
from crm_core.seed import _CASE_CATEGORIES
from cti_server.complaints import CATEGORIES as DETECTED


def test_cases_and_the_detector_name_complaints_alike() -> None:
    assert set(CATEGORIES) == set(DETECTED)
    assert set(_CASE_CATEGORIES) <= set(CATEGORIES)  # the demo's seeded cases too
