"""`vigil dead-letters`: list, export and replay what `vigil run --db` kept."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from vigil.cli import main

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
    assert code == 0 and err == "2 dead letters\n"
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
