"""Searches over stored events: pages newest first, cursors, top values, counts, limits."""

from __future__ import annotations

from collections import Counter

import pytest
from stored import ListRecord

from vigil.analysis.query import compile_query
from vigil.analysis.search import SearchLimits, SearchRefused, Window, counts, parse_when, search, top
from vigil.dsl.loader import RuleSet
from vigil.record.base import StoredEvent

STUFFING = "Credential stuffing: many accounts from one IP"


def test_a_page_is_every_match_newest_first_and_the_cursor_continues(demo_record: ListRecord,
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


def test_rule_fired_uses_the_rule_index_and_fields_are_evaluated(demo_record: ListRecord,
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


def test_time_window_bounds_the_search(demo_record: ListRecord, demo_stored: list[StoredEvent]) -> None:
    middle = demo_stored[len(demo_stored) // 2].time
    page = search(demo_record, compile_query("verdict is allow"), Window(since=middle, until=middle + 60),
                  limit=1000)
    assert page.events and all(middle <= e.time < middle + 60 for e in page.events)


def test_top_values_of_an_expression_where_a_rule_fired(demo_record: ListRecord, demo_stored: list[StoredEvent],
                                                        example_rules: RuleSet) -> None:
    query = compile_query(f'top event.ip where rule "{STUFFING}" fired', context=example_rules)
    found = top(demo_record, query, Window(), n=3)
    expected = Counter(e.event["ip"] for e in demo_stored if STUFFING in e.rules and e.event)
    assert found.rows == sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert found.matched == sum(expected.values())


def test_counts_per_hour_include_empty_hours(demo_stored: list[StoredEvent]) -> None:
    # Two clusters three hours apart: the hours between are there with 0.
    base = demo_stored[0]
    shifted = [StoredEvent(e.cursor.replace(repr(e.time), repr(e.time + 3 * 3600), 1), e.source, e.event_id,
                           e.time + 3 * 3600, e.type, e.verdict, e.ruleset, e.recorded_at, e.event, e.decisions,
                           e.rules, e.entities) for e in demo_stored[:50]]
    record = ListRecord([*demo_stored[:50], *shifted])
    found = counts(record, compile_query("verdict is allow or not verdict is allow"), Window(), by="hour")
    assert sum(n for _b, n in found.rows) == 100
    assert len(found.rows) >= 4 and 0 in [n for _b, n in found.rows]
    assert found.rows[0][0].endswith(":00:00Z") and base.time // 3600 * 3600 <= base.time


def test_a_search_that_reads_too_much_is_refused_with_a_hint(demo_record: ListRecord) -> None:
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
