"""``vigil eval`` end to end on a small slice of HateCheck."""

from __future__ import annotations

import csv
import http.server
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import click
import pytest
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


class _KeywordModel(http.server.BaseHTTPRequestHandler):
    """A chat-completions stand-in: answers 1 when the user message contains the system's keyword."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        keyword = system.split("KEYWORD:")[1].split()[0]
        answer = {"violation": int(keyword in user.lower()), "rationale": f"looked for {keyword}"}
        payload = json.dumps(
            {"choices": [{"message": {"content": json.dumps(answer)}}], "usage": {"total_tokens": 10}}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_policy_v1_against_v2_over_a_loopback_model(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    rows = [("I hate you", 1), ("you idiot", 1), ("I hate mondays", 0), ("nice day", 0), ("stupid idiot", 1)]
    data.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    (tmp_path / "v1.md").write_text("# Abuse v1\nKEYWORD: hate\n")
    (tmp_path / "v2.md").write_text("# Abuse v2\nKEYWORD: idiot\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _KeywordModel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        out = tmp_path / "out"
        result = CliRunner().invoke(
            make_eval_command(),
            [str(data), "-c", f"policy:{tmp_path / 'v1.md'}", "-c", f"policy:{tmp_path / 'v2.md'}",
             "--endpoint", f"http://127.0.0.1:{server.server_address[1]}/v1", "--model", "fake", "--out", str(out)],
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "result.json").read_text())
    # v1 flags "I hate you" (right) and "I hate mondays" (wrong); v2 flags both idiots.
    assert saved["a"]["overall"]["f1"] == pytest.approx(0.4) and saved["b"]["overall"]["f1"] == pytest.approx(
        0.8
    )
    assert saved["a"]["tokens"] == 50 and saved["delta_b_minus_a"]["f1"] == pytest.approx(0.4)
    assert saved["b"]["misclassified"][0]["rationale"] == "looked for idiot"


def test_unknown_candidate_kind_is_a_usage_error(shared_data: Path) -> None:
    result = CliRunner().invoke(
        make_eval_command(), [str(shared_data / "moderation" / "dev.jsonl"), "-c", "nope:x", "--text-column", "prompt",
                              "--label-column", "S,H,V"],
    )  # fmt: skip
    assert result.exit_code == 2 and "unknown candidate kind" in result.output


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_endpoint_fails_and_says_why(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in [("a", 1), ("b", 0)]))
    (tmp_path / "p.md").write_text("# Abuse\nKEYWORD: hate\n")
    result = CliRunner().invoke(
        make_eval_command(),
        [str(data), "-c", f"policy:{tmp_path / 'p.md'}", "--endpoint", f"http://127.0.0.1:{_free_port()}/v1",
         "--model", "fake", "--timeout", "2", "--out", str(tmp_path / "out")],
    )  # fmt: skip
    # Before: precision/recall/F1 0.000 and exit 0, as if the model had answered "safe" to everything.
    assert result.exit_code == 1, result.output
    assert "2 of 2 examples got no answer" in result.output and "endpoint" in result.output
    assert not (tmp_path / "out" / "result.json").exists()


def test_a_slice_without_positives_shows_n_a_and_intervals_are_reported(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    rows = [("bad word", 1, "en"), ("fine", 0, "en"), ("bad", 1, "en"), ("hello", 0, "fr"), ("salut", 0, "fr")]
    data.write_text("".join(json.dumps({"text": t, "label": y, "lang": g}) + "\n" for t, y, g in rows))

    class Keyword:
        name, version = "kw", "1"

        def predict(self, texts: Sequence[str]) -> list[Prediction]:
            return [Prediction("bad" in t) for t in texts]

    out = tmp_path / "out"
    result = CliRunner().invoke(
        make_eval_command({"kw": lambda spec, ctx: Keyword()}),
        [str(data), "-c", "kw:x", "--slice", "lang", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "result.json").read_text())
    fr = saved["slices"]["lang"]["fr"]
    assert fr["recall"] is None and fr["precision"] is None and fr["fpr"] == 0.0
    assert saved["confidence_intervals"]["intervals"]["f1"] == [1.0, 1.0]
    assert "n/a" in (out / "report.html").read_text()


def _keyword_command() -> click.Command:
    class Keyword:
        name, version = "kw", "1"

        def predict(self, texts: Sequence[str]) -> list[Prediction]:
            return [Prediction("bad" in t) for t in texts]

    return make_eval_command({"kw": lambda spec, ctx: Keyword()})


def test_a_slice_column_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    rows = [("bad", 1, "insult"), ("fine", 0, "none")]
    data.write_text("".join(json.dumps({"text": t, "label": y, "category": c}) + "\n" for t, y, c in rows))
    result = CliRunner().invoke(_keyword_command(), [str(data), "-c", "kw:x", "--slice", "categroy",
                                                     "--out", str(tmp_path / "out")])  # fmt: skip
    # Before: exit 0 with one slice, "(empty)", holding every example.
    assert result.exit_code == 1, result.output
    assert "no slice column 'categroy'; did you mean 'category'?" in result.output
    assert not (tmp_path / "out").exists()


def test_a_jailbreak_set_is_evaluated_with_all_positive(tmp_path: Path) -> None:
    data = tmp_path / "jail.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["bad prompt", "another bad", "sneaky"]))
    refused = CliRunner().invoke(_keyword_command(), [str(data), "-c", "kw:x", "--out", str(tmp_path / "o")])
    assert refused.exit_code == 1 and "no label column 'label'" in refused.output
    result = CliRunner().invoke(_keyword_command(), [str(data), "-c", "kw:x", "--all-positive",
                                                     "--out", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 0, result.output
    overall = json.loads((tmp_path / "out" / "result.json").read_text())["overall"]
    assert overall["recall"] == pytest.approx(2 / 3) and overall["fpr"] is None
    both = CliRunner().invoke(_keyword_command(), [str(data), "-c", "kw:x", "--all-positive", "--label-column", "y"])
    assert both.exit_code == 2 and "--all-positive reads no label column" in both.output
