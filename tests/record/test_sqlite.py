"""The embedded record: what is written comes back, filtered by the indexes, paged, pruned."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from vigil.record.base import Query, RecordEntry, parse_cursor
from vigil.record.sqlite import SqliteRecord


def entry(n: int, *, source: str = "s", verdict: str = "allow", stage: int = 1, rules: tuple[str, ...] = (),
          user: str = "u1", etype: str = "post", recorded_at: float = 1000.0) -> RecordEntry:
    decision = {"event_id": f"e{n}", "verdict": verdict, "stage": stage, "rules": list(rules)}
    return RecordEntry(source, f"e{n}", float(n), etype, stage, verdict, "v1", orjson.dumps(decision),
                       recorded_at, event=orjson.dumps({"id": f"e{n}", "user": user}) if stage == 1 else None,
                       rules=tuple((r, "live") for r in rules),
                       entities=(("user", user), ("ip", f"10.0.0.{n % 3}")) if stage == 1 else ())


@pytest.fixture()
def record(tmp_path: Path) -> SqliteRecord:
    store = SqliteRecord(tmp_path / "record.sqlite")
    yield store
    store.close()


def test_both_stages_of_an_event_are_one_stored_event(record: SqliteRecord) -> None:
    record.write([entry(1, verdict="flag", rules=("A",))])
    record.write([entry(1, verdict="block", stage=2, rules=("Slow",))])
    stored = record.get("s", "e1")
    assert stored is not None
    assert stored.verdict == "block"
    assert [d["stage"] for d in stored.decisions] == [1, 2]
    assert stored.decisions[0]["verdict"] == "flag"
    assert sorted(stored.rules) == ["A", "Slow"]
    assert stored.event == {"id": "e1", "user": "u1"}
    assert ("user", "u1") in stored.entities
    assert record.get("other", "e1") is None
    assert [s.source for s in record.find("e1")] == ["s"]


def test_filters_and_pages(record: SqliteRecord) -> None:
    record.write([entry(n, verdict="block" if n % 2 else "allow", rules=("R",) if n % 4 == 1 else (),
                        user=f"u{n % 5}", etype="post" if n < 50 else "login") for n in range(100)])
    assert record.count() == 100
    blocked = list(record.scan(Query(verdicts=("block",), limit=1000)))
    assert len(blocked) == 50 and all(s.verdict == "block" for s in blocked)
    assert [s.time for s in blocked] == sorted((s.time for s in blocked), reverse=True)
    fired = list(record.scan(Query(rules=("R",), since=10, until=60, limit=1000)))
    assert {s.event_id for s in fired} == {f"e{n}" for n in range(10, 60) if n % 4 == 1}
    mine = list(record.scan(Query(entities=(("user", "u2"),), types=("login",), limit=1000)))
    assert {s.event_id for s in mine} == {f"e{n}" for n in range(50, 100) if n % 5 == 2}
    # Pages follow each other without overlap or gap, either way round.
    for newest_first in (True, False):
        seen, after = [], None
        while True:
            page = list(record.scan(Query(limit=7, after=after, newest_first=newest_first)))
            if not page:
                break
            seen += [s.event_id for s in page]
            after = page[-1].cursor
        assert len(seen) == 100 and len(set(seen)) == 100
    assert list(record.scan(Query(sources=("nobody",)))) == []
    # Pages of a rule's and an entity's events too (their subqueries carry the cursor's time).
    for newest_first in (True, False):
        for filters in ({"rules": ("R",)}, {"entities": (("user", "u2"),)}):
            seen, after = [], None
            while True:
                page = list(record.scan(Query(limit=3, after=after, newest_first=newest_first, since=5, until=90,
                                              **filters)))  # type: ignore[arg-type]
                if not page:
                    break
                seen += [s.event_id for s in page]
                after = page[-1].cursor
            wanted = [n for n in range(5, 90) if (n % 4 == 1 if "rules" in filters else n % 5 == 2)]
            assert seen == [f"e{n}" for n in (reversed(wanted) if newest_first else wanted)]


def test_a_replay_reads_the_event_and_its_rules_and_the_rest_by_cursor(record: SqliteRecord) -> None:
    record.write([entry(n, rules=("A", "B") if n == 3 else ("A",) if n % 2 else ()) for n in range(10)])
    record.write([entry(3, verdict="block", stage=2, rules=("Slow",))])
    light = list(record.scan(Query(newest_first=False, replay_only=True, since=2, limit=4)))
    whole = list(record.scan(Query(newest_first=False, since=2, limit=4)))
    assert [s.cursor for s in light] == [s.cursor for s in whole]
    for fast, slow in zip(light, whole, strict=True):
        assert (fast.event, fast.verdict, sorted(fast.rules)) == (slow.event, slow.verdict, sorted(slow.rules))
        assert fast.decisions == () and fast.entities == ()
    assert sorted(light[1].rules) == ["A", "B", "Slow"] and light[1].verdict == "block"
    again = {s.cursor: s for s in record.at([light[1].cursor, light[3].cursor])}
    assert again[light[1].cursor] == whole[1] and again[light[3].cursor] == whole[3]
    assert record.at([]) == []


def test_neighbours_are_the_entities_seen_with_one(record: SqliteRecord) -> None:
    record.write([entry(n, user="u1" if n < 6 else "u2") for n in range(9)])
    near = {(n.entity_type, n.key): n.events for n in record.neighbours("user", "u1")}
    assert near == {("ip", "10.0.0.0"): 2, ("ip", "10.0.0.1"): 2, ("ip", "10.0.0.2"): 2}
    back = {(n.entity_type, n.key): n.events for n in record.neighbours("ip", "10.0.0.0")}
    assert back == {("user", "u1"): 2, ("user", "u2"): 1}


def test_prune_by_age_and_count(record: SqliteRecord) -> None:
    record.write([entry(n, recorded_at=float(n), rules=("R",)) for n in range(20)])
    assert record.prune(recorded_before=5.0, max_events=None) == 5
    assert record.count() == 15 and record.get("s", "e4") is None and record.get("s", "e5") is not None
    assert record.prune(recorded_before=None, max_events=10) == 5
    assert record.count() == 10 and record.get("s", "e9") is None
    # Nothing of a pruned event stays in the indexes.
    assert list(record.scan(Query(rules=("R",), limit=100)))[-1].event_id == "e10"
    assert record.neighbours("user", "u1") != [] and all(n.events <= 10 for n in record.neighbours("user", "u1"))
    assert record.prune(recorded_before=0.0, max_events=100) == 0


def test_a_bad_cursor_says_what_to_pass(record: SqliteRecord) -> None:
    with pytest.raises(ValueError, match="cursor of the last event"):
        list(record.scan(Query(after="nonsense")))
    assert parse_cursor("12.5:3") == (12.5, 3)


def test_a_file_that_is_not_a_database_is_one_clear_error(tmp_path: Path) -> None:
    from vigil.stores.base import StoreUnavailable

    bad = tmp_path / "record.sqlite"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreUnavailable, match="not a SQLite database"):
        SqliteRecord(bad)


def test_both_stages_in_one_batch(record: SqliteRecord) -> None:
    record.write([entry(1, verdict="flag", rules=("A",)), entry(2), entry(1, verdict="block", stage=2, rules=("S",))])
    stored = record.get("s", "e1")
    assert stored is not None and stored.verdict == "block" and sorted(stored.rules) == ["A", "S"]
    assert record.count() == 2
