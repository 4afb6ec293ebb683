"""Running candidates over a dataset and comparing two of them."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vigil.eval.candidates import Candidate, Prediction
from vigil.eval.datasets import Dataset
from vigil.eval.metrics import Confusion, McNemar, confusion, mcnemar_exact, percentile, pr_curve

MAX_ERRORS_LISTED = 50


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

    def deltas(self) -> dict[str, float]:
        """B minus A for the headline rates."""
        a, b = self.a.overall, self.b.overall
        return {k: getattr(b, k) - getattr(a, k) for k in ("precision", "recall", "f1", "fpr", "coverage")}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: both results, the deltas and the test."""
        return {
            "a": self.a.as_dict(),
            "b": self.b.as_dict(),
            "delta_b_minus_a": self.deltas(),
            "mcnemar": asdict(self.mcnemar),
        }


def evaluate(candidate: Candidate, dataset: Dataset, *, slice_by: Sequence[str] = ()) -> EvalResult:
    """Run ``candidate`` over ``dataset`` and measure it, overall and per value of each slice column."""
    predictions = candidate.predict(dataset.texts)
    if len(predictions) != len(dataset):
        raise ValueError(f"{candidate.name} gave {len(predictions)} predictions for {len(dataset)} texts")
    return score_predictions(candidate.name, candidate.version, dataset, predictions, slice_by=slice_by)


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
        truth=list(truth),
        predictions=list(predictions),
    )


def compare(a: EvalResult, b: EvalResult) -> Comparison:
    """Pair two results on the same dataset and test whether their error rates differ."""
    if a.truth != b.truth:
        raise ValueError("results come from different datasets or orders; cannot pair them")
    test = mcnemar_exact(a.truth, [p.label for p in a.predictions], [p.label for p in b.predictions])
    return Comparison(a, b, test)


def save_json(data: dict[str, Any], path: Path) -> None:
    """Write a result or comparison as indented JSON."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
