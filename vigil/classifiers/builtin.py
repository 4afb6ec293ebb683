"""Built-in signals from models that ship inside PyPI packages (no downloads at run time).

- ``language``: language identification with py3langid (97 languages); the label is an ISO 639-1
  code and the score its normalised probability.
- ``profanity``: offensive-language probability from alt-profanity-check (English, a linear SVM
  over words); flagged at 0.5.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Sequence
from typing import Any

from vigil.classifiers.base import Classification, ClassifierError


def _package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError as error:
        raise ClassifierError(f"built-in classifier needs {dist}: pip install 'vigil[ml]'") from error


class LanguageClassifier:
    """Language identification (py3langid), as a classifier named ``language``."""

    name = "language"

    def __init__(self) -> None:
        self.version = f"py3langid-{_package_version('py3langid')}"
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        # Our own identifier instance: py3langid's module-level one is global state.
        self._identifier: Any = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self.labels: tuple[str, ...] = tuple(self._identifier.nb_classes)

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        """The most likely language of each text and its probability."""
        out = []
        for text in texts:
            code, prob = self._identifier.classify(text)
            out.append(Classification(label=str(code), score=float(prob), flagged=None, version=self.version))
        return out

    async def aclassify(
        self, texts: Sequence[str], *, deadline_s: float | None = None
    ) -> list[Classification]:
        """:meth:`classify` in a worker thread."""
        return await asyncio.to_thread(self.classify, texts)


class ProfanityClassifier:
    """Offensive-language probability (alt-profanity-check), as a classifier named ``profanity``."""

    name = "profanity"
    labels = ("clean", "profane")

    def __init__(self, threshold: float = 0.5) -> None:
        self.version = f"alt-profanity-check-{_package_version('alt-profanity-check')}"
        self.threshold = threshold

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        """Probability that each text is offensive; flagged at or above ``threshold``."""
        if not texts:
            return []
        from profanity_check import predict_prob

        return [
            Classification(
                label=self.labels[int(score >= self.threshold)],
                score=float(score),
                flagged=bool(score >= self.threshold),
                version=self.version,
            )
            for score in predict_prob(list(texts))
        ]

    async def aclassify(
        self, texts: Sequence[str], *, deadline_s: float | None = None
    ) -> list[Classification]:
        """:meth:`classify` in a worker thread."""
        return await asyncio.to_thread(self.classify, texts)
