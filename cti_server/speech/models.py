"""Vosk models by language: the user's own, by path; loaded once, off the event loop.

Loading a model takes seconds and hundreds of MB, so each is loaded the first time a language is
needed (or at start with :meth:`SpeechModels.preload`), in a worker thread, and then shared.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

UNKNOWN = "[unk]"
SAMPLE_RATE = 8000  # telephone audio, as AudioSocket and Asterisk recordings carry it


class SpeechModels:
    def __init__(self, paths: Mapping[str, Path], end_silence: float | None = None) -> None:
        """``end_silence``: seconds of silence after speech that close an utterance (see
        :func:`with_end_silence`); None keeps each model's own rules."""
        self._paths = dict(paths)
        self._end_silence = end_silence
        self._views: Path | None = None  # the tuned views of the models, removed with us
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
                path = self._paths[language]
                if self._end_silence is not None:
                    if self._views is None:
                        self._views = Path(tempfile.mkdtemp(prefix="cti-speech-"))
                        weakref.finalize(self, shutil.rmtree, self._views, ignore_errors=True)
                    into = self._views / language
                    path = with_end_silence(path, self._end_silence, into)
                self._models[language] = await asyncio.to_thread(load_model, path)
                log.info("speech model for %r loaded from %s", language, self._paths[language])
        return self._models[language]

    async def preload(self) -> None:
        for language in sorted(self._paths):
            await self.get(language)


_RULES = {"rule2": 1.0, "rule3": 1.0, "rule4": 2.0}  # Kaldi endpoint rules, x end_silence
_TRAILING = re.compile(r"--endpoint\.(rule[234])\.min-trailing-silence=[0-9.]+")


def with_end_silence(model: Path, seconds: float, into: Path) -> Path:
    """A view of ``model`` (links to its files, built in ``into``) whose endpoint rules close an
    utterance ``seconds`` after speech stops (twice that when the decoder is unsure), where the
    models ship 0.5-1.0 s (2.0 s unsure): a supervisor reads the line that much sooner, and a
    spoken menu answers sooner. A model without ``conf/model.conf`` is used as it is."""
    conf = model / "conf" / "model.conf"
    if not conf.is_file():
        return model
    into.mkdir(parents=True, exist_ok=True)
    for entry in model.iterdir():
        if entry.name != "conf" and not (into / entry.name).exists():
            (into / entry.name).symlink_to(entry.resolve())
    (into / "conf").mkdir(exist_ok=True)
    for entry in (model / "conf").iterdir():
        if entry.name != "model.conf" and not (into / "conf" / entry.name).exists():
            (into / "conf" / entry.name).symlink_to(entry.resolve())
    text = _TRAILING.sub(
        lambda m: f"--endpoint.{m[1]}.min-trailing-silence={seconds * _RULES[m[1]]:g}",
        conf.read_text(encoding="utf-8"),
    )
    (into / "conf" / "model.conf").write_text(text, encoding="utf-8")
    return into


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
