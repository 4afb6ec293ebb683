"""The bounded working set (counters and labels read from the store on demand, the least recently used
leaving memory) decides every event exactly as keeping everything in memory does: across window
boundaries, late events, day boundaries, label expiry, prunes and restarts."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from vigil.dsl.loader import load_ruleset
from vigil.effects import Decision
from vigil.engine import Engine
from vigil.stores.memory import MemoryStore
from vigil.stores.sqlite import SqliteStore

DAY = 86400
T0 = 1_767_225_600 - 300  # five minutes before a UTC midnight, so the events cross into the next day

RULES = """
entity user = event.user
entity ip = event.ip

define posts = count of "post" by user in the last 20 seconds
define spent = sum of event.amount for user where (event is "buy") in the last 40 seconds
define accounts = count distinct event.user for ip in the last 30 seconds
define posts_today = count of "post" by user today
define ips_today = count distinct event.ip for user today
define activity = count of events by user in the last 10 seconds

rule "Fast poster" when event is "post" and posts > 3 then review, label user "fast" for 40 seconds
rule "Big spender" when event is "buy" and spent > 50 then flag, label user "spender" for 1 minute
rule "Shared ip" when event is "login" and accounts crosses 2 then review, label ip "shared" for 25 seconds
rule "Known fast" when event is "buy" and user has label "fast" then block
rule "Shared again" when event is "login" and ip has label "shared" and activity > 1 then flag
rule "Busy day" when event is "login" and posts_today > 4 and ips_today > 1 then review
rule "Watched" when event is "post" and user has manual label "watch" then flag
"""


def events(n: int, seed: int) -> list[dict[str, Any]]:
    """Traffic over a few users and ips, time moving on by 0-3 seconds, with late events (up to a window
    late) mixed in, crossing a day boundary and letting windows and labels expire."""
    rng = random.Random(seed)
    out, t = [], T0
    for i in range(n):
        t += rng.choice((0, 0, 1, 1, 2, 3, 3, 9))
        when = t - rng.randint(1, 25) if rng.random() < 0.15 else t  # a late event
        kind = rng.choice(("post", "post", "buy", "login"))
        event: dict[str, Any] = {"type": kind, "id": f"e{i}", "time": when, "user": f"u{rng.randint(0, 7)}",
                                 "ip": f"10.0.0.{rng.randint(0, 4)}"}
        if kind == "buy":
            event["amount"] = rng.randint(1, 30)
        out.append(event)
    return out


def decide_all(engine: Engine, stream: list[dict[str, Any]], *, flush_every: int = 5,
               prune_every: int = 40, start: int = 0) -> list[dict[str, Any]]:
    """Decide `stream` (events `start`… of a longer one), flushing and pruning at the same events in every
    run (the flusher thread would do so at times of its own), with a person's label set now and then."""
    decisions = []
    for i, event in enumerate(stream, start):
        if i % 37 == 0:
            engine.labels.set("user", event["user"], "watch", present=i % 74 == 0, now=event["time"],
                              source="manual", actor="mod", expires_at=event["time"] + 20)
        decision = engine.process(event)
        assert isinstance(decision, Decision)
        decisions.append(decision.to_json())
        if i % flush_every == 0:
            engine.counters.flush()
        if i % prune_every == 0:
            engine.counters.prune()  # type: ignore[attr-defined]
    return decisions


def engine(store: Any, keys: int | None, entities: int | None) -> Engine:
    rules = load_ruleset("r.vigil", files={"r.vigil": RULES})
    # The flusher thread never runs (an hour's interval): the test flushes at fixed events.
    return Engine(rules, store, flush_interval=3600, max_counter_keys=keys, max_label_entities=entities)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_tiny_working_set_decides_as_keeping_everything(tmp_path: Path, seed: int) -> None:
    stream = events(1500, seed)
    whole = engine(SqliteStore(tmp_path / "whole.sqlite"), None, None)
    tiny = engine(SqliteStore(tmp_path / "tiny.sqlite"), 3, 2)
    try:
        expected = decide_all(whole, stream)
        assert decide_all(tiny, stream) == expected
        assert sum(bool(d["rules"]) for d in expected) > 100  # the rules fired, on many kinds of rule
        assert {rule for d in expected for rule in d["rules"]} == {
            "Fast poster", "Big spender", "Shared ip", "Known fast", "Shared again", "Busy day", "Watched"}
        # The small one held at most its limit plus the states changed since the last flush.
        assert tiny.counters.held_keys() <= 3 + 5 * 6  # type: ignore[attr-defined]
        assert tiny.labels.cached_entities() <= 2  # type: ignore[attr-defined]
        assert whole.counters.held_keys() > 40  # type: ignore[attr-defined]
    finally:
        whole.close()
        tiny.close()


@pytest.mark.parametrize(("keys", "entities"), [(None, None), (4, 3)])
def test_a_restart_decides_as_running_on(tmp_path: Path, keys: int | None, entities: int | None) -> None:
    stream = events(1200, 7)
    expected = decide_all(engine(MemoryStore(), None, None), stream)
    path = tmp_path / "v.sqlite"
    decisions: list[dict[str, Any]] = []
    for start, end in ((0, 400), (400, 401), (401, len(stream))):
        running = engine(SqliteStore(path), keys, entities)
        assert running.counters.held_keys() == 0  # type: ignore[attr-defined]  # nothing loaded at start
        decisions += decide_all(running, stream[start:end], start=start)
        running.close()
    assert decisions == expected


def test_without_a_store_nothing_leaves_memory() -> None:
    stream = events(300, 5)
    unbounded = decide_all(engine(None, None, None), stream)
    assert decide_all(engine(None, 1, 1), stream) == unbounded


def test_a_state_changed_since_the_last_flush_stays_until_it_is_written(tmp_path: Path) -> None:
    from vigil.dsl.compile import CounterSpec
    from vigil.signals.counters import WindowCounters

    store = SqliteStore(tmp_path / "v.sqlite")
    counters = WindowCounters(store, max_keys=2)
    counters.bind([CounterSpec("c", "count", 60, "count 60")])
    for i in range(5):
        counters.add_many(f"e{i}", T0, [(0, f"k{i}", 1)])
    assert counters.held_keys() == 5  # none written yet: none can leave
    counters.flush()
    counters.add_many("e5", T0 + 1, [(0, "k0", 1)])  # k0 comes back from the store
    assert counters.held_keys() == 2
    assert counters.add_many("e6", T0 + 2, [(0, "k1", 1)]) == {0: (1, 2)}
    assert counters.add_many("e7", T0 + 3, [(0, "k0", 1)]) == {0: (2, 3)}
    assert counters.peekers[0]("k4", T0 + 3) == 1 and counters.peekers[0]("nobody", T0 + 3) == 0
    counters.close()
    store.close()


def test_the_limits_must_be_positive() -> None:
    from vigil.signals.counters import WindowCounters

    with pytest.raises(ValueError, match="max_keys"):
        WindowCounters(MemoryStore(), max_keys=0)


def test_a_restart_reads_no_counter_rows_until_a_key_is_needed(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite"
    first = engine(SqliteStore(path), None, None)
    decide_all(first, events(200, 9))
    first.close()

    loaded: list[str] = []

    class Watched(SqliteStore):
        def load_counter_rows(self, cid: str, since_sec: int | None) -> Any:
            raise AssertionError("a counter was loaded whole")

        def load_counter_key(self, cid: str, key: str) -> Any:
            loaded.append(key)
            return super().load_counter_key(cid, key)

    store = Watched(path)
    second = engine(store, None, None)
    assert loaded == []
    second.process({"type": "post", "id": "x", "time": T0 + 600, "user": "u1", "ip": "10.0.0.1"})
    assert set(loaded) == {"u1", "10.0.0.1"}
    # Keys the store never had are not looked up (but for the filter's rare false positive).
    for i in range(50):
        second.process({"type": "post", "id": f"n{i}", "time": T0 + 601, "user": f"new{i}", "ip": "10.0.0.1"})
    assert len([key for key in loaded if key.startswith("new")]) < 10
    assert second.counters.peekers[0]("u2", T0 + 601) >= 0 and "u2" in loaded  # type: ignore[index]
    second.close()


def test_the_working_set_is_safe_with_the_engine_on_its_own_thread(tmp_path: Path) -> None:
    """The service runs the engine off its event loop while the label API and the flusher use the same
    working set: with tiny limits (constant eviction and reads back), nothing raises and every label a
    person set is seen afterwards."""
    import threading

    running = engine(SqliteStore(tmp_path / "v.sqlite"), 3, 2)
    running.counters.flush_interval = 0.001
    running.counters.start()  # type: ignore[attr-defined]
    errors: list[BaseException] = []

    def decide() -> None:
        try:
            for event in events(600, 11):
                running.process(event)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    worker = threading.Thread(target=decide)
    worker.start()
    for i in range(300):
        running.labels.set("user", f"person{i % 7}", "watch", present=i % 2 == 0, now=T0 + i, source="manual",
                           actor="mod")
        running.labels.get("user", f"u{i % 8}", T0 + i)
    worker.join()
    # Each person's last change decides: set at the last i with i % 7 == person, present when i is even.
    expected = [max(i for i in range(300) if i % 7 == person) % 2 == 0 for person in range(7)]
    assert [running.labels.has("user", f"person{p}", "watch", T0 + 400) for p in range(7)] == expected
    running.close()
    assert errors == []
    reopened = engine(SqliteStore(tmp_path / "v.sqlite"), 3, 2)
    assert [reopened.labels.has("user", f"person{p}", "watch", T0 + 400) for p in range(7)] == expected
    reopened.close()


def test_activating_a_version_reads_new_counters_keys_without_the_engines_lock(tmp_path: Path) -> None:
    """Over a large store, reading a new counter's keys is the slow part of an activation: it happens
    before the engine takes its lock, so the running version goes on deciding events meanwhile (issue 12.4:
    binding the counters used to hold the lock for the whole read). Counters of the running version keep
    their state."""
    path = tmp_path / "v.sqlite"
    first = engine(SqliteStore(path), None, None)
    decide_all(first, events(200, 4))
    first.close()

    held_during_reads: list[bool] = []
    running: Engine | None = None

    class Watched(SqliteStore):
        def counter_keys(self, cid: str) -> Any:
            if running is not None:
                held_during_reads.append(running._lock.locked())
            return super().counter_keys(cid)

    running = engine(Watched(path), None, None)
    before = running.counters.peekers[0]("u1", T0 + 100)  # type: ignore[index]
    # One more counter (a new definition) and the same ones: only the new one reads its keys.
    extra = "\ndefine logins = count of \"login\" by user in the last 1 hour\n" \
            "rule \"Many logins\" when event is \"login\" and logins > 50 then flag\n"
    running.activate(load_ruleset("r.vigil", files={"r.vigil": RULES + extra}))
    assert held_during_reads == [False]
    assert running.counters.peekers[0]("u1", T0 + 100) == before  # type: ignore[index]
    running.close()
