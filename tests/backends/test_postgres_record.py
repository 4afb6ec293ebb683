"""The record in PostgreSQL on a real server: the same behaviour as the embedded one, day partitions,
and several writers at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.record import test_sqlite as same
from vigil.record.base import Query
from vigil.record.postgres import PostgresRecord

from .servers import Server, fresh_database


@pytest.fixture()
def record(postgres: Server) -> Iterator[PostgresRecord]:
    store = PostgresRecord(fresh_database(postgres, "record"))
    yield store
    store.close()


test_both_stages_of_an_event_are_one_stored_event = same.test_both_stages_of_an_event_are_one_stored_event
test_filters_and_pages = same.test_filters_and_pages
test_neighbours_are_the_entities_seen_with_one = same.test_neighbours_are_the_entities_seen_with_one
test_prune_by_age_and_count = same.test_prune_by_age_and_count
test_a_bad_cursor_says_what_to_pass = same.test_a_bad_cursor_says_what_to_pass
test_a_replay_reads_the_event_and_its_rules_and_the_rest_by_cursor = (
    same.test_a_replay_reads_the_event_and_its_rules_and_the_rest_by_cursor)


def test_days_are_partitions_and_old_days_are_dropped(record: PostgresRecord) -> None:
    day = 86400.0
    record.write([same.entry(n, recorded_at=day * (n // 10) + 5, rules=("R",)) for n in range(30)])
    partitions = {r[0] for r in record._query(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p"
        " ON p.oid = i.inhparent WHERE p.relname = 'record_events'")}
    assert partitions == {"record_events_d0", "record_events_d1", "record_events_d2"}
    assert record.prune(recorded_before=day * 2, max_events=None) == 20
    assert record.count() == 10 and record.get("s", "e19") is None and record.get("s", "e20") is not None
    assert next(s.event_id for s in record.scan(Query(rules=("R",), limit=100, newest_first=False))) == "e20"


def test_several_writers_share_one_database(postgres: Server) -> None:
    url = fresh_database(postgres, "recordw")
    writers = [PostgresRecord(url) for _ in range(3)]

    def write(index: int, store: PostgresRecord) -> None:
        for batch in range(5):
            store.write([same.entry(1000 * index + 10 * batch + n, source=f"w{index}") for n in range(10)])

    threads = [threading.Thread(target=write, args=(i, w)) for i, w in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writers[0].count() == 150
    assert len({s.cursor for s in writers[1].scan(Query(limit=1000))}) == 150
    for store in writers:
        store.close()
