"""Backtests: a candidate replayed over the demo's stored traffic, compared with the logged decisions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analysis.stored import EXAMPLES
from vigil.analysis.backtest import BacktestError, FieldTruth, backtest, longest_window
from vigil.dsl.loader import RuleSet, load_ruleset
from vigil.record.base import StoredEvent
from vigil.record.sqlite import SqliteRecord

STUFFING = "Credential stuffing: many accounts from one IP"
BURST = "Posting burst from a new account"


def edited(tmp_path: Path, edits: dict[str, tuple[str, str]]) -> RuleSet:
    target = tmp_path / "rules"
    shutil.copytree(EXAMPLES, target)
    for name, (old, new) in edits.items():
        path = target / name
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))
    return load_ruleset([str(target)])


def span(stored: list[StoredEvent]) -> tuple[float, float]:
    return stored[0].time, stored[-1].time + 1


def test_the_same_rules_replayed_decide_as_the_log_did(demo_record: SqliteRecord, demo_stored: list[StoredEvent],
                                                       example_rules: RuleSet) -> None:
    first, end = span(demo_stored)
    middle = demo_stored[len(demo_stored) // 2].time
    for since in (first, middle):  # from the middle, the warm-up replays what the counters' windows hold
        report = backtest(demo_record, example_rules, since=since, until=end, current=example_rules)
        assert report.replayed == sum(1 for e in demo_stored if e.time >= since)
        assert report.warmup == len(demo_stored) - report.replayed
        assert report.verdicts_changed == 0
        assert all(c.gained == c.lost == 0 for c in report.per_rule.values())
        assert report.rules_changed == report.rules_added == report.rules_removed == []
    assert longest_window(example_rules) == 7 * 86400


def test_an_edited_example_rule_shows_gained_and_lost_hits_with_examples(
        tmp_path: Path, demo_record: SqliteRecord, demo_stored: list[StoredEvent], example_rules: RuleSet) -> None:
    candidate = edited(tmp_path, {"accounts.vigil": ("accounts_tried_from_ip > 20", "accounts_tried_from_ip > 10"),
                                  "spam.vigil": ("posts_last_10m > 20", "posts_last_10m > 30")})
    since, until = span(demo_stored)
    report = backtest(demo_record, candidate, since=since, until=until, current=example_rules,
                      truth=FieldTruth("truth.attack"))
    assert report.rules_changed == [STUFFING, BURST] or sorted(report.rules_changed) == sorted([STUFFING, BURST])
    assert report.rules_added == report.rules_removed == []
    stuffing, burst = report.per_rule[STUFFING], report.per_rule[BURST]
    assert stuffing.gained > 0 and stuffing.lost == 0
    assert burst.lost > 0 and burst.gained == 0
    logged = {e.event_id: e for e in demo_stored}
    for example in stuffing.gained_examples:
        assert STUFFING not in logged[example["event_id"]].rules
        assert example["features"]["accounts_tried_from_ip"] > 10
    for example in burst.lost_examples:
        assert BURST in logged[example["event_id"]].rules
        assert 20 < example["features"]["posts_last_10m"] <= 30  # the logged value, which no longer fires
    # Verdicts moved both ways, and the matrix adds up to the events replayed.
    assert sum(n for row in report.matrix.values() for n in row.values()) == report.replayed == len(demo_stored)
    rank = {v: i for i, v in enumerate(report.matrix)}
    assert report.matrix["allow"]["block"] > 0 and report.verdict_examples["allow→block"]
    assert sum(n for a, row in report.matrix.items() for b, n in row.items() if rank[b] < rank[a]) > 0
    # Ground truth from the demo's generator: both sides scored on the same events.
    doc = report.to_json()
    assert doc["truth"]["events"] == len(demo_stored)
    cur, cand = doc["truth"]["current"], doc["truth"]["candidate"]
    assert cur["tp"] + cur["fn"] == cand["tp"] + cand["fn"] > 0
    assert cand["tp"] > cur["tp"] or cand["recall"] != cur["recall"]


def test_rules_added_and_removed_and_an_unknown_current_rules_set(tmp_path: Path, demo_record: SqliteRecord,
                                                                  demo_stored: list[StoredEvent],
                                                                  example_rules: RuleSet) -> None:
    candidate = edited(tmp_path, {"accounts.vigil": ('rule "Known stuffing IP"', 'rule "Known stuffing IP (v2)"')})
    since, until = span(demo_stored)
    report = backtest(demo_record, candidate, since=since, until=until, current=example_rules)
    assert report.rules_added == ["Known stuffing IP (v2)"] and report.rules_removed == ["Known stuffing IP"]
    moved = report.per_rule["Known stuffing IP (v2)"]
    assert moved.gained == report.per_rule["Known stuffing IP"].lost > 0
    # Without the current rules set, the rules the record saw fire stand for it.
    blind = backtest(demo_record, candidate, since=since, until=until)
    assert "Known stuffing IP" in blind.rules_removed and "Known stuffing IP (v2)" in blind.rules_added
    assert blind.rules_changed == []


def test_a_range_without_stored_events_says_so(demo_record: SqliteRecord, example_rules: RuleSet) -> None:
    with pytest.raises(BacktestError, match="holds no events between 2001-01-01T00:00:00Z and"):
        backtest(demo_record, example_rules, since=978307200.0, until=978310800.0)
    with pytest.raises(BacktestError, match="must come after"):
        backtest(demo_record, example_rules, since=10.0, until=5.0)


def test_the_fast_path_reports_what_the_whole_read_does(tmp_path: Path, demo_record: SqliteRecord,
                                                        demo_stored: list[StoredEvent], example_rules: RuleSet) -> None:
    """The fast path reads only the columns the comparison needs, in large batches, and decodes the
    logged decisions only for the lost hits it shows: its report is the reference path's, example for
    example (the logged feature values included)."""
    candidate = edited(tmp_path, {"accounts.vigil": ("accounts_tried_from_ip > 20", "accounts_tried_from_ip > 10"),
                                  "spam.vigil": ("posts_last_10m > 20", "posts_last_10m > 30")})
    since, until = span(demo_stored)
    middle = demo_stored[len(demo_stored) // 3].time
    for start in (since, middle):
        reports = [backtest(demo_record, candidate, since=start, until=until, current=example_rules,
                            truth=FieldTruth("truth.attack"), fast=fast).to_json() for fast in (True, False)]
        for doc in reports:
            doc.pop("throughput")
        assert reports[0] == reports[1]
        lost = next(c for c in reports[0]["per_rule"] if c["rule"] == BURST)["examples"]["lost"]
        assert lost and all(e["features"]["posts_last_10m"] > 20 for e in lost)
