"""WindowCounters: sliding and calendar windows, journalling to a store, reloading after a restart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vigil.dsl.compile import CounterSpec
from vigil.signals.counters import WindowCounters
from vigil.stores.memory import MemoryStore

DAY = 86400
S0 = 1_767_225_600  # a UTC midnight


def spec(kind: str = "count", window: float | None = 10, cid: str = "c1") -> CounterSpec:
    return CounterSpec(cid, kind, window, f"{kind} {window}")


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    yield MemoryStore()


def bound(specs: list[CounterSpec], store: MemoryStore | None = None) -> WindowCounters:
    counters = WindowCounters(store)
    counters.bind(specs)
    return counters


def test_sliding_window_holds_the_last_w_seconds() -> None:
    c = bound([spec(window=10)])
    add, peek = c.adders[0], c.peekers[0]
    assert add("k", S0, 1) == (0, 1)
    assert add("k", S0 + 5, 1) == (1, 2)
    assert peek("k", S0 + 9) == 2
    assert peek("k", S0 + 10) == 1  # second S0 has left the window
    assert peek("k", S0 + 15) == 0
    assert add("k", S0 + 10, 1) == (1, 2)
    assert peek("other", S0) == 0


def test_sum_counter_adds_amounts() -> None:
    c = bound([spec("sum", 60)])
    add = c.adders[0]
    assert add("k", S0, 2.5) == (0, 2.5)
    assert add("k", S0, 4) == (2.5, 6.5)
    assert add("k", S0 + 60, 1) == (0, 1)


def test_distinct_counter() -> None:
    c = bound([spec("distinct", 10)])
    add, peek = c.adders[0], c.peekers[0]
    assert add("k", S0, "a") == (0, 1)
    assert add("k", S0 + 1, "a") == (1, 1)
    assert add("k", S0 + 2, "b") == (1, 2)
    assert add("k", S0 + 3, 7) == (2, 3)
    assert peek("k", S0 + 11) == 2  # "a" last seen at S0+1 is gone; "b" and 7 remain
    assert add("k", S0 + 11, "7") == (2, 2)  # 7 and "7" are the same value
    assert peek("k", S0 + 13) == 1


def test_today_window() -> None:
    c = bound([spec(window=None)])
    add, peek = c.adders[0], c.peekers[0]
    assert add("k", S0 + DAY - 1, 1) == (0, 1)
    assert peek("k", S0 + DAY - 1) == 1
    assert peek("k", S0 + DAY) == 0
    assert add("k", S0 + DAY, 1) == (0, 1)


def test_distinct_today() -> None:
    c = bound([spec("distinct", None)])
    add = c.adders[0]
    assert add("k", S0, "a") == (0, 1)
    assert add("k", S0 + 1, "a") == (1, 1)
    assert add("k", S0 + DAY, "a") == (0, 1)


def test_add_many_applies_one_events_updates() -> None:
    c = bound([spec(cid="a"), spec("sum", cid="b")])
    assert c.add_many("e1", S0, [(0, "k", 1), (1, "k", 5)]) == {0: (0, 1), 1: (0, 5)}
    assert c.add_many("e2", S0, [(1, "k", 5)]) == {1: (5, 10)}


def test_flush_writes_compacted_rows(store: MemoryStore) -> None:
    c = bound([spec("count", 60)], store)
    for _ in range(3):
        c.adders[0]("k", S0, 1)
    c.adders[0]("k", S0 + 1, 1)
    assert store.counter_rows == []
    assert c.flush() == 2  # four updates, summed into two rows
    assert sorted(store.counter_rows) == [("c1", "k", S0, "", 3.0), ("c1", "k", S0 + 1, "", 1.0)]
    assert c.flush() == 0


def test_reload_from_store_continues_counts(store: MemoryStore) -> None:
    first = bound([spec("count", 60), spec("distinct", 60, cid="c2"), spec("count", None, cid="c3")], store)
    for i in range(5):
        first.adders[0]("k", S0 + i, 1)
        first.adders[1]("k", S0 + i, f"v{i % 3}")
        first.adders[2]("k", S0 + i, 1)
    first.close()
    second = bound([spec("count", 60), spec("distinct", 60, cid="c2"), spec("count", None, cid="c3")], store)
    before, after = second.adders[0]("k", S0 + 10, 1)
    assert (before, after) == (5, 6)
    assert type(after) is int  # whole counts read back from the store stay ints (explanations show 6, not 6.0)
    assert second.adders[1]("k", S0 + 10, "v0") == (3, 3)
    assert second.adders[2]("k", S0 + 10, 1) == (5, 6)
    assert second.peekers[0]("k", S0 + 60) == 5  # the first second (S0) has left


def test_reload_ignores_rows_outside_the_window(store: MemoryStore) -> None:
    first = bound([spec("count", 10)], store)
    first.adders[0]("k", S0, 1)
    first.adders[0]("k", S0 + 100, 1)
    first.close()
    second = bound([spec("count", 10)], store)
    assert second.peekers[0]("k", S0 + 100) == 1


def test_today_reload_ignores_yesterday(store: MemoryStore) -> None:
    first = bound([spec("count", None)], store)
    first.adders[0]("k", S0 - 1, 1)
    first.adders[0]("k", S0 + 5, 1)
    first.close()
    second = bound([spec("count", None)], store)
    assert second.peekers[0]("k", S0 + 10) == 1


def test_rebinding_keeps_unchanged_counters(store: MemoryStore) -> None:
    c = bound([spec(cid="a")], store)
    c.adders[0]("k", S0, 1)
    c.bind([spec(cid="b"), spec(cid="a")])
    assert c.peekers[1]("k", S0) == 1
    assert c.peekers[0]("k", S0) == 0


def test_prune_drops_rows_no_window_sees(store: MemoryStore) -> None:
    c = bound([spec("count", 10)], store)
    c.adders[0]("k", S0, 1)
    c.adders[0]("k", S0 + 50, 1)
    c.flush()
    c.prune()
    assert [r[2] for r in store.counter_rows] == [S0 + 50]


def test_flusher_thread_writes_without_explicit_flush(store: MemoryStore) -> None:
    import threading

    written = threading.Event()
    original = store.write_counter_rows

    def write(rows: list) -> None:  # type: ignore[type-arg]
        original(rows)
        written.set()

    store.write_counter_rows = write  # type: ignore[method-assign]
    c = WindowCounters(store, flush_interval=0.01)
    c.bind([spec()])
    c.start()
    try:
        c.adders[0]("k", S0, 1)
        assert written.wait(30)
    finally:
        c.close()
    assert store.counter_rows == [("c1", "k", S0, "", 1.0)]


def test_without_a_store_nothing_is_journalled() -> None:
    c = bound([spec()])
    c.adders[0]("k", S0, 1)
    assert c.flush() == 0


def test_a_redelivered_event_adds_nothing_and_gets_its_first_answers() -> None:
    from vigil.dsl.compile import CounterSpec
    from vigil.signals.counters import WindowCounters

    counters = WindowCounters()
    counters.bind([CounterSpec("c1", "count", 60.0, "count of events by user in the last 1 minute")])
    assert counters.add_many("e1", 100, [(0, "u1", 1)]) == {0: (0, 1)}
    assert counters.add_many("e2", 101, [(0, "u1", 1)]) == {0: (1, 2)}
    assert counters.add_many("e1", 100, [(0, "u1", 1)]) == {0: (0, 1)}  # the same answer, not 3
    assert counters.peekers[0]("u1", 101) == 2
    # After a rules switch the remembered answers no longer apply: the counter as it stands.
    counters.bind([CounterSpec("c1", "count", 60.0, "count of events by user in the last 1 minute")])
    assert counters.add_many("e2", 101, [(0, "u1", 1)]) == {0: (2, 2)}
    assert counters.peekers[0]("u1", 101) == 2


def test_the_engine_decides_a_redelivered_event_as_the_first_time() -> None:
    from vigil.dsl.loader import load_ruleset
    from vigil.engine import Engine

    rules = load_ruleset("r.vigil", files={"r.vigil": 'entity user = event.u\n'
                                           'rule "3rd" when count of "p" by user in the last 1 hour crosses 2 then block'})
    engine = Engine(rules)
    verdicts = [engine.process({"type": "p", "id": i, "time": 10, "u": "a"}).verdict  # type: ignore[union-attr]
                for i in ("1", "2", "3", "3", "4")]
    assert verdicts == ["allow", "allow", "block", "block", "allow"]


def test_the_flusher_prunes_rows_no_window_can_see(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from vigil.signals import counters as module

    monkeypatch.setattr(module, "PRUNE_EVERY", 1)
    store = MemoryStore()
    c = bound([spec("count", 60)], store)
    c.flush_interval = 0.01
    c.adders[0]("k", S0, 1)
    c.adders[0]("k", S0 + 120, 1)  # two minutes later: the first second is out of every window
    c.start()
    deadline = time.monotonic() + 5
    while [r[2] for r in store.counter_rows] != [S0 + 120] and time.monotonic() < deadline:
        time.sleep(0.01)
    c.close()
    assert [r[2] for r in store.counter_rows] == [S0 + 120]
