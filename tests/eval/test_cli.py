"""``vigil eval`` end to end on a small slice of HateCheck."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from click.testing import CliRunner

from vigil.classifiers import local
from vigil.classifiers.features import TFIDF
from vigil.eval.candidates import Candidate, Prediction
from vigil.eval.cli import CandidateContext, make_eval_command


def test_eval_and_ab_compare(shared_data: Path, tmp_path: Path) -> None:
    with (shared_data / "hatecheck" / "hatecheck_en.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))[::5]
    train = rows[::4]
    clf = local.train("hate", [r["test_case"] for r in train], [r["label_gold"] for r in train],
                      featurizer=TFIDF, positive_label="hateful")  # fmt: skip
    artifact = clf.save(tmp_path / "classifiers")

    class Everything:
        """A trivial rules-set stand-in, to show extra candidate kinds plug in."""

        name = "flag-all"
        version = "0"

        def predict(self, texts: Sequence[str]) -> list[Prediction]:
            return [Prediction(True) for _ in texts]

    def rules(spec: str, ctx: CandidateContext) -> Candidate:
        return Everything()

    command = make_eval_command({"rules": rules})
    out = tmp_path / "report"
    result = CliRunner().invoke(
        command,
        [str(shared_data / "hatecheck" / "hatecheck_en.csv"), "-c", f"artifact:{artifact}", "-c", "rules:any",
         "--text-column", "test_case", "--label-column", "label_gold", "--positive", "hateful",
         "--slice", "target_ident", "--limit", "300", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "McNemar exact p" in result.output
    saved = json.loads((out / "result.json").read_text())
    assert saved["b"]["overall"]["recall"] == 1.0
    assert set(saved["a"]["slices"]["target_ident"]) >= {"women", "gay people"}
    assert (out / "report.html").read_text().startswith("<!doctype html>")


def test_unknown_candidate_kind_is_a_usage_error(shared_data: Path) -> None:
    result = CliRunner().invoke(
        make_eval_command(), [str(shared_data / "moderation" / "dev.jsonl"), "-c", "nope:x", "--text-column", "prompt",
                              "--label-column", "S,H,V"],
    )  # fmt: skip
    assert result.exit_code == 2 and "unknown candidate kind" in result.output
