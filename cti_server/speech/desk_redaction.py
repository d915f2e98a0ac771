"""The redaction the server uses for transcripts, as the agent UI's
:class:`~cti_server.control.Redaction`: a call's utterances redacted together."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from cti_server.events import Utterance
from cti_server.speech import text_redaction


class SequenceRedaction:
    """Redacts for the deployment's region and those the transcription service redacts for."""

    def __init__(self, region: str) -> None:
        self.regions = text_redaction.regions_for(region)

    def __call__(self, said: Sequence[Utterance], still_speaking: Collection[str]) -> list[str]:
        found = text_redaction.redact_sequence(
            list(said), self.regions, still_speaking=still_speaking
        )
        return [result.text for result in found]
