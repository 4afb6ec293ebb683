"""The examples in classifier and eval docstrings run."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from vigil.classifiers import answers
from vigil.eval import metrics


@pytest.mark.parametrize("module", [answers, metrics], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0
