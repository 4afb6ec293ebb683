"""Evaluating candidates and comparing two."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from vigil.classifiers import local
from vigil.classifiers.features import TFIDF
from vigil.eval.candidates import ClassifierCandidate, Prediction
from vigil.eval.datasets import load_dataset
from vigil.eval.report import render_html
from vigil.eval.runner import compare, evaluate


class KeywordCandidate:
    """Flags texts containing a word; abstains on texts containing '?'."""

    def __init__(self, word: str) -> None:
        self.name = f"keyword:{word}"
        self.version = "1"
        self.word = word

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return [
            Prediction(
                None if "?" in t else self.word in t, 1.0 if self.word in t else 0.0, latency_s=0.01, tokens=3
            )
            for t in texts
        ]


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    rows = [
        ("you idiot", 1, "en"), ("idiot!", 1, "en"), ("moron", 1, "en"), ("hello", 0, "en"),
        ("idiota", 1, "es"), ("hola", 0, "es"), ("idiot?", 1, "es"), ("idiotic plan, nice", 0, "en"),
    ]  # fmt: skip
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": y, "lang": lang}) + "\n" for t, y, lang in rows))
    return path


def test_evaluate_reports_metrics_slices_latency_and_errors(dataset: Path) -> None:
    result = evaluate(KeywordCandidate("idiot"), load_dataset(dataset), slice_by=["lang"])
    o = result.overall
    assert (o.tp, o.fp, o.tn, o.fn, o.unknown) == (3, 1, 2, 1, 1)
    assert set(result.slices["lang"]) == {"en", "es"}
    assert result.slices["lang"]["es"].unknown == 1
    assert result.latency_p50_s == pytest.approx(0.01) and result.tokens == 24
    assert {m.text for m in result.misclassified} == {"moron", "idiot?", "idiotic plan, nice"}
    summary = result.as_dict()
    assert summary["overall"]["f1"] == pytest.approx(o.f1) and len(summary["predictions"]) == 8
    json.dumps(summary)


def test_compare_two_candidates_and_render_report(dataset: Path) -> None:
    data = load_dataset(dataset)
    a = evaluate(KeywordCandidate("idiot"), data, slice_by=["lang"])
    b = evaluate(KeywordCandidate("o"), data, slice_by=["lang"])
    comparison = compare(a, b)
    assert comparison.deltas()["f1"] == pytest.approx(b.overall.f1 - a.overall.f1)
    assert 0.0 <= comparison.mcnemar.p_value <= 1.0
    html = render_html([a, b], comparison, title="A/B <test>")
    assert html.count("data:image/png;base64,") == 1 + 2 * 2  # PR curve, then confusion + slice plot each
    assert "McNemar" in html and "A/B &lt;test&gt;" in html and "idiotic plan, nice" in html
    json.dumps(comparison.as_dict())


def test_results_from_different_data_cannot_be_paired(dataset: Path) -> None:
    data = load_dataset(dataset)
    a = evaluate(KeywordCandidate("idiot"), data)
    b = evaluate(KeywordCandidate("idiot"), data.sample(4))
    with pytest.raises(ValueError, match="cannot pair"):
        compare(a, b)


def test_classifier_candidate_threshold(dataset: Path) -> None:
    texts = [
        "buy cheap pills",
        "cheap pills now",
        "win money fast",
        "hello friend",
        "see you at lunch",
        "nice photo",
    ]
    clf = local.train("spam", texts, ["spam"] * 3 + ["ham"] * 3, featurizer=TFIDF)
    loose = ClassifierCandidate(clf, threshold=0.0).predict(["hello"])
    strict = ClassifierCandidate(clf, threshold=1.01).predict(["cheap pills"])
    assert loose[0].label is True and strict[0].label is False
    assert loose[0].score is not None


def test_progress_is_reported_in_chunks_and_adds_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.eval import runner

    monkeypatch.setattr(runner, "PROGRESS_CHUNK", 3)
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n" for i in range(8)))
    seen: list[int] = []
    result = evaluate(KeywordCandidate("t1"), load_dataset(path), progress=seen.append)
    assert seen == [3, 3, 2] and result.overall.n == 8


def test_too_many_unanswered_fails_with_the_reasons(dataset: Path) -> None:
    from vigil.eval.runner import EvaluationFailed

    class Down:
        name, version = "down", "0"

        def predict(self, texts: Sequence[str]) -> list[Prediction]:
            return [Prediction(None, rationale="connection refused") for _ in texts]

    with pytest.raises(EvaluationFailed, match=r"8 of 8 examples got no answer \(8× connection refused\)"):
        evaluate(Down(), load_dataset(dataset), max_unanswered=0.5)
    # One abstention in eight is within a 20% allowance.
    assert evaluate(KeywordCandidate("idiot"), load_dataset(dataset), max_unanswered=0.2).overall.unknown == 1
