"""Running candidates over a dataset and comparing two of them."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vigil.eval.candidates import Candidate, Prediction
from vigil.eval.datasets import Dataset
from vigil.eval.metrics import (
    Bootstrap,
    Confusion,
    McNemar,
    bootstrap,
    confusion,
    mcnemar_exact,
    paired_bootstrap,
    percentile,
    pr_curve,
)

MAX_ERRORS_LISTED = 50
# Texts handed to a candidate at a time, so a long run can report progress as it goes.
PROGRESS_CHUNK = 256

Progress = Callable[[int], None]


class EvaluationFailed(RuntimeError):
    """Too many examples got no answer (an unreachable endpoint, a broken model) for figures to mean anything."""


@dataclass(frozen=True, slots=True)
class Misclassified:
    """An example the candidate got wrong (or abstained on)."""

    index: int
    text: str
    expected: bool
    predicted: bool | None
    score: float | None
    rationale: str
    meta: dict[str, str]


@dataclass(frozen=True, slots=True)
class EvalResult:
    """One candidate's results on one dataset."""

    candidate: str
    version: str
    dataset: str
    created_at: str
    overall: Confusion
    slices: dict[str, dict[str, Confusion]]
    latency_p50_s: float
    latency_p99_s: float
    tokens: int
    average_precision: float | None
    pr_precision: list[float]
    pr_recall: list[float]
    misclassified: list[Misclassified]
    ci: Bootstrap
    unanswered_reasons: dict[str, int]
    truth: list[bool] = field(repr=False)
    predictions: list[Prediction] = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (per-example predictions included, for later pairing)."""
        return {
            "candidate": self.candidate,
            "version": self.version,
            "dataset": self.dataset,
            "created_at": self.created_at,
            "overall": self.overall.as_dict(),
            "confidence_intervals": self.ci.as_dict(),
            "unanswered_reasons": self.unanswered_reasons,
            "slices": {col: {v: c.as_dict() for v, c in vals.items()} for col, vals in self.slices.items()},
            "latency_p50_s": self.latency_p50_s,
            "latency_p99_s": self.latency_p99_s,
            "tokens": self.tokens,
            "average_precision": self.average_precision,
            "misclassified": [asdict(m) for m in self.misclassified],
            "predictions": [{"label": p.label, "score": p.score} for p in self.predictions],
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """Candidate B against candidate A on the same examples."""

    a: EvalResult
    b: EvalResult
    mcnemar: McNemar
    delta_ci: Bootstrap

    def deltas(self) -> dict[str, float | None]:
        """B minus A for the headline rates (None where either is undefined)."""
        out: dict[str, float | None] = {}
        for k in ("precision", "recall", "f1", "fpr", "accuracy", "coverage"):
            x, y = getattr(self.a.overall, k), getattr(self.b.overall, k)
            out[k] = None if x is None or y is None else y - x
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: both results, the deltas with their intervals, and McNemar's test of accuracy."""
        return {
            "a": self.a.as_dict(),
            "b": self.b.as_dict(),
            "delta_b_minus_a": self.deltas(),
            "delta_confidence_intervals": self.delta_ci.as_dict(),
            "mcnemar_accuracy": asdict(self.mcnemar),
        }


def evaluate(candidate: Candidate, dataset: Dataset, *, slice_by: Sequence[str] = (),
             progress: Progress | None = None, max_unanswered: float = 1.0) -> EvalResult:
    """Run ``candidate`` over ``dataset`` and measure it, overall and per value of each slice column.

    ``progress`` is told how many examples each chunk finished. When more than ``max_unanswered`` of
    the examples got no answer, :class:`EvaluationFailed` says why instead of reporting empty figures.
    """
    texts = dataset.texts
    predictions: list[Prediction] = []
    for start in range(0, len(texts), PROGRESS_CHUNK):
        chunk = texts[start : start + PROGRESS_CHUNK]
        answers = candidate.predict(chunk)
        if len(answers) != len(chunk):
            raise ValueError(f"{candidate.name} gave {len(answers)} predictions for {len(chunk)} texts")
        predictions.extend(answers)
        if progress is not None:
            progress(len(chunk))
    result = score_predictions(candidate.name, candidate.version, dataset, predictions, slice_by=slice_by)
    unanswered = result.overall.unknown
    if len(dataset) and unanswered / len(dataset) > max_unanswered:
        reasons = "; ".join(f"{n}× {why}" for why, n in list(result.unanswered_reasons.items())[:3])
        raise EvaluationFailed(
            f"{candidate.name}: {unanswered} of {len(dataset)} examples got no answer ({reasons}); "
            f"fix the candidate (is the endpoint reachable?) or allow it with --max-unanswered"
        )
    return result


def score_predictions(
    name: str,
    version: str,
    dataset: Dataset,
    predictions: Sequence[Prediction],
    *,
    slice_by: Sequence[str] = (),
) -> EvalResult:
    """Measure given predictions against ``dataset`` (for candidates run elsewhere)."""
    truth = dataset.labels
    labels = [p.label for p in predictions]
    slices: dict[str, dict[str, Confusion]] = {}
    for column in slice_by:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, example in enumerate(dataset.examples):
            groups[example.meta.get(column, "")].append(i)
        slices[column] = {
            value: confusion([truth[i] for i in idx], [labels[i] for i in idx])
            for value, idx in sorted(groups.items())
        }
    curve = pr_curve(truth, [p.score for p in predictions])
    wrong = [
        Misclassified(i, ex.text, ex.label, p.label, p.score, p.rationale, ex.meta)
        for i, (ex, p) in enumerate(zip(dataset.examples, predictions, strict=True))
        if p.label != ex.label
    ]
    latencies = [p.latency_s for p in predictions]
    reasons = Counter(p.rationale or "no reason given" for p in predictions if p.label is None)
    return EvalResult(
        candidate=name,
        version=version,
        dataset=dataset.path,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        overall=confusion(truth, labels),
        slices=slices,
        latency_p50_s=percentile(latencies, 50),
        latency_p99_s=percentile(latencies, 99),
        tokens=sum(p.tokens for p in predictions),
        average_precision=curve[2] if curve else None,
        pr_precision=curve[0] if curve else [],
        pr_recall=curve[1] if curve else [],
        misclassified=wrong[:MAX_ERRORS_LISTED],
        ci=bootstrap(truth, labels),
        unanswered_reasons=dict(reasons.most_common()),
        truth=list(truth),
        predictions=list(predictions),
    )


def compare(a: EvalResult, b: EvalResult) -> Comparison:
    """Pair two results on the same dataset and test whether their error rates differ."""
    if a.truth != b.truth:
        raise ValueError("results come from different datasets or orders; cannot pair them")
    la, lb = [p.label for p in a.predictions], [p.label for p in b.predictions]
    return Comparison(a, b, mcnemar_exact(a.truth, la, lb), paired_bootstrap(a.truth, la, lb))


def save_json(data: dict[str, Any], path: Path) -> None:
    """Write a result or comparison as indented JSON."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
