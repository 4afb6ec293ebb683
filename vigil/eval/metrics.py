"""Pure metric functions over boolean truths and (possibly abstaining) predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Confusion:
    """Counts and the rates derived from them; abstentions (``unknown``) are counted apart."""

    tp: int
    fp: int
    tn: int
    fn: int
    unknown: int

    @property
    def n(self) -> int:
        """Examples, abstentions included."""
        return self.tp + self.fp + self.tn + self.fn + self.unknown

    @property
    def precision(self) -> float:
        """TP / (TP + FP); 0 when nothing was flagged."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """TP / (TP + FN) over answered examples."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def fpr(self) -> float:
        """False-positive rate: FP / (FP + TN)."""
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def accuracy(self) -> float:
        """Correct answers over answered examples."""
        return _ratio(self.tp + self.tn, self.n - self.unknown)

    @property
    def coverage(self) -> float:
        """Share of examples the candidate answered."""
        return _ratio(self.n - self.unknown, self.n)

    def as_dict(self) -> dict[str, float | int]:
        """Counts and rates, for JSON."""
        return {
            "n": self.n, "tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn, "unknown": self.unknown,
            "precision": self.precision, "recall": self.recall, "f1": self.f1, "fpr": self.fpr,
            "accuracy": self.accuracy, "coverage": self.coverage,
        }  # fmt: skip


def confusion(truth: Sequence[bool], predicted: Sequence[bool | None]) -> Confusion:
    """Count outcomes; ``None`` predictions are abstentions.

    >>> confusion([True, False, True], [True, True, None]).as_dict()["precision"]
    0.5
    """
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} truths but {len(predicted)} predictions")
    tp = fp = tn = fn = unknown = 0
    for t, p in zip(truth, predicted, strict=True):
        if p is None:
            unknown += 1
        elif p and t:
            tp += 1
        elif p:
            fp += 1
        elif t:
            fn += 1
        else:
            tn += 1
    return Confusion(tp, fp, tn, fn, unknown)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100), 0.0 for no values."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else 0.0


@dataclass(frozen=True, slots=True)
class McNemar:
    """McNemar's exact test on paired predictions of two candidates over the same examples."""

    a_only_correct: int
    b_only_correct: int
    p_value: float


def mcnemar_exact(truth: Sequence[bool], a: Sequence[bool | None], b: Sequence[bool | None]) -> McNemar:
    """Two-sided exact McNemar test over the examples both candidates answered.

    Only discordant pairs count: the examples exactly one candidate got right. Under the null
    hypothesis each is equally likely to go either way, so the p-value is a binomial test.
    """
    from scipy.stats import binomtest

    a_only = b_only = 0
    for t, x, y in zip(truth, a, b, strict=True):
        if x is None or y is None:
            continue
        if (x == t) and (y != t):
            a_only += 1
        elif (y == t) and (x != t):
            b_only += 1
    discordant = a_only + b_only
    p = 1.0 if discordant == 0 else float(binomtest(a_only, discordant, 0.5).pvalue)
    return McNemar(a_only, b_only, p)


def pr_curve(
    truth: Sequence[bool], scores: Sequence[float | None]
) -> tuple[list[float], list[float], float] | None:
    """Precision, recall and average precision over scored examples; None without both classes."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    pairs = [(t, s) for t, s in zip(truth, scores, strict=True) if s is not None]
    ys = [t for t, _ in pairs]
    if not pairs or all(ys) or not any(ys):
        return None
    y, s = np.array(ys), np.array([s for _, s in pairs])
    precision, recall, _ = precision_recall_curve(y, s)
    return precision.tolist(), recall.tolist(), float(average_precision_score(y, s))


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0
