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

    # Each rate is None ("n/a") when its denominator is zero: a slice with no positives has no recall,
    # and reporting 0.000 there reads as a total failure that never happened.

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP); None when nothing was flagged."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        """TP / (TP + FN) over answered examples; None without positives."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        """Harmonic mean of precision and recall; None with no positives and nothing flagged."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def fpr(self) -> float | None:
        """False-positive rate: FP / (FP + TN); None without negatives."""
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def accuracy(self) -> float | None:
        """Correct answers over answered examples."""
        return _ratio(self.tp + self.tn, self.n - self.unknown)

    @property
    def coverage(self) -> float | None:
        """Share of examples the candidate answered."""
        return _ratio(self.n - self.unknown, self.n)

    def as_dict(self) -> dict[str, float | int | None]:
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
    """McNemar's exact test on paired predictions of two candidates over the same examples.

    It tests whether the two *error rates* (accuracy) differ, nothing else: two candidates can be far apart
    in F1 with p = 1. Differences in precision, recall or F1 are judged by :func:`paired_bootstrap`.
    """

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


METRICS = ("precision", "recall", "f1", "fpr", "accuracy")


def fmt(value: float | None, spec: str = ".3f") -> str:
    """A rate for people: ``n/a`` when it is undefined.

    >>> fmt(0.5), fmt(None)
    ('0.500', 'n/a')
    """
    return "n/a" if value is None else format(value, spec)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


# --- Bootstrap confidence intervals --------------------------------------------------------------
# Percentile bootstrap over examples. For an A/B comparison both candidates are resampled with the same
# indices (a paired bootstrap), so the interval of the difference accounts for their shared examples.

Interval = tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """Confidence intervals from ``resamples`` draws at ``level`` (per metric; None when undefined)."""

    level: float
    resamples: int
    seed: int
    intervals: dict[str, Interval]

    def as_dict(self) -> dict[str, object]:
        """For JSON."""
        return {"level": self.level, "resamples": self.resamples, "seed": self.seed,
                "intervals": {k: list(v) if v else None for k, v in self.intervals.items()}}  # fmt: skip


def _outcomes(truth: Sequence[bool], predicted: Sequence[bool | None]) -> np.ndarray:
    """One row per outcome kind (tp, fp, tn, fn) of 0/1 per example; abstentions are in none."""
    t = np.asarray(truth, dtype=bool)
    answered = np.array([p is not None for p in predicted], dtype=bool)
    p = np.array([bool(x) for x in predicted], dtype=bool)
    return np.stack([answered & p & t, answered & p & ~t, answered & ~p & ~t, answered & ~p & t]).astype(np.int32)


def _rates(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric per resample from counts of shape (4, B); NaN where undefined."""
    tp, fp, tn, fn = (counts[i].astype(np.float64) for i in range(4))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
            "f1": 2 * tp / (2 * tp + fp + fn),
            "fpr": fp / (fp + tn),
            "accuracy": (tp + tn) / (tp + fp + tn + fn),
        }


def _resampled_counts(outcomes: list[np.ndarray], resamples: int, seed: int) -> list[np.ndarray]:
    """Counts (4, B) per outcome matrix, all drawn with the same indices; chunked to bound memory."""
    n = outcomes[0].shape[1]
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, 2_000_000 // max(1, n)))
    parts: list[list[np.ndarray]] = [[] for _ in outcomes]
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        # Counting how often each example is drawn turns resampling into one matrix product.
        draws = rng.multinomial(n, np.full(n, 1.0 / n), size=size).T  # (n, size)
        for k, o in enumerate(outcomes):
            parts[k].append(o @ draws)
        done += size
    return [np.concatenate(p, axis=1) for p in parts]


def _interval(values: np.ndarray, level: float) -> Interval:
    defined = values[~np.isnan(values)]
    # Fewer than half the resamples defining a metric means the data cannot support an interval.
    if defined.size < values.size / 2:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(defined, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap(truth: Sequence[bool], predicted: Sequence[bool | None], *, resamples: int = 1000,
              level: float = 0.95, seed: int = 0) -> Bootstrap:
    """Percentile-bootstrap intervals of each metric.

    >>> b = bootstrap([True, False] * 50, [True, False] * 50)
    >>> b.intervals["f1"]
    (1.0, 1.0)
    """
    if not len(truth):
        return Bootstrap(level, resamples, seed, dict.fromkeys(METRICS))
    (counts,) = _resampled_counts([_outcomes(truth, predicted)], resamples, seed)
    rates = _rates(counts)
    return Bootstrap(level, resamples, seed, {m: _interval(rates[m], level) for m in METRICS})


def paired_bootstrap(truth: Sequence[bool], a: Sequence[bool | None], b: Sequence[bool | None], *,
                     resamples: int = 1000, level: float = 0.95, seed: int = 0) -> Bootstrap:
    """Intervals of B minus A for each metric, both resampled with the same examples.

    An interval that excludes 0 says the difference is unlikely to be chance at that level.
    """
    if not len(truth):
        return Bootstrap(level, resamples, seed, dict.fromkeys(METRICS))
    ca, cb = _resampled_counts([_outcomes(truth, a), _outcomes(truth, b)], resamples, seed)
    ra, rb = _rates(ca), _rates(cb)
    return Bootstrap(level, resamples, seed, {m: _interval(rb[m] - ra[m], level) for m in METRICS})
