"""A local classifier trained from a few labelled examples: features + a logistic-regression head.

Training takes seconds on a CPU for 20–5,000 examples. The artifact is a directory
``ROOT/NAME/VERSION/`` holding ``head.npz`` (weights), ``metadata.json`` and, for the TF-IDF
featurizer, the vocabulary; ``ROOT/NAME/LATEST`` names the version loaded by default, so an older
version stays on disk for rollback. Nothing in an artifact is a pickle.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vigil.classifiers.base import Classification, ClassifierError
from vigil.classifiers.features import (
    MINILM,
    TFIDF,
    EmbedderPool,
    FloatMatrix,
    TfidfFeatures,
    make_tfidf_vectorizer,
)
from vigil.classifiers.folds import FoldPlan, fold_of_each, near_duplicates_across, plan_folds

ARTIFACT_FORMAT = 1
# Label spellings that mean "the positive class" when a binary set does not say which one it is.
_POSITIVE_SPELLINGS = frozenset({"1", "true", "yes", "positive", "pos"})


@dataclass(frozen=True, slots=True)
class TrainingMetrics:
    """Cross-validated quality of the head, measured at training time.

    For a binary head, precision, recall and F1 are at the chosen ``threshold`` (see
    :func:`choose_threshold`); ``f1_at_half`` is F1 at probability 0.5, the head's own boundary, so the
    gain from choosing is visible. The threshold is chosen on the same out-of-fold scores it is measured
    on, so the figures at it lean optimistic.
    """

    folds: int
    accuracy: float | None
    macro_f1: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    seconds: float
    threshold: float | None = None
    threshold_target: str | None = None
    f1_at_half: float | None = None
    # "grouped" (no value of group_column on both sides of a split) or "random" folds.
    cv: str | None = None
    group_column: str | None = None
    # Share of texts with a near-duplicate held out in another fold (see vigil.classifiers.folds).
    near_duplicate_share: float | None = None

    @property
    def optimistic(self) -> bool:
        """True when near-duplicates crossing folds make the estimate lean optimistic."""
        from vigil.classifiers.folds import NEAR_DUPLICATE_WARN_SHARE

        return (self.near_duplicate_share or 0.0) >= NEAR_DUPLICATE_WARN_SHARE

    def describe(self) -> str:
        """What kind of estimate this is, in words, for the printed summary."""
        from vigil.classifiers.folds import NEAR_DUPLICATE_COSINE

        if not self.folds:
            return "no cross-validation (too few examples of a label for two folds)"
        kind = (f"{self.folds}-fold cross-validation grouped by {self.group_column!r}" if self.cv == "grouped"
                else f"{self.folds}-fold cross-validation on random folds")
        if self.near_duplicate_share is None:
            return kind
        share = f"{self.near_duplicate_share:.0%} of texts have a near-duplicate (cosine >= {NEAR_DUPLICATE_COSINE}) " \
                "in another fold"
        if not self.optimistic:
            return f"{kind}; {share}"
        fix = ("group by a column that keeps them together" if self.cv == "grouped"
               else "pass --group-column (template, author, conversation) if the data has one")
        return f"{kind}; WARNING: {share}, so the estimate is optimistic for unseen texts: {fix}"


# What the decision threshold of a binary head is chosen for: "balanced" (recall minus false-positive
# rate, Youden's J), best "f1", or the most recall whose false-positive rate stays under a bound
# ("fpr<=0.05"). Balanced is the default: measured from 50 examples, F1 chose thresholds that flagged
# 80% of HateCheck's non-hateful texts (positives are the majority there, and F1 then rewards flagging
# everything), while balanced kept 0.5's false-positive rate and still lifted held-out recall on the
# moderation set from 0.25 to 0.44-0.74.
DEFAULT_THRESHOLD_TARGET = "balanced"


@dataclass(frozen=True, slots=True)
class ArtifactMetadata:
    """Everything about a trained classifier except its weights (``metadata.json``)."""

    name: str
    version: str
    featurizer: str
    labels: tuple[str, ...]
    positive_label: str | None
    n_examples: int
    label_counts: dict[str, int]
    created_at: str
    metrics: TrainingMetrics
    regularization_c: float
    format: int = ARTIFACT_FORMAT

    def to_json(self) -> str:
        """Serialise for ``metadata.json``."""
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ArtifactMetadata:
        """Parse ``metadata.json``; raises :class:`ClassifierError` on a foreign format."""
        data = json.loads(text)
        if data.get("format") != ARTIFACT_FORMAT:
            raise ClassifierError(f"unsupported artifact format {data.get('format')!r}")
        data["labels"] = tuple(data["labels"])
        data["metrics"] = TrainingMetrics(**data["metrics"])
        return cls(**data)


class LocalClassifier:
    """A trained head over a featurizer; satisfies :class:`~vigil.classifiers.base.Classifier`."""

    def __init__(
        self,
        metadata: ArtifactMetadata,
        coef: FloatMatrix,
        intercept: FloatMatrix,
        *,
        tfidf: TfidfFeatures | None,
        embedders: EmbedderPool,
    ) -> None:
        self.metadata = metadata
        self._coef = coef
        self._intercept = intercept
        self._tfidf = tfidf
        self._embedders = embedders

    @property
    def name(self) -> str:
        """The classifier's name."""
        return self.metadata.name

    @property
    def version(self) -> str:
        """Content hash of the head and its settings."""
        return self.metadata.version

    @property
    def labels(self) -> tuple[str, ...]:
        """Label names, in the head's column order."""
        return self.metadata.labels

    def probabilities(self, texts: Sequence[str]) -> FloatMatrix:
        """Class probabilities, one row per text, columns in :attr:`labels` order."""
        features = _featurize(self.metadata.featurizer, texts, self._tfidf, self._embedders)
        return _predict_proba(features, self._coef, self._intercept)

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        """Label and score a batch (see :class:`Classification` for the score's meaning)."""
        if not texts:
            return []
        started = time.perf_counter()
        probs = self.probabilities(texts)
        share = (time.perf_counter() - started) / len(texts)
        positive = self.metadata.positive_label
        pos_index = self.labels.index(positive) if positive is not None else None
        out = []
        threshold = self.metadata.metrics.threshold
        for row in probs:
            best = int(np.argmax(row))
            label = self.labels[best]
            score = float(row[pos_index]) if pos_index is not None else float(row[best])
            if threshold is not None and pos_index is not None and len(self.labels) == 2:
                # The threshold chosen by cross-validation decides, not the 0.5 of the head.
                label = self.labels[pos_index] if score >= threshold else self.labels[1 - pos_index]
            out.append(
                Classification(
                    label=label,
                    score=score,
                    flagged=(label == positive) if positive is not None else None,
                    version=self.version,
                    latency_s=share,
                )
            )
        return out

    async def aclassify(
        self, texts: Sequence[str], *, deadline_s: float | None = None
    ) -> list[Classification]:
        """Run :meth:`classify` in a worker thread; CPU-bound, so the deadline is not enforced."""
        return await asyncio.to_thread(self.classify, texts)

    def save(self, root: Path) -> Path:
        """Write the artifact under ``root/NAME/VERSION`` and point ``LATEST`` at it."""
        target_parent = root / self.name
        target_parent.mkdir(parents=True, exist_ok=True)
        target = target_parent / self.version
        if not target.exists():
            # Build in a temporary sibling and rename, so a crash never leaves half an artifact.
            staging = Path(tempfile.mkdtemp(prefix=f".{self.version}-", dir=target_parent))
            np.savez(staging / "head.npz", coef=self._coef, intercept=self._intercept)
            if self._tfidf is not None:
                self._tfidf.save(staging)
            (staging / "metadata.json").write_text(self.metadata.to_json())
            os.replace(staging, target)
        _write_atomic(target_parent / "LATEST", self.version + "\n")
        return target


def load(
    root: Path, name: str, *, version: str | None = None, embedders: EmbedderPool | None = None
) -> LocalClassifier:
    """Load ``root/NAME`` at ``version`` (default: the one in ``LATEST``)."""
    base = root / name
    if version is None:
        latest = base / "LATEST"
        if not latest.is_file():
            raise ClassifierError(f"no trained classifier {name!r} under {root} (missing {latest})")
        version = latest.read_text().strip()
    return load_path(base / version, embedders=embedders)


def load_path(directory: Path, *, embedders: EmbedderPool | None = None) -> LocalClassifier:
    """Load one artifact directory (the one holding ``metadata.json``)."""
    meta_file = directory / "metadata.json"
    if not meta_file.is_file():
        raise ClassifierError(f"not a classifier artifact: {directory} (missing metadata.json)")
    metadata = ArtifactMetadata.from_json(meta_file.read_text())
    with np.load(directory / "head.npz", allow_pickle=False) as head:
        coef, intercept = head["coef"], head["intercept"]
    tfidf = TfidfFeatures.load(directory) if metadata.featurizer == TFIDF else None
    return LocalClassifier(metadata, coef, intercept, tfidf=tfidf, embedders=embedders or EmbedderPool())


def train(
    name: str,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    featurizer: str,
    positive_label: str | None = None,
    regularization_c: float = 16.0,
    cv_folds: int = 5,
    embedders: EmbedderPool | None = None,
    threshold_target: str = DEFAULT_THRESHOLD_TARGET,
    groups: Sequence[str] | None = None,
    group_column: str | None = None,
) -> LocalClassifier:
    """Fit a logistic-regression head on ``texts`` and report cross-validated metrics.

    With two labels, one must be the positive class (the score is its probability): pass
    ``positive_label`` unless a label is spelled like ``1``/``true``/``yes`` or equals ``name``.
    The decision threshold is chosen from out-of-fold scores for ``threshold_target`` and stored in
    the artifact (``balanced``, ``f1``, or ``fpr<=X``); with too few examples for folds it stays at 0.5.
    With ``groups`` (one value per text, from ``group_column``) the folds keep each group on one side,
    so texts of one template or author never sit in both training and held-out folds.
    """
    parse_threshold_target(threshold_target)

    started = time.perf_counter()
    if len(texts) != len(labels):
        raise ClassifierError(f"{len(texts)} texts but {len(labels)} labels")
    counts = Counter(labels)
    classes = tuple(sorted(counts))
    if len(classes) < 2:
        raise ClassifierError(f"need at least two labels to train, got {list(classes)}")
    if min(counts.values()) < 2:
        raise ClassifierError(f"each label needs at least 2 examples; counts: {dict(counts)}")
    positive = _positive_label(name, classes, positive_label)
    embedders = embedders or EmbedderPool()

    y = np.array([classes.index(label) for label in labels])
    tfidf = TfidfFeatures.fit(texts) if featurizer == TFIDF else None
    if featurizer not in (MINILM, TFIDF):
        raise ClassifierError(f"unknown featurizer {featurizer!r}; choose {MINILM} or {TFIDF}")
    features = _featurize(featurizer, texts, tfidf, embedders)
    model = _head(regularization_c, len(classes))
    model.fit(features, y)
    plan = plan_folds(y, cv_folds, groups=groups, group_column=group_column)
    metrics = _cross_validate(featurizer, texts, y, features, classes, positive, regularization_c, plan,
                              threshold_target)
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    version = _version_hash(featurizer, classes, positive, coef, intercept, tfidf, metrics.threshold)
    metadata = ArtifactMetadata(
        name=name,
        version=version,
        featurizer=featurizer,
        labels=classes,
        positive_label=positive,
        n_examples=len(texts),
        label_counts=dict(sorted(counts.items())),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        metrics=TrainingMetrics(**{**asdict(metrics), "seconds": round(time.perf_counter() - started, 3)}),
        regularization_c=regularization_c,
    )
    return LocalClassifier(metadata, coef, intercept, tfidf=tfidf, embedders=embedders)


def _head(c: float, n_classes: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    # liblinear is an order of magnitude faster than lbfgs on sparse TF-IDF for two classes;
    # lbfgs gives a true multinomial model for more.
    solver = "liblinear" if n_classes == 2 else "lbfgs"
    return LogisticRegression(C=c, class_weight="balanced", max_iter=2000, solver=solver)


def _positive_label(name: str, classes: tuple[str, ...], given: str | None) -> str | None:
    if given is not None:
        if given not in classes:
            raise ClassifierError(f"positive label {given!r} is not among the labels {list(classes)}")
        return given
    if len(classes) != 2:
        return None
    matches = [c for c in classes if c.lower() in _POSITIVE_SPELLINGS or c == name]
    if len(matches) != 1:
        raise ClassifierError(
            f"which of {list(classes)} is the positive label? pass positive_label (--positive)"
        )
    return matches[0]


def _featurize(
    featurizer: str, texts: Sequence[str], tfidf: TfidfFeatures | None, embedders: EmbedderPool
) -> Any:
    if featurizer == TFIDF:
        if tfidf is None:
            raise ClassifierError("TF-IDF artifact is missing its vocabulary")
        return tfidf.transform(texts)
    return embedders.sentence().encode(texts)


def _predict_proba(features: Any, coef: FloatMatrix, intercept: FloatMatrix) -> FloatMatrix:
    # Same maths as LogisticRegression.predict_proba, without needing a pickled estimator.
    logits = np.asarray(features @ coef.T) + intercept
    if coef.shape[0] == 1:
        p = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        return np.column_stack([1.0 - p, p])
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float64)


def _cross_validate(
    featurizer: str,
    texts: Sequence[str],
    y: Any,
    features: Any,
    classes: tuple[str, ...],
    positive: str | None,
    c: float,
    plan: FoldPlan | None,
    threshold_target: str,
) -> TrainingMetrics:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline

    if plan is None:
        return TrainingMetrics(0, None, None, None, None, None, 0.0)
    head = _head(c, len(classes))
    try:
        if featurizer == TFIDF:
            # Refit the vocabulary inside each fold so held-out texts never leak into the IDF weights.
            proba = cross_val_predict(make_pipeline(make_tfidf_vectorizer(), head), list(texts), y, cv=plan.splitter,
                                      groups=plan.groups, method="predict_proba")
        else:
            proba = cross_val_predict(head, features, y, cv=plan.splitter, groups=plan.groups, method="predict_proba")
    except ValueError as error:
        # A grouped fold can leave one label out of its training side (a few groups hold all of it).
        raise ClassifierError(
            f"cross-validation {'grouped by ' + repr(plan.group_column) if plan.group_column else ''} failed: "
            f"{error}; with few groups per label, try fewer groups per label or more data"
        ) from error
    near = near_duplicates_across(texts, fold_of_each(plan, y))
    predicted = np.argmax(proba, axis=1)
    binary: dict[str, float | None] = {"precision": None, "recall": None, "f1": None}
    threshold: float | None = None
    f1_at_half: float | None = None
    if positive is not None and len(classes) == 2:
        pos = classes.index(positive)
        yt, scores = y == pos, proba[:, pos]
        f1_at_half = float(f1_score(yt, scores >= 0.5, zero_division=0))
        threshold = choose_threshold(yt, scores, threshold_target)
        predicted = np.where(scores >= threshold, pos, 1 - pos)
        yp = predicted == pos
        binary = {
            "precision": float(precision_score(yt, yp, zero_division=0)),
            "recall": float(recall_score(yt, yp, zero_division=0)),
            "f1": float(f1_score(yt, yp, zero_division=0)),
        }
    return TrainingMetrics(
        folds=plan.folds,
        accuracy=float(accuracy_score(y, predicted)),
        macro_f1=float(f1_score(y, predicted, average="macro")),
        seconds=0.0,
        threshold=threshold,
        threshold_target=threshold_target if threshold is not None else None,
        f1_at_half=f1_at_half,
        cv=plan.kind,
        group_column=plan.group_column,
        near_duplicate_share=round(near, 4),
        **binary,
    )


def parse_threshold_target(target: str) -> float | None:
    """The FPR bound of ``fpr<=X`` (None for ``f1``); a clear error for anything else.

    >>> parse_threshold_target("fpr<=0.05"), parse_threshold_target("f1")
    (0.05, None)
    """
    if target in ("f1", "balanced"):
        return None
    prefix = "fpr<="
    if target.startswith(prefix):
        try:
            bound = float(target[len(prefix):])
        except ValueError:
            bound = -1.0
        if 0.0 <= bound <= 1.0:
            return bound
    raise ClassifierError(
        f"threshold target {target!r}: use 'balanced', 'f1' or 'fpr<=X' with X between 0 and 1"
    )


def choose_threshold(truth: Any, scores: Any, target: str) -> float:
    """The score at or above which a text is flagged, chosen on out-of-fold ``scores``.

    ``balanced``: the best recall minus false-positive rate. ``f1``: the best F1. Ties go to the
    highest score, for fewer flags.
    ``fpr<=X``: the lowest threshold whose false-positive rate is at most X (the most recall under
    the bound). Candidates are the observed scores, so the threshold is one a real text reached.

    >>> choose_threshold(np.array([1, 1, 0, 0], bool), np.array([0.4, 0.3, 0.2, 0.1]), "f1")
    0.3
    """
    bound = parse_threshold_target(target)
    truth = np.asarray(truth, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], truth[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    # Only the last index of a run of equal scores is a threshold a real cut can make.
    last = np.r_[ranked[1:] != ranked[:-1], True]
    tp, fp, cut = tp[last], fp[last], ranked[last]
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if target == "balanced":
        # Youden's J: recall minus false-positive rate, which (unlike F1) never gains by flagging everything
        # when positives are the majority.
        j = tp / max(1, positives) - fp / max(1, negatives)
        return float(cut[int(np.argmax(j))])
    if bound is None:
        f1 = 2 * tp / (tp + fp + positives)
        return float(cut[int(np.argmax(f1))])
    fpr = fp / max(1, negatives)
    allowed = np.flatnonzero(fpr <= bound)
    # No cut meets the bound: flag only what scores above every text.
    return float(cut[allowed[-1]]) if allowed.size else float(np.nextafter(ranked[0], np.inf))


def _version_hash(
    featurizer: str,
    classes: tuple[str, ...],
    positive: str | None,
    coef: FloatMatrix,
    intercept: FloatMatrix,
    tfidf: TfidfFeatures | None,
    threshold: float | None,
) -> str:
    digest = hashlib.sha256()
    # The threshold is in the hash only when set, so artifacts trained before it keep their versions.
    settings: list[Any] = [featurizer, list(classes), positive]
    if threshold is not None:
        settings.append(round(threshold, 8))
    digest.update(json.dumps(settings).encode())
    digest.update(np.round(coef, 8).tobytes())
    digest.update(np.round(intercept, 8).tobytes())
    if tfidf is not None:
        digest.update(json.dumps(sorted(tfidf.vocabulary().items())).encode())
    return digest.hexdigest()[:12]


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
