"""Complaint detection over transcript segments and call facts (no telephony, no I/O but data).

``ComplaintDetector().detect(segments, facts)`` → :class:`ComplaintSignal` with probability,
category, severity and evidence. Data files (cue lexicons, categories, weights, trained models)
are in ``data/`` and are read on first use; ``scripts/train_complaints.py`` rebuilds the models.
"""

from cti_server.complaints.detector import ComplaintDetector
from cti_server.complaints.resources import ComplaintDataError
from cti_server.complaints.signals import (
    CATEGORIES,
    SEVERITIES,
    CallFacts,
    ComplaintSignal,
    Evidence,
    TranscriptLine,
    Word,
)

__all__ = [
    "CATEGORIES",
    "SEVERITIES",
    "CallFacts",
    "ComplaintDataError",
    "ComplaintDetector",
    "ComplaintSignal",
    "Evidence",
    "TranscriptLine",
    "Word",
]
