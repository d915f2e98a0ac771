"""Complaint detectors that decide as each language's model was trained to (its own threshold,
at its training data's complaint share), for tests about the text model and the call facts
rather than about the operating point a manager sets."""

from __future__ import annotations

from collections.abc import Sequence

from cti_server.complaints import CallFacts, ComplaintDetector, ComplaintSignal, TranscriptLine
from cti_server.complaints.operating_point import OperatingPoint
from cti_server.complaints.resources import LANGUAGES
from cti_server.complaints.text import language_of


def as_trained(language: str, *, embeddings: bool | None = False) -> ComplaintDetector:
    """A detector whose calls in ``language`` are flagged where its model's threshold is."""
    probe = ComplaintDetector(embeddings=embeddings)
    point = OperatingPoint.as_trained(probe.threshold(language), probe.calibration(language))
    detector = ComplaintDetector(embeddings=embeddings, operating_point=point)
    detector.load()
    return detector


class AsTrained:
    """One :func:`as_trained` detector per language, each call detected by its language's."""

    def __init__(self, *, embeddings: bool | None = False) -> None:
        self.detectors = {
            language: as_trained(language, embeddings=embeddings) for language in LANGUAGES
        }

    def detect(
        self,
        segments: Sequence[TranscriptLine],
        facts: CallFacts | None = None,
        language: str | None = None,
    ) -> ComplaintSignal:
        said = " ".join(s.text for s in segments if s.speaker == "customer")
        language = language or (language_of(said) if said.strip() else "en")
        return self.detectors[language].detect(segments, facts, language)
