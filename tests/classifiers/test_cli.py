"""``vigil train`` and ``vigil classify`` through click's test runner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from vigil.classifiers.cli import classify_command, train_command

from .fake_openai import FakeOpenAI, Reply

ROWS = [
    ("buy cheap pills today", "spam"), ("cheap pills, fast shipping", "spam"), ("win money fast", "spam"),
    ("free money, click here", "spam"), ("hello friend, how are you", "ham"), ("see you at lunch", "ham"),
    ("nice photo of the lake", "ham"), ("meeting moved to friday", "ham"),
]  # fmt: skip


def test_train_then_classify(tmp_path: Path) -> None:
    data = tmp_path / "spam.jsonl"
    data.write_text("".join(json.dumps({"message": t, "kind": k}) + "\n" for t, k in ROWS))
    root = tmp_path / "classifiers"
    runner = CliRunner()
    result = runner.invoke(
        train_command,
        ["spam", str(data), "--text-column", "message", "--label-column", "kind", "--featurizer", "tfidf-char",
         "--dir", str(root)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "trained spam" in result.output and "cross-validation" in result.output
    result = runner.invoke(classify_command, ["spam", "cheap pills and free money", "--dir", str(root)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.splitlines()[0])
    assert record["label"] == "spam" and record["flagged"] is True and record["status"] == "ok"


def test_train_needs_a_positive_label_when_ambiguous(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": k}) + "\n" for t, k in ROWS))
    result = CliRunner().invoke(
        train_command, ["junk", str(data), "--featurizer", "tfidf-char", "--dir", str(tmp_path)]
    )
    assert result.exit_code == 1 and "--positive" in result.output


def test_classify_with_a_policy_and_an_api_key_from_env(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    (tmp_path / "harassment.md").write_text("# Harassment\nAnswer 1 or 0.\n")
    fake_openai.script = lambda body: Reply(content='{"violation": 1, "rationale": "insult"}')
    result = CliRunner().invoke(
        classify_command,
        ["harassment", "you idiot", "--policies", str(tmp_path), "--endpoint", fake_openai.base_url,
         "--api-key-env", "VIGIL_TEST_KEY", "--dir", str(tmp_path / "none")],
        env={"VIGIL_TEST_KEY": "sk-from-env"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rationale"] == "insult"
    assert fake_openai.headers[0]["authorization"] == "Bearer sk-from-env"


def test_help_texts() -> None:
    for command in (train_command, classify_command):
        result = CliRunner().invoke(command, ["--help"])
        assert result.exit_code == 0 and "--dir" in result.output


def test_train_reads_the_moderation_layout_that_eval_reads(tmp_path: Path) -> None:
    # Several category columns, some missing per row: vigil train used to stop at the first missing key.
    data = tmp_path / "mod.jsonl"
    rows = [{"prompt": t, "S": int(k == "spam"), "H": 0} for t, k in ROWS] + [{"prompt": "no H here", "S": 0}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(
        train_command,
        ["mod", str(data), "--text-column", "prompt", "--label-column", "S,H", "--featurizer", "tfidf-char",
         "--dir", str(tmp_path / "c")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "positive: positive" in result.output and "left out 1 rows without a label" in result.output
    result = CliRunner().invoke(
        train_command, ["mod", str(data), "--text-column", "prompt", "--label-column", "s,H", "--dir", str(tmp_path)]
    )
    assert result.exit_code == 1 and "no label column 's'; did you mean 'S'?" in result.output


def test_the_printed_estimate_says_whether_its_folds_are_grouped(tmp_path: Path) -> None:
    # Four templates, each filled with several names: random folds see every template in training.
    templates = [("I hate {} and everyone who looks like them", "abuse"),
                 ("{} should pack up and leave this country for good", "abuse"),
                 ("I met {} at the bakery this morning, lovely chat", "ok"),
                 ("{} is my neighbour and waters my plants in summer", "ok")]  # fmt: skip
    names = ["Ann", "Bob", "Cem", "Dee", "Eva", "Fay"]
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps({"text": t.format(n), "label": k, "templ": str(i)}) + "\n"
                            for i, (t, k) in enumerate(templates) for n in names))  # fmt: skip
    args = ["t", str(data), "--positive", "abuse", "--featurizer", "tfidf-char", "--dir", str(tmp_path / "c")]
    random_folds = CliRunner().invoke(train_command, args)
    assert random_folds.exit_code == 0, random_folds.output
    assert "on random folds" in random_folds.output and "WARNING" in random_folds.output
    assert "--group-column" in random_folds.output
    grouped = CliRunner().invoke(train_command, [*args, "--group-column", "templ"])
    assert grouped.exit_code == 0, grouped.output
    # Four templates, so at most four folds, each holding out templates the model never saw.
    assert "4-fold cross-validation grouped by 'templ'" in grouped.output and "WARNING" not in grouped.output
    estimates = {}
    for path in (tmp_path / "c" / "t").glob("*/metadata.json"):
        metrics = json.loads(path.read_text())["metrics"]
        estimates[metrics["cv"]] = metrics
    assert estimates["grouped"]["group_column"] == "templ" and estimates["random"]["group_column"] is None
    # Memorised templates look perfect on random folds; on unseen ones the estimate falls.
    assert estimates["random"]["f1"] > estimates["grouped"]["f1"] + 0.2


def test_classify_input_is_jsonl_so_a_text_may_span_lines(tmp_path: Path) -> None:
    data = tmp_path / "spam.jsonl"
    data.write_text("".join(json.dumps({"message": t, "kind": k}) + "\n" for t, k in ROWS))
    root = tmp_path / "classifiers"
    CliRunner().invoke(train_command, ["spam", str(data), "--text-column", "message", "--label-column", "kind",
                                       "--positive", "spam", "--featurizer", "tfidf-char", "--dir", str(root)])  # fmt: skip
    texts = tmp_path / "in.jsonl"
    texts.write_text(json.dumps("cheap pills\nfree money") + "\n" + json.dumps({"text": "see you at lunch"}) + "\n")
    result = CliRunner().invoke(classify_command, ["spam", "--input", str(texts), "--dir", str(root)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    # Before: three texts, the first split at its newline.
    assert [r["text"] for r in records] == ["cheap pills\nfree money", "see you at lunch"]
    plain = tmp_path / "in.txt"
    plain.write_text("cheap pills\nsee you at lunch\n")
    refused = CliRunner().invoke(classify_command, ["spam", "--input", str(plain), "--dir", str(root)])
    assert refused.exit_code == 2 and "in.txt:1: not JSON" in refused.output and "--one-per-line" in refused.output
    lines = CliRunner().invoke(classify_command, ["spam", "--input", str(plain), "--one-per-line", "--dir", str(root)])
    assert lines.exit_code == 0 and len(lines.output.splitlines()) == 2
