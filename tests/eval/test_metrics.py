"""Metric functions, checked against hand-computed and library values."""

from __future__ import annotations

import pytest

from vigil.eval.metrics import (
    bootstrap,
    confusion,
    fmt,
    mcnemar_exact,
    paired_bootstrap,
    percentile,
    pr_curve,
)


def test_confusion_rates() -> None:
    truth = [True, True, True, False, False, False, True]
    predicted = [True, True, False, True, False, False, None]
    c = confusion(truth, predicted)
    assert (c.tp, c.fp, c.tn, c.fn, c.unknown, c.n) == (2, 1, 2, 1, 1, 7)
    assert c.precision == pytest.approx(2 / 3) and c.recall == pytest.approx(2 / 3)
    assert c.f1 == pytest.approx(2 / 3) and c.fpr == pytest.approx(1 / 3)
    assert c.accuracy == pytest.approx(4 / 6) and c.coverage == pytest.approx(6 / 7)


def test_undefined_rates_are_none_not_zero() -> None:
    # No positives and nothing flagged: precision, recall and F1 are undefined, not 0.000.
    c = confusion([False, False], [False, False])
    assert (c.precision, c.recall, c.f1, c.fpr) == (None, None, None, 0.0)
    assert fmt(c.recall) == "n/a"
    with pytest.raises(ValueError, match="2 truths but 1"):
        confusion([True, False], [True])


def test_mcnemar_exact_matches_the_binomial_tail() -> None:
    # A right and B wrong on 8 examples, the reverse on 1, both right on 5: p = P(X<=1 or X>=8), X~Bin(9, .5).
    truth = [True] * 14
    a = [True] * 8 + [False] + [True] * 5
    b = [False] * 8 + [True] + [True] * 5
    test = mcnemar_exact(truth, a, b)
    assert (test.a_only_correct, test.b_only_correct) == (8, 1)
    assert test.p_value == pytest.approx(2 * (1 + 9) / 2**9)


def test_mcnemar_ignores_abstentions_and_handles_no_discordance() -> None:
    assert mcnemar_exact([True, False], [True, None], [True, True]).p_value == 1.0


def test_percentile_and_pr_curve() -> None:
    assert percentile([0.1, 0.2, 0.3, 0.4], 50) == pytest.approx(0.25)
    assert percentile([], 99) == 0.0
    curve = pr_curve([True, False, True, False], [0.9, 0.1, 0.8, None])
    assert curve is not None and curve[2] == pytest.approx(1.0)
    assert pr_curve([True, True], [0.5, 0.6]) is None


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_data() -> None:
    truth = [True, False] * 50
    predicted = [True, False] * 40 + [False, True] * 10  # 80% right
    small = bootstrap(truth, predicted, resamples=500)
    big = bootstrap(truth * 10, predicted * 10, resamples=500)
    low, high = small.intervals["accuracy"] or (0, 0)
    assert low < 0.8 < high
    blow, bhigh = big.intervals["accuracy"] or (0, 0)
    assert bhigh - blow < (high - low) / 2
    assert bootstrap(truth, predicted, seed=1).intervals == bootstrap(truth, predicted, seed=1).intervals


def test_paired_bootstrap_sees_an_f1_gap_that_mcnemar_misses() -> None:
    # On 30 positives and 30 negatives A flags everything and B nothing: the same accuracy (McNemar p = 1),
    # but F1 0.667 against 0.
    truth = [True] * 30 + [False] * 30
    a: list[bool | None] = [True] * 60
    b: list[bool | None] = [False] * 60
    assert mcnemar_exact(truth, a, b).p_value == 1.0
    diff = paired_bootstrap(truth, a, b, resamples=500).intervals
    assert diff["f1"] is not None and diff["f1"][1] < -0.5  # B's F1 is surely lower
    assert diff["accuracy"] is not None and diff["accuracy"][0] < 0 < diff["accuracy"][1]


def test_bootstrap_of_a_metric_without_data_is_none() -> None:
    assert bootstrap([False] * 20, [False] * 20).intervals["recall"] is None
