"""Training, saving and loading the local few-shot classifier."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest

from vigil.classifiers import local
from vigil.classifiers.base import Classifier, ClassifierError
from vigil.classifiers.features import MINILM, TFIDF, embeddings_available


def _hatecheck(path: Path, n_train: int, n_test: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    random.Random(7).shuffle(rows)
    return rows[:n_train], rows[n_train : n_train + n_test]


def _balanced_accuracy(clf: local.LocalClassifier, rows: list[dict[str, str]]) -> float:
    predicted = [a.flagged for a in clf.classify([r["test_case"] for r in rows])]
    truth = [r["label_gold"] == "hateful" for r in rows]
    positives = [bool(p) for p, t in zip(predicted, truth, strict=True) if t]
    negatives = [not p for p, t in zip(predicted, truth, strict=True) if not t]
    return (sum(positives) / len(positives) + sum(negatives) / len(negatives)) / 2


def test_tfidf_classifier_beats_chance_on_held_out_data(hatecheck_en: Path, tmp_path: Path) -> None:
    train, test = _hatecheck(hatecheck_en, 300, 600)
    clf = local.train(
        "hate", [r["test_case"] for r in train], [r["label_gold"] for r in train], featurizer=TFIDF,
        positive_label="hateful",
    )  # fmt: skip
    assert isinstance(clf, Classifier)
    assert _balanced_accuracy(clf, test) > 0.75  # chance is 0.5
    meta = clf.metadata
    assert meta.labels == ("hateful", "non-hateful") and meta.positive_label == "hateful"
    assert meta.metrics.folds == 5 and meta.metrics.f1 is not None and meta.metrics.f1 > 0.6

    # Round trip: the saved artifact answers exactly as the trained one.
    path = clf.save(tmp_path)
    assert path == tmp_path / "hate" / meta.version
    assert (tmp_path / "hate" / "LATEST").read_text().strip() == meta.version
    assert not any(p.suffix in (".pkl", ".joblib") for p in path.iterdir())
    loaded = local.load(tmp_path, "hate")
    texts = [r["test_case"] for r in test[:50]]
    np.testing.assert_allclose(loaded.probabilities(texts), clf.probabilities(texts), atol=1e-9)
    assert loaded.version == clf.version


def test_training_is_deterministic_and_versions_differ_by_data() -> None:
    texts = [
        "buy cheap pills",
        "cheap pills now",
        "win money fast",
        "hello friend",
        "see you at lunch",
        "nice photo",
    ]
    labels = ["spam", "spam", "spam", "ham", "ham", "ham"]
    a = local.train("spam", texts, labels, featurizer=TFIDF)
    b = local.train("spam", texts, labels, featurizer=TFIDF)
    c = local.train("spam", [*texts, "free money"], [*labels, "spam"], featurizer=TFIDF)
    assert a.version == b.version != c.version
    # "spam" is the positive label because it is the classifier's name.
    assert a.metadata.positive_label == "spam"
    [answer] = a.classify(["cheap pills, win money"])
    assert answer.label == "spam" and answer.flagged and answer.score is not None and answer.score > 0.5


def test_multiclass_without_positive_label() -> None:
    texts = ["buy pills", "cheap pills", "you idiot", "stupid idiot", "hello there", "good morning"]
    labels = ["spam", "spam", "abuse", "abuse", "ok", "ok"]
    clf = local.train("triage", texts, labels, featurizer=TFIDF)
    [answer] = clf.classify(["idiot"])
    assert answer.label == "abuse" and answer.flagged is None
    assert clf.probabilities(["idiot"]).sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("labels", "positive", "message"),
    [
        (["a", "a", "a", "a"], None, "at least two labels"),
        (["a", "a", "a", "b"], None, "at least 2 examples"),
        (["a", "a", "b", "b"], None, "which of"),
        (["a", "a", "b", "b"], "c", "not among"),
    ],
)
def test_bad_training_data_is_a_clear_error(labels: list[str], positive: str | None, message: str) -> None:
    with pytest.raises(ClassifierError, match=message):
        local.train("x", ["t1", "t2", "t3", "t4"], labels, featurizer=TFIDF, positive_label=positive)


def test_loading_a_missing_classifier_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ClassifierError, match="no trained classifier 'nope'"):
        local.load(tmp_path, "nope")


@pytest.mark.skipif(not embeddings_available(), reason="needs the ml extra (sentence-transformers)")
def test_embedding_classifier_learns_from_fifty_examples(hatecheck_en: Path, tmp_path: Path) -> None:
    train, test = _hatecheck(hatecheck_en, 50, 300)
    clf = local.train(
        "hate", [r["test_case"] for r in train], [r["label_gold"] for r in train], featurizer=MINILM,
        positive_label="hateful",
    )  # fmt: skip
    assert _balanced_accuracy(clf, test) > 0.6
    loaded = local.load_path(clf.save(tmp_path))
    assert loaded.metadata.featurizer == MINILM
    np.testing.assert_allclose(
        loaded.probabilities(["I hate them"]), clf.probabilities(["I hate them"]), atol=1e-6
    )


def test_the_threshold_comes_from_cross_validation_and_lifts_recall_from_few_examples(
    tmp_path: Path,
) -> None:
    from vigil.eval.candidates import ClassifierCandidate
    from vigil.eval.datasets import load_dataset
    from vigil.eval.runner import evaluate

    data_file = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "moderation" / "dev.jsonl"
    if not data_file.is_file():
        pytest.skip(f"shared data not found at {data_file}")
    data = load_dataset(data_file, text_column="prompt", label_columns=["S", "H", "V", "HR", "SH", "S3", "H2", "V2"],
                        missing="negative")  # fmt: skip
    recall_gains, gains = [], []
    for seed in (1, 2):
        train, test = data.split(50, seed=seed)
        clf = local.train("mod", train.texts, ["1" if y else "0" for y in train.labels], featurizer=TFIDF)
        m = clf.metadata.metrics
        assert m.threshold is not None and m.threshold_target == "balanced" and m.f1_at_half is not None
        chosen = evaluate(ClassifierCandidate(clf), test).overall
        at_half = evaluate(ClassifierCandidate(clf, threshold=0.5), test).overall
        assert chosen.recall is not None and chosen.f1 is not None
        assert at_half.recall is not None and at_half.f1 is not None
        recall_gains.append(chosen.recall - at_half.recall)
        gains.append(chosen.f1 - at_half.f1)
        # The artifact keeps the threshold and says what it was chosen for.
        loaded = local.load_path(clf.save(tmp_path / str(seed)))
        assert loaded.metadata.metrics.threshold == m.threshold
        assert [a.flagged for a in loaded.classify(test.texts[:20])] == [
            a.flagged for a in clf.classify(test.texts[:20])
        ]
    # At the head's own 0.5 these held-out recalls were 0.25 and 0.27 (issue 10.17 saw 16%); the chosen
    # threshold gave 0.74 and 0.44 when measured.
    assert min(recall_gains) > 0.1
    assert sum(gains) > 0.2


def test_choose_threshold_for_a_false_positive_bound() -> None:
    truth = np.array([1, 0, 1, 0, 0, 1, 0, 0], dtype=bool)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    # At 0.7: one false positive of five negatives (FPR 0.2), two of three positives.
    assert local.choose_threshold(truth, scores, "fpr<=0.2") == 0.7
    assert local.choose_threshold(truth, scores, "fpr<=0") == 0.9
    # F1 is 2/3 at 0.7 and at 0.4: a tie goes to the higher score, for fewer flags.
    assert local.choose_threshold(truth, scores, "f1") == 0.7
    # Recall minus FPR: 0.9 gives 1/3, 0.7 gives 2/3-1/5, 0.4 gives 1-3/5: 0.7 is best.
    assert local.choose_threshold(truth, scores, "balanced") == 0.7
    with pytest.raises(ClassifierError, match="use 'balanced', 'f1' or 'fpr<=X'"):
        local.choose_threshold(truth, scores, "recall")
