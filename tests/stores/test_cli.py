"""`vigil dead-letters`: list, export and replay what `vigil run --db` kept."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from vigil.cli import main
from vigil.settings import load_settings
from vigil.stores.base import DeadLetterLimits
from vigil.stores.cli import dead_letter_flags
from vigil.stores.sqlite import SqliteStore

STRICT = 'rule "big" when event is "post" and event.n > 1 then flag\n'
FIXED = 'rule "big" when event is "post" and event.text contains "x" then flag\n'


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_list_export_and_replay_the_dead_letters_of_a_run(tmp_path: Path) -> None:
    strict, fixed = tmp_path / "strict.vigil", tmp_path / "fixed.vigil"
    strict.write_text(STRICT)
    fixed.write_text(FIXED)
    db = str(tmp_path / "state.sqlite")
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([
        json.dumps({"type": "post", "id": "1", "time": 0, "n": 5}),
        json.dumps({"type": "post", "id": "2", "time": 1, "n": "five", "text": "x"}),
        "not json",
    ]) + "\n")
    code, _, _ = invoke("run", str(strict), "--events", str(events), "--db", db)
    assert code == 0

    code, out, err = invoke("dead-letters", "list", "--db", db)
    assert code == 0 and err.splitlines()[0] == "2 dead letters"
    assert [line.split("  ")[1] for line in out.splitlines()] == [str(events)] * 2

    code, out, _ = invoke("dead-letters", "export", "--db", db)
    exported = [json.loads(line) for line in out.splitlines()]
    assert [json.loads(e["raw"])["id"] for e in exported[:1]] == ["2"]
    assert exported[1]["raw"] == "not json\n" and exported[1]["source"] == str(events)
    assert all(e["reason"] for e in exported)

    code, out, err = invoke("dead-letters", "replay", str(fixed), "--db", db)
    assert code == 3  # `not json` fails again
    [decision] = [json.loads(line) for line in out.splitlines()]
    assert (decision["event_id"], decision["verdict"]) == ("2", "flag")
    assert err.splitlines()[-1] == ("replayed 2 dead letters: 1 decided, 1 dead again, 0 skipped "
                                    "(body cut to the store's limit)")


def test_dead_letters_are_searched_by_reason_and_only_those_fixed_are_replayed(tmp_path: Path) -> None:
    strict, fixed = tmp_path / "strict.vigil", tmp_path / "fixed.vigil"
    strict.write_text(STRICT)
    fixed.write_text(FIXED)
    db = str(tmp_path / "state.sqlite")
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([
        json.dumps({"type": "post", "id": "2", "time": 1, "n": "five", "text": "x"}),
        "not json", "[1]", "also not json",
    ]) + "\n")
    assert invoke("run", str(strict), "--events", str(events), "--db", db)[0] == 0
    code, out, err = invoke("dead-letters", "list", "--db", db, "--reason", "VALID json")
    assert code == 0 and len(out.splitlines()) == 2 and all("not valid JSON" in line for line in out.splitlines())
    assert err.splitlines()[0] == "2 dead letters" and "not valid JSON" in err.splitlines()[1]
    code, out, _ = invoke("dead-letters", "export", "--db", db, "--reason", "event.n", "--reason", "JSON object")
    assert sorted(json.loads(line)["raw"] for line in out.splitlines()) == sorted(
        ["[1]\n", json.dumps({"type": "post", "id": "2", "time": 1, "n": "five", "text": "x"}) + "\n"])
    assert invoke("dead-letters", "list", "--db", db, "--source", "elsewhere")[1] == ""
    # Only the letters the fix is for: none fails again (exit 0).
    code, out, err = invoke("dead-letters", "replay", str(fixed), "--db", db, "--reason", "event.n")
    assert code == 0 and [json.loads(line)["event_id"] for line in out.splitlines()] == ["2"]


def test_run_keeps_dead_letters_within_the_limits_given_as_options(tmp_path: Path) -> None:
    rules = tmp_path / "strict.vigil"
    rules.write_text(STRICT)
    db = str(tmp_path / "state.sqlite")
    events = tmp_path / "events.jsonl"
    events.write_text("".join(f"not json {i} {'x' * 100}\n" for i in range(20)))
    code, _, _ = invoke("run", str(rules), "--events", str(events), "--db", db, "--dead-letter-max-count", "5",
                        "--dead-letter-max-raw", "16", "--dead-letter-retention-days", "2")
    assert code == 0
    store = SqliteStore(db)
    try:
        letters = store.dead_letters(100)
    finally:
        store.close()
    # The newest five, each the first 16 bytes of its line with the whole line's size
    assert [letter.raw for letter in letters] == [f"not json {i} xxxx".encode()[:16] for i in range(15, 20)]
    assert all(letter.details["raw_size"] > 100 and letter.details["raw_truncated"] for letter in letters)


def test_dead_letter_options_are_checked_and_become_the_store_limits() -> None:
    code, _, err = invoke("run", "x.vigil", "--events", "-", "--dead-letter-max-count", "0")
    assert code == 2 and "--dead-letter-max-count" in err
    opts = {"dead_letter_max_raw": 10, "dead_letter_max_count": 50_000, "dead_letter_retention_days": 0.5, "other": 1}
    limits = load_settings(dead_letter_flags(opts), env={}).dead_letters.limits()
    assert limits == DeadLetterLimits(10, 50_000, 43_200.0, trim_every=100)
    assert opts == {"other": 1}  # taken out of the command's keyword arguments
    small = load_settings(dead_letter_flags({"dead_letter_max_raw": 10, "dead_letter_max_count": 5,
                                             "dead_letter_retention_days": 1}), env={}).dead_letters.limits()
    assert small.trim_every == 1  # a small cap is kept, not passed by up to 99 letters


def test_serve_keeps_dead_letters_within_the_limits_given_as_options(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "state.sqlite"
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-c", "from vigil.cli import main; main()", "serve", "--no-auth", "--db",
                             str(db), "--port", str(port), "--log-level", "warning", "--dead-letter-max-count", "2",
                             "--dead-letter-max-raw", "8"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        for _ in range(600):  # until it answers (at most a minute)
            if ready() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert ready(), "vigil serve did not start"
        for i in range(4):
            answer = httpx.post(f"{base}/v1/events", content=f"not json {i} and more".encode(),
                                headers={"Content-Type": "application/json"}, timeout=30)
            assert answer.status_code == 400
    finally:
        proc.terminate()
        proc.wait(30)
    store = SqliteStore(db)
    try:
        letters = store.dead_letters(100)
    finally:
        store.close()
    assert [letter.raw for letter in letters] == [b"not json", b"not json"]
    assert [letter.details["raw_size"] for letter in letters] == [len("not json 2 and more")] * 2


def test_a_replayed_letter_is_marked_and_not_decided_twice(tmp_path: Path) -> None:
    strict, fixed = tmp_path / "strict.vigil", tmp_path / "fixed.vigil"
    strict.write_text(STRICT)
    fixed.write_text(FIXED)
    db = str(tmp_path / "state.sqlite")
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"type": "post", "id": "2", "time": 1, "n": "five", "text": "x"}) + "\nnot json\n")
    assert invoke("run", str(strict), "--events", str(events), "--db", db)[0] == 0
    before = time.time()
    code, out, _ = invoke("dead-letters", "replay", str(fixed), "--db", db, "--by", "ann")
    assert code == 3 and [json.loads(line)["event_id"] for line in out.splitlines()] == ["2"]
    store = SqliteStore(db)
    try:
        letters = store.dead_letters(100)
    finally:
        store.close()
    first, broken, again = letters  # the two replayed, then `not json`'s new letter from the replay
    assert first.details["replayed"]["outcome"] == "decided" and first.details["replayed"]["by"] == "ann"
    assert first.details["replayed"]["event_id"] == "2" and first.details["replayed"]["at"] >= before
    assert broken.details["replayed"]["outcome"] == "dead again" and "replayed" not in again.details
    # A second replay decides neither of the replayed letters again: only the new one, which fails again.
    code, out, err = invoke("dead-letters", "replay", str(fixed), "--db", db, "--by", "ann")
    assert code == 3 and out == ""
    assert err.splitlines()[-1].startswith("replayed 1 dead letters: 0 decided, 1 dead again")
    assert "2 replayed before" in err.splitlines()[-1]
    # --again replays them whatever was done before.
    code, out, _ = invoke("dead-letters", "replay", str(fixed), "--db", db, "--again", "--reason", "event.n")
    assert code == 0 and [json.loads(line)["event_id"] for line in out.splitlines()] == ["2"]


def test_a_replay_runs_the_second_stage_as_vigil_run_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.plugin_helpers import standing_db, use_example_plugin

    use_example_plugin(monkeypatch, tmp_path)
    monkeypatch.setenv("VIGIL_EXAMPLE_STANDING_DB", str(standing_db(tmp_path)))
    rules = tmp_path / "slow.vigil"
    rules.write_text('rule "big" when event is "post" and event.n > 1 then flag\n'
                     'rule "Suspended" when event is "post" and standing(event.user) == "suspended" then block\n')
    db = str(tmp_path / "state.sqlite")
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"type": "post", "id": "7", "time": 1, "n": "five", "user": "u1"}) + "\n")
    assert invoke("run", str(rules), "--events", str(events), "--db", db)[0] == 0
    rules.write_text(rules.read_text().replace("event.n > 1", 'event.user == "nobody"'))
    code, out, _ = invoke("dead-letters", "replay", str(rules), "--db", db)
    assert code == 0, out
    decisions = [json.loads(line) for line in out.splitlines()]
    assert [(d["event_id"], d["stage"]) for d in decisions] == [("7", 1), ("7", 2)]
    assert decisions[1]["verdict"] == "block"
