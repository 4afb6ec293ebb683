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


# ---- late and far-future events (issue 10.9), stored history per key (issue 11.4) ----

HOUR = 3600


def test_a_far_future_event_no_longer_fixes_the_window_in_place() -> None:
    """A post dated 2100 made every later post count in the 2100 second: 1 h, 2 h and 25 h later it
    counted 2, 3, 4. Each now counts at its own second (the 2100 post is outside their windows)."""
    c = bound([spec("count", DAY)])
    add = c.adders[0]
    assert add("k", S0, 1) == (0, 1)
    assert add("k", 4_102_444_800, 1) == (0, 1)  # 2100-01-01: alone in its window
    assert [add("k", S0 + h * HOUR, 1)[1] for h in (1, 2, 25)] == [1, 2, 2]
    assert c.peekers[0]("k", S0 + 25 * HOUR) == 2


def test_a_late_event_counts_at_its_own_second_and_leaves_at_its_own_time() -> None:
    c = bound([spec("count", 10)])
    add, peek = c.adders[0], c.peekers[0]
    add("k", S0, 1)
    add("k", S0 + 8, 1)
    assert add("k", S0 + 3, 1) == (1, 2)  # late: its window (S0-7 … S0+3) holds S0 and itself
    assert peek("k", S0 + 8) == 3
    assert peek("k", S0 + 13) == 1  # the late one left 10 s after its own second, not after S0+8's
    assert peek("k", S0 + 5) == 2  # a window ending before the newest second


def test_late_distinct_values_count_at_their_own_second() -> None:
    c = bound([spec("distinct", 10)])
    add, peek = c.adders[0], c.peekers[0]
    add("k", S0, "a")
    add("k", S0 + 8, "b")
    assert add("k", S0 + 3, "c") == (1, 2)  # sees a and itself, not b (later)
    assert add("k", S0 + 4, "b") == (2, 3)  # a and c are in its window; b at S0+8 is after it
    assert peek("k", S0 + 12) == 2  # b and c; a has left
    assert peek("k", S0 + 14) == 1  # only b at S0+8


def test_a_late_day_event_does_not_restart_todays_count() -> None:
    c = bound([spec("count", None)])
    add = c.adders[0]
    add("k", S0 + 10, 1)
    add("k", S0 + 20, 1)
    assert add("k", S0 - 5, 1) == (0, 1)  # yesterday's, late: counted alone
    assert add("k", S0 + 30, 1) == (2, 3)  # today's count goes on (it restarted at 1)


def _reference(ops: list[tuple[int, int]], window: int) -> list[float]:
    """What a sliding count holds, by brute force: an addition is held until an event arriving after
    it has a window that starts after its second; a value counts what is held inside its window."""
    values = []
    for k, (sec, amount) in enumerate(ops):
        held = [(s, a) for j, (s, a) in enumerate(ops[:k])
                if all(ops[i][0] - window < s for i in range(j + 1, k + 1))]
        values.append(sum(a for s, a in held if sec - window < s <= sec) + amount)
    return values


def test_sliding_counts_match_the_reference_with_late_events() -> None:
    import random

    rng = random.Random(7)
    for _ in range(40):
        ops, sec = [], S0
        for _ in range(60):
            sec += rng.randint(-12, 6)
            ops.append((sec, rng.choice([1, 2])))
        c = bound([spec("sum", 10)])
        assert [c.adders[0]("k", s, a)[1] for s, a in ops] == _reference(ops, 10)


def test_one_future_dated_event_keeps_every_other_keys_history(store: MemoryStore) -> None:
    """A row dated 2030 made the counter-wide newest second 2030: prune deleted every other key's rows
    and a reload loaded none of them."""
    first = WindowCounters(store, clock=lambda: S0 + 100)
    first.bind([spec("count", HOUR)])
    for i in range(3):
        first.adders[0]("victim", S0 + i, 1)
    first.adders[0]("attacker", 1_893_456_000, 1)  # 2030-01-01
    first.flush()
    first.prune()
    first.close()
    assert sorted(r[1] for r in store.counter_rows) == ["attacker", "victim", "victim", "victim"]
    second = WindowCounters(store, clock=lambda: S0 + 100)
    second.bind([spec("count", HOUR)])
    assert second.adders[0]("victim", S0 + 10, 1) == (3, 4)


def test_prune_is_per_key_and_expires_keys_idle_for_two_windows(store: MemoryStore) -> None:
    c = WindowCounters(store, clock=lambda: S0 + 10 * HOUR)
    c.bind([spec("count", HOUR)])
    add = c.adders[0]
    add("busy", S0, 1)
    add("busy", S0 + 2 * HOUR, 1)  # its first row is out of its window
    add("quiet", S0 + HOUR, 1)  # still inside the window ending at its own last row
    add("idle", S0 - 3 * HOUR, 1)  # over two windows behind the counter's newest second
    c.flush()
    c.prune()
    assert sorted((r[1], r[2]) for r in store.counter_rows) == [("busy", S0 + 2 * HOUR), ("quiet", S0 + HOUR)]


# ---- the flusher never dies (issue 11.3) ----


def test_a_row_no_store_can_hold_is_set_aside_and_the_rest_is_written(tmp_path: pytest.TempPathFactory) -> None:
    from vigil.stores.sqlite import SqliteStore

    db = SqliteStore(tmp_path / "s.sqlite")  # type: ignore[operator]
    c = WindowCounters(db)
    c.bind([spec("count", HOUR), spec("distinct", HOUR, cid="c2")])
    c.adders[0]("k", S0, 1)
    c.adders[0]("k", 10**297, 1)  # what an event time of 1e300 made of the second
    c.adders[1]("k", S0, "\ud800")  # a lone surrogate: not UTF-8
    assert c.flush() == 1
    status = c.flush_status()
    assert status.set_aside == 2 and status.last_error == ""
    assert [r[2] for r in db.load_counter_rows("c1", None)] == [S0]
    reasons = sorted(letter.reason for letter in db.dead_letters())
    assert "64-bit" in reasons[0] and "surrogate" in reasons[1]
    db.close()


class FailingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    def write_counter_rows(self, rows: list) -> None:  # type: ignore[type-arg]
        if self.fail:
            raise OSError("disk I/O error")
        super().write_counter_rows(rows)


def test_a_store_that_fails_keeps_the_rows_for_the_next_flush() -> None:
    store = FailingStore()
    c = bound([spec("count", HOUR)], store)
    c.adders[0]("k", S0, 1)
    assert c.flush() == 0
    status = c.flush_status()
    assert status.failures == 1 and "disk I/O error" in status.last_error and status.waiting == 1
    c.adders[0]("k", S0, 1)
    store.fail = False
    assert c.flush() == 1
    assert store.counter_rows == [("c1", "k", S0, "", 2.0)]
    assert c.flush_status().last_error == ""


def test_the_flusher_thread_survives_a_failing_store() -> None:
    import time

    store = FailingStore()
    c = WindowCounters(store, flush_interval=0.01)
    c.bind([spec("count", HOUR)])
    c.start()
    try:
        c.adders[0]("k", S0, 1)
        deadline = time.monotonic() + 30
        while c.flush_status().failures < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert c.flush_status().failures >= 3
        store.fail = False
        while not store.counter_rows and time.monotonic() < deadline:
            time.sleep(0.01)
        assert c._thread is not None and c._thread.is_alive()
    finally:
        c.close()
    assert store.counter_rows == [("c1", "k", S0, "", 1.0)]
