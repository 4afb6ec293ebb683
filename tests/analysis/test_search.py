"""Searches over stored events: pages newest first, cursors, top values, counts, limits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from analysis.stored import record_traffic
from vigil.analysis.query import compile_query
from vigil.analysis.search import SearchLimits, SearchRefused, Window, counts, parse_when, search, top
from vigil.dsl.loader import RuleSet, load_ruleset
from vigil.record.base import StoredEvent
from vigil.record.sqlite import SqliteRecord

STUFFING = "Credential stuffing: many accounts from one IP"


def test_a_page_is_every_match_newest_first_and_the_cursor_continues(demo_record: SqliteRecord,
                                                                      demo_stored: list[StoredEvent],
                                                                      example_rules: RuleSet) -> None:
    query = compile_query('event is "post" and verdict is block', context=example_rules)
    expected = [e for e in demo_stored if e.type == "post" and e.verdict == "block"]
    assert len(expected) > 12
    seen: list[StoredEvent] = []
    cursor = None
    while True:
        page = search(demo_record, query, Window(), limit=5, after=cursor)
        seen += page.events
        cursor = page.cursor
        if cursor is None:
            break
    assert [e.event_id for e in seen] == [e.event_id for e in sorted(expected, key=lambda e: -e.time)]


def test_rule_fired_uses_the_rule_index_and_fields_are_evaluated(demo_record: SqliteRecord,
                                                                 demo_stored: list[StoredEvent],
                                                                 example_rules: RuleSet) -> None:
    some_ip = next(e.event["ip"] for e in demo_stored if STUFFING in e.rules and e.event)
    query = compile_query(f'rule "{STUFFING}" fired and event.ip == "{some_ip}" and event.success == false',
                          context=example_rules)
    assert query.pushdown.rules == (STUFFING,) and query.pushdown.entities == (("ip", some_ip),)
    page = search(demo_record, query, Window(), limit=1000)
    expected = [e for e in demo_stored if STUFFING in e.rules and e.event and e.event["ip"] == some_ip
                and e.event["success"] is False]
    assert {e.event_id for e in page.events} == {e.event_id for e in expected} and expected
    selected = [e for e in demo_stored if STUFFING in e.rules and ("ip", some_ip) in e.entities]
    assert page.scanned == len(selected) < len(demo_stored) // 100  # only what the indexes selected was read


def test_time_window_bounds_the_search(demo_record: SqliteRecord, demo_stored: list[StoredEvent]) -> None:
    middle = demo_stored[len(demo_stored) // 2].time
    page = search(demo_record, compile_query("verdict is allow"), Window(since=middle, until=middle + 60),
                  limit=1000)
    assert page.events and all(middle <= e.time < middle + 60 for e in page.events)


def test_top_values_of_an_expression_where_a_rule_fired(demo_record: SqliteRecord, demo_stored: list[StoredEvent],
                                                        example_rules: RuleSet) -> None:
    query = compile_query(f'top event.ip where rule "{STUFFING}" fired', context=example_rules)
    found = top(demo_record, query, Window(), n=3)
    expected = Counter(e.event["ip"] for e in demo_stored if STUFFING in e.rules and e.event)
    assert found.rows == sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert found.matched == sum(expected.values())


def test_counts_per_hour_include_empty_hours(tmp_path: Path) -> None:
    rules = load_ruleset("r.vigil", files={"r.vigil": 'rule "post" when event is "post" then flag'})
    hour = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    times = [hour + 10, hour + 20, hour + 3 * 3600 + 5, hour + 3 * 3600 + 6, hour + 3 * 3600 + 7]
    record = record_traffic(rules, [{"type": "post", "id": f"p{i}", "time": t} for i, t in enumerate(times)],
                            tmp_path / "record.sqlite")
    found = counts(record, compile_query("verdict is flag"), Window(), by="hour")
    assert found.rows == [("2026-01-01T00:00:00Z", 2), ("2026-01-01T01:00:00Z", 0), ("2026-01-01T02:00:00Z", 0),
                          ("2026-01-01T03:00:00Z", 3)]
    by_day = counts(record, compile_query('rule "post" fired', context=rules), Window(since=hour + 15), by="day")
    assert by_day.rows == [("2026-01-01T00:00:00Z", 4)] and by_day.scanned == 4
    record.close()


def test_a_search_that_reads_too_much_is_refused_with_a_hint(demo_record: SqliteRecord) -> None:
    limits = SearchLimits(max_scanned=100, read_batch=50)
    with pytest.raises(SearchRefused) as caught:
        search(demo_record, compile_query('event.text contains "zzz-never"'), Window(), limits=limits)
    assert "more than 100 stored events" in caught.value.message
    assert "verdict is block" in caught.value.hint
    # The same search with an indexed filter reads less, and answers.
    search(demo_record, compile_query('verdict is block and event.text contains "zzz-never"'), Window(),
           limits=SearchLimits(max_scanned=1000, read_batch=50))
    with pytest.raises(SearchRefused):
        search(demo_record, compile_query("verdict is block"), Window(), limit=5000)


def test_times_on_the_command_line() -> None:
    assert parse_when("7d", 1_000_000.0) == 1_000_000.0 - 7 * 86400
    assert parse_when("90m", 10_000.0) == 10_000.0 - 5400
    assert parse_when("2026-01-01T00:00:00Z", 0) == 1767225600.0
    with pytest.raises(ValueError, match="7d, 24h or 30m"):
        parse_when("last tuesday", 0)
