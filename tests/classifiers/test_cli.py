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
