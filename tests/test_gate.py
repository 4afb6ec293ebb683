"""The activation gate (vigil/gate.py): the checker, then the rules' own tests with the signals it is
given, so a version passes exactly when it would pass under the runtime that is going to run it."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_signals_in_rules import HAM, SPAM

from vigil.classifiers.local import train
from vigil.classifiers.registry import ClassifierRegistry
from vigil.gate import Gate, RulesRejected
from vigil.signals.providers import Signals

SPAMMY = """\
rule "Spammy" when event is "post" and classifier "spam" on event.text > 0.6 then review

test "spam is reviewed"
  given "post" with text = "cheap followers, click here"
  expect review
"""


def test_the_rules_tests_run_with_the_signals_given() -> None:
    spam = train("spam", SPAM + HAM, ["spam"] * len(SPAM) + ["ham"] * len(HAM), featurizer="tfidf-char",
                 positive_label="spam", cv_folds=3)
    files = {"main.vigil": SPAMMY}
    admitted = Gate(Signals(classifiers=ClassifierRegistry.of([spam]))).admit(files, ("main.vigil",))
    assert [t.name for t in admitted.program.tests] == ["spam is reviewed"]
    with pytest.raises(RulesRejected) as info:  # without the classifier, the score is unknown: no review
        Gate(None).admit(files, ("main.vigil",))
    [failure] = info.value.test_failures
    assert failure["name"] == "spam is reviewed" and "expected verdict review, got allow" in failure["failures"][0]
    assert Gate(None, run_tests=False).admit(files, ("main.vigil",)).version == admitted.version


def test_the_checker_refuses_before_any_test_runs(tmp_path: Path) -> None:
    (tmp_path / "main.vigil").write_text('rule "R" when event is "post" and nope > 1 then flag\n')
    with pytest.raises(RulesRejected) as info:
        Gate(None).admit_paths([str(tmp_path)])
    assert info.value.message == "the rules have 1 error"
    [error] = [d for d in info.value.diagnostics if d["severity"] == "error"]
    assert error["line"] == 1 and "nope" in error["message"] and info.value.test_failures == []


def test_the_gate_stops_the_tests_at_its_time_budget() -> None:
    files = {"main.vigil": 'rule "All" when event is "post" then flag\n'
                           'test "t" given 3 "post" with text = "x" expect flag\n'}
    assert Gate(None, time_limit=60.0).admit(files, ("main.vigil",)).program.tests
    with pytest.raises(RulesRejected) as info:
        Gate(None, time_limit=0.0).admit(files, ("main.vigil",))
    [failure] = info.value.test_failures
    assert failure["failures"][0].startswith("not run: the tests of this rules set ran past their time budget")
