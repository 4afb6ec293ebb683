"""A rules set evaluated like any classifier: texts in, verdicts as predictions, metrics out."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from vigil.cli import main
from vigil.eval.datasets import Dataset, Example
from vigil.eval.rules_candidate import rules_candidate
from vigil.eval.runner import compare, evaluate

RULES = """
rule "Insult" when event is "message" and event.body contains any of ["idiot", "loser"] then review
rule "Mild" when event is "message" and event.body contains "meh" then flag
"""


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    (tmp_path / "rules.vigil").write_text(RULES)
    return tmp_path


def _dataset() -> Dataset:
    rows = [("you idiot", True), ("what a l0ser", True), ("hello friend", False), ("meh, fine", False),
            ("nice work", False), ("idiotic weather", True)]
    return Dataset("inline", tuple(Example(t, y, str(y)) for t, y in rows), "text", ("label",))


def test_verdicts_become_predictions(rules_dir: Path) -> None:
    candidate = rules_candidate(f"{rules_dir}?type=message&field=body&verdict=review")
    result = evaluate(candidate, _dataset())
    # "idiotic weather" contains "idiot" (a true positive here); "meh" only flags, below review.
    assert [p.label for p in result.predictions] == [True, True, False, False, False, True]
    assert result.overall.f1 == 1.0
    lenient = evaluate(rules_candidate(f"{rules_dir}?type=message&field=body&verdict=flag"), _dataset())
    assert [p.label for p in lenient.predictions][3] is True  # "meh" now counts
    assert lenient.overall.precision < 1.0
    assert compare(result, lenient).b.overall.fp == 1


def test_bad_options_are_clear_errors(rules_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown rules candidate option"):
        rules_candidate(f"{rules_dir}?colour=red")
    with pytest.raises(ValueError, match="verdict must be"):
        rules_candidate(f"{rules_dir}?verdict=allow")


def test_vigil_eval_takes_rules(rules_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "you idiot", "label": 1}\n{"text": "hello", "label": 0}\n')
    result = CliRunner().invoke(main, ["eval", str(data), "-c", f"rules:{rules_dir}?type=message&field=body",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "F1 1.000" in result.output
    bad = CliRunner().invoke(main, ["eval", str(data), "-c", f"rules:{rules_dir}?nope=1", "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "unknown rules candidate option" in bad.output
