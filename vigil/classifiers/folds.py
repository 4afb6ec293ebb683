"""Cross-validation folds for training estimates: grouped when the data says what belongs together.

Random folds put near-duplicates (texts of one template, one author's posts, turns of one conversation)
on both sides of a split, and the estimate then measures recall of memorised texts: one HateCheck model
cross-validated at F1 0.983 on random folds scored 0.717 on templates it had not seen. Folds grouped by
a column keep each group on one side; without a group column, :func:`near_duplicates_across` measures
how many held-out texts have a near-duplicate on the training side, so the estimate can say how far to
trust it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.classifiers.base import ClassifierError

# Cosine similarity of character 3–5-gram TF-IDF vectors at which two texts count as near-duplicates.
# Measured on 500-text samples with 5 folds: HateCheck (English, German) had 35–41% of texts with such a
# match across random folds and 5–6% across folds grouped by template; the moderation set had 1%.
NEAR_DUPLICATE_COSINE = 0.8
# The share of texts with a near-duplicate across folds above which the estimate is called optimistic.
NEAR_DUPLICATE_WARN_SHARE = 0.10
# Beyond this many texts the check runs on a seeded sample (its cost grows with the square of n).
NEAR_DUPLICATE_SAMPLE = 5_000
_ROWS_PER_PRODUCT = 512


@dataclass(frozen=True, slots=True)
class FoldPlan:
    """How the folds were made: the splitter, and words for the printed estimate."""

    splitter: Any
    folds: int
    group_column: str | None
    groups: Any  # an array of group ids, or None for random folds

    @property
    def kind(self) -> str:
        """``grouped`` or ``random``."""
        return "grouped" if self.group_column is not None else "random"


def plan_folds(y: Any, folds: int, *, groups: Sequence[str] | None = None,
               group_column: str | None = None) -> FoldPlan | None:
    """Stratified folds, grouped by ``groups`` when given; None when the data is too small for two.

    With groups, no group is split across folds (scikit-learn's StratifiedGroupKFold), and there are at
    most as many folds as groups.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    folds = min(folds, int(np.bincount(y).min()))
    if groups is None:
        if folds < 2:
            return None
        return FoldPlan(StratifiedKFold(n_splits=folds, shuffle=True, random_state=0), folds, None, None)
    if len(groups) != len(y):
        raise ClassifierError(f"{len(groups)} group values for {len(y)} examples")
    ids = np.unique(np.asarray(groups, dtype=object), return_inverse=True)[1]
    folds = min(folds, int(ids.max()) + 1)
    if folds < 2:
        raise ClassifierError(
            f"group column {group_column!r} has {int(ids.max()) + 1} distinct value(s): grouped "
            f"cross-validation needs at least 2 (is it the right column?)"
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=0)
    return FoldPlan(splitter, folds, group_column or "group", ids)


def fold_of_each(plan: FoldPlan, y: Any) -> Any:
    """The fold index each example is held out in."""
    fold = np.empty(len(y), dtype=np.int64)
    for k, (_, test) in enumerate(plan.splitter.split(np.zeros(len(y)), y, plan.groups)):
        fold[test] = k
    return fold


def near_duplicates_across(texts: Sequence[str], fold: Any, *, cosine: float = NEAR_DUPLICATE_COSINE,
                           sample: int = NEAR_DUPLICATE_SAMPLE) -> float:
    """The share of texts with a near-duplicate (cosine >= ``cosine``) held out in another fold.

    Character n-gram TF-IDF over lower-cased text; the similarity matrix is built a block of rows at a
    time, so memory stays at a block by n. Above ``sample`` texts, a seeded sample of them is checked.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(texts)
    if n < 2:
        return 0.0
    keep = np.arange(n)
    if n > sample:
        keep = np.sort(np.random.default_rng(0).choice(n, sample, replace=False))
    chosen = [texts[int(i)] for i in keep]
    folds = np.asarray(fold)[keep]
    try:
        vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True).fit_transform(chosen)
    except ValueError:  # every text empty: nothing to compare
        return 0.0
    matched = 0
    for start in range(0, len(chosen), _ROWS_PER_PRODUCT):
        block = (vectors[start : start + _ROWS_PER_PRODUCT] @ vectors.T).toarray()
        same_fold = folds[start : start + _ROWS_PER_PRODUCT, None] == folds[None, :]
        block[same_fold] = 0.0
        matched += int((block.max(axis=1) >= cosine - 1e-9).sum())
    return matched / len(chosen)
