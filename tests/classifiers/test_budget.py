"""The sliding-window token budget."""

from __future__ import annotations

import pytest

from vigil.classifiers.budget import TokenBudget


def test_reserve_refuses_past_the_limit_and_recovers_after_a_minute() -> None:
    now = [0.0]
    budget = TokenBudget(100, clock=lambda: now[0])
    assert budget.reserve(60) and not budget.reserve(60) and budget.reserve(40)
    assert budget.used() == 100
    now[0] = 59.0
    assert not budget.reserve(1)
    now[0] = 60.5
    assert budget.used() == 0 and budget.reserve(100)


def test_settle_corrects_the_estimate() -> None:
    budget = TokenBudget(100, clock=lambda: 0.0)
    budget.reserve(80)
    budget.settle(80, 20)
    assert budget.used() == 20 and budget.reserve(80)


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBudget(0)
