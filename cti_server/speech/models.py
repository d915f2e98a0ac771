"""Vosk models by language: the user's own, by path; loaded once, off the event loop.

Loading a model takes seconds and hundreds of MB, so each is loaded the first time a language is
needed (or at start with :meth:`SpeechModels.preload`), in a worker thread, and then shared.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

UNKNOWN = "[unk]"
SAMPLE_RATE = 8000  # telephone audio, as AudioSocket and Asterisk recordings carry it


class SpeechModels:
    def __init__(self, paths: Mapping[str, Path]) -> None:
        self._paths = dict(paths)
        self._models: dict[str, Any] = {}
        self._locks = {language: asyncio.Lock() for language in self._paths}

    def languages(self) -> set[str]:
        return set(self._paths)

    async def get(self, language: str) -> Any | None:
        """The model for ``language``, or None when the user configured none."""
        if language not in self._paths:
            return None
        async with self._locks[language]:
            if language not in self._models:
                self._models[language] = await asyncio.to_thread(load_model, self._paths[language])
                log.info("speech model for %r loaded from %s", language, self._paths[language])
        return self._models[language]

    async def preload(self) -> None:
        for language in sorted(self._paths):
            await self.get(language)


def load_model(path: Path) -> Any:
    from vosk import Model, SetLogLevel  # noqa: PLC0415 - heavy native library, loaded on use

    SetLogLevel(-1)
    return Model(str(path))


def grammar_recognizer(model: Any, words: Iterable[str]) -> Any:
    """A recognizer that can only hear ``words`` (and silence): a menu's choices.

    Words the model does not know are left out (Vosk would warn and ignore them anyway); a
    grammar with no known word would hear anything, so it is refused. Where the model has an
    ``[unk]`` word, other speech is heard as that instead of the nearest menu word; models
    without it (the small Korean one) map any speech to the nearest menu word.
    """
    from vosk import KaldiRecognizer  # noqa: PLC0415

    known = [w for w in words if model.vosk_model_find_word(w) != -1]
    if not known:
        raise ValueError("none of the menu's words is in the speech model's vocabulary")
    if model.vosk_model_find_word(UNKNOWN) != -1:
        known.append(UNKNOWN)
    return KaldiRecognizer(model, SAMPLE_RATE, json.dumps(known, ensure_ascii=False))
