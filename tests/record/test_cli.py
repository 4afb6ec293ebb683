"""`vigil run --db` keeps the record; `vigil explain --event-id` and `vigil entity` answer from it."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from vigil.cli import main

RULES = """
entity user = event.user
entity ip = event.ip
define posts = count of "post" by user in the last 1 hour
rule "Burst" when event is "post" and posts >= 2 then review, label user "bursty"
"""


def run_events(tmp_path: Path, rules: str, events: list[dict[str, object]]) -> Path:
    (tmp_path / "r.vigil").write_text(rules)
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    db = tmp_path / "data" / "vigil.sqlite"
    result = CliRunner().invoke(main, ["run", str(tmp_path / "r.vigil"), "--events", str(tmp_path / "events.jsonl"),
                                       "--db", str(db), "--out", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    return db


EVENTS = [{"type": "post", "id": "p1", "time": 100, "user": "u1", "ip": "1.1.1.1"},
          {"type": "post", "id": "p2", "time": 200, "user": "u1", "ip": "2.2.2.2"},
          {"type": "post", "id": "p3", "time": 300, "user": "u2", "ip": "2.2.2.2"}]


def test_explain_shows_the_decision_as_it_was_made_not_as_today(tmp_path: Path) -> None:
    db = run_events(tmp_path, RULES, EVENTS)
    assert (db.parent / "record.sqlite").exists()
    # Re-deciding p2 today (its user has more posts, and a label) could give another answer; the record
    # shows the one it got.
    result = CliRunner().invoke(main, ["explain", "--event-id", "p2", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "REVIEW" in result.output and 'rule "Burst"' in result.output and "posts = 2" in result.output
    first = CliRunner().invoke(main, ["explain", "--event-id", "p1", "--db", str(db), "--json"])
    stored = orjson.loads(first.output)
    assert stored["verdict"] == "allow" and stored["event"]["ip"] == "1.1.1.1"
    missing = CliRunner().invoke(main, ["explain", "--event-id", "nope", "--db", str(db)])
    assert missing.exit_code == 1 and "not in the record" in missing.output
    nothing = CliRunner().invoke(main, ["explain", "--db", str(db)])
    assert nothing.exit_code == 2 and "--event-id" in nothing.output


def test_entity_answers_why_an_account_was_actioned(tmp_path: Path) -> None:
    db = run_events(tmp_path, RULES, EVENTS)
    result = CliRunner().invoke(main, ["entity", "user", "u1", "--db", str(db), "--rules", str(tmp_path / "r.vigil"),
                                       "--json"])
    assert result.exit_code == 0, result.output
    timeline = orjson.loads(result.output)
    assert [e["event_id"] for e in timeline["events"]] == ["p2", "p1"]
    assert timeline["labels"][0]["label"] == "bursty" and timeline["labels"][0]["actor"] == "Burst"
    assert {(n["entity"], n["key"]) for n in timeline["neighbours"]} == {("ip", "1.1.1.1"), ("ip", "2.2.2.2")}
    assert timeline["counters"] == [{"counter": 'count of "post" by user in the last 1 hour', "value": 2}]
    back = orjson.loads(CliRunner().invoke(main, ["entity", "ip", "2.2.2.2", "--db", str(db), "--json"]).output)
    assert {(n["entity"], n["key"]) for n in back["neighbours"]} == {("user", "u1"), ("user", "u2")}
    text = CliRunner().invoke(main, ["entity", "user", "u1", "--db", str(db)])
    assert "bursty: present" in text.output and "REVIEW" in text.output and "seen with:" in text.output


def test_run_without_a_store_keeps_no_record_and_says_where_to_look(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["entity", "user", "u1", "--db", str(tmp_path / "none" / "vigil.sqlite")])
    assert result.exit_code == 1 and "no record at" in result.output
