"""Complaint detection over transcript segments and call facts (no telephony, no I/O but data).

``ComplaintDetector().detect(segments, facts)`` → :class:`ComplaintSignal` with probability,
category, severity and evidence. Data files (cue lexicons, categories, weights, trained models)
are in ``data/`` and are read on first use; ``scripts/train_complaints.py`` rebuilds the models.

Modules: ``detector`` (segments and facts -> a signal; a call's score kept up to date as its
lines come), ``windows`` (a call's words read once, in windows of bounded length),
``operating_point`` (the complaint rate and costs a manager sets), ``signals`` (what it reads
and says), ``model`` (the trained linear model, scored without scikit-learn), ``features`` and
``text`` (features shared by training and detection), ``embeddings`` (optional sentence
embeddings), ``resources`` (its data files, checked), ``training``, ``model_check`` and
``evaluation`` (rebuilding and measuring the models: calibration, precision at a complaint
rate, the indirect subset; development only), ``watch`` (events in: complaints caught during
and after a call).
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
