"""Metric functions, checked against hand-computed and library values."""

from __future__ import annotations

import pytest

from vigil.eval.metrics import confusion, mcnemar_exact, percentile, pr_curve


def test_confusion_rates() -> None:
    truth = [True, True, True, False, False, False, True]
    predicted = [True, True, False, True, False, False, None]
    c = confusion(truth, predicted)
    assert (c.tp, c.fp, c.tn, c.fn, c.unknown, c.n) == (2, 1, 2, 1, 1, 7)
    assert c.precision == pytest.approx(2 / 3) and c.recall == pytest.approx(2 / 3)
    assert c.f1 == pytest.approx(2 / 3) and c.fpr == pytest.approx(1 / 3)
    assert c.accuracy == pytest.approx(4 / 6) and c.coverage == pytest.approx(6 / 7)


def test_empty_denominators_are_zero() -> None:
    c = confusion([False, False], [False, False])
    assert (c.precision, c.recall, c.f1, c.fpr) == (0.0, 0.0, 0.0, 0.0)
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
