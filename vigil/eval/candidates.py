"""What the harness evaluates: anything that turns texts into boolean predictions.

A :class:`Candidate` is a small Protocol so a rules set (plugged in by the engine), a trained
classifier or a policy-prompted model can be compared on the same data.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from vigil.classifiers.base import Classifier


@dataclass(frozen=True, slots=True)
class Prediction:
    """One candidate's answer for one text; ``label=None`` means it abstained ("unknown")."""

    label: bool | None
    score: float | None = None
    latency_s: float = 0.0
    tokens: int = 0
    rationale: str = ""


class Candidate(Protocol):
    """A thing to evaluate: a name, a version, and batched predictions."""

    @property
    def name(self) -> str:
        """Shown in reports."""
        ...

    @property
    def version(self) -> str:
        """Identifies exactly what was evaluated (artifact or policy hash, ruleset hash)."""
        ...

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text, in order."""
        ...


class ClassifierCandidate:
    """Evaluates any :class:`~vigil.classifiers.base.Classifier`.

    The prediction is the classification's ``flagged``; with ``threshold`` set, it is instead
    ``score >= threshold``, which is how a rule ``classifier "x" on text > 0.9`` would decide.
    """

    def __init__(
        self, classifier: Classifier, *, threshold: float | None = None, batch_size: int = 64
    ) -> None:
        self.classifier = classifier
        self.threshold = threshold
        self.batch_size = batch_size

    @property
    def name(self) -> str:
        """The classifier's name."""
        return self.classifier.name

    @property
    def version(self) -> str:
        """The classifier's version."""
        return self.classifier.version

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Classify in batches; per-item latency is the classifier's own, else the batch's share."""
        out: list[Prediction] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            began = time.perf_counter()
            answers = self.classifier.classify(batch)
            share = (time.perf_counter() - began) / max(1, len(batch))
            for answer in answers:
                if not answer.known:
                    label = None
                elif self.threshold is not None and answer.score is not None:
                    label = answer.score >= self.threshold
                else:
                    label = answer.flagged
                out.append(
                    Prediction(
                        label=label,
                        score=answer.score if answer.known else None,
                        latency_s=answer.latency_s if answer.latency_s is not None else share,
                        tokens=answer.tokens,
                        rationale=answer.rationale,
                    )
                )
        return out
