"""The outbox behind every sink: written with the decision's label changes, delivered at least once,
nothing lost when the process stops between deciding and delivering (JSONL sink, SQLite store)."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from vigil.dsl.loader import load_ruleset
from vigil.effects import DeadLetter, Decision
from vigil.engine import Engine
from vigil.events import parse_event
from vigil.sinks import Outputs, build
from vigil.stores.memory import MemoryStore
from vigil.stores.sqlite import SqliteStore

from .conftest import RULES, T0, Clock, scam_posts


def _outputs(store: Any, path: Path, clock: Clock, **extra: Any) -> Outputs:
    sinks = {"file": {"kind": "jsonl", "path": str(path), **extra}}
    return build(sinks, {"redact": "file", "review": "file"}, store, clock=clock)


def _engine(store: Any, outputs: Outputs) -> Engine:
    return Engine(load_ruleset("r.vigil", files={"r.vigil": RULES}), store, outbox=outputs.router)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def _drain(outputs: Outputs, name: str = "file") -> None:
    while outputs.dispatcher.run_once(name):
        pass


def test_an_output_reaches_the_file_with_its_subject_parameters_and_key(tmp_path: Path, clock: Clock) -> None:
    store = SqliteStore(tmp_path / "state.sqlite")
    outputs = _outputs(store, tmp_path / "out.jsonl", clock)
    engine = _engine(store, outputs)
    decision = engine.decide(dataclasses.replace(parse_event(scam_posts(1)[0]), source="api"))
    effect = next(e for e in decision.to_json()["effects"] if e["kind"] == "output")
    assert effect == {"kind": "output", "name": "redact", "subject": {"entity": "user", "key": "u0"},
                      "params": {"reason": "scam", "post": "p0", "posts": 1}}
    _drain(outputs)
    [line] = _lines(tmp_path / "out.jsonl")
    message = line["message"]
    assert line["key"] == message["key"] and len(message["key"]) == 64
    assert message["output"] == "redact" and message["rule"] == "Scam link"
    assert message["subject"] == {"entity": "user", "key": "u0"}
    assert message["params"] == {"reason": "scam", "post": "p0", "posts": 1}
    assert message["event"] == {"source": "api", "id": "p0", "type": "post", "time": T0}
    assert outputs.stats()["file"].delivered == 1
    engine.close()


def test_messages_written_before_a_stop_are_delivered_after_it(tmp_path: Path, clock: Clock) -> None:
    # The process decides and stops before its dispatcher ran: the outbox in the store keeps the messages.
    store = SqliteStore(tmp_path / "state.sqlite")
    engine = _engine(store, _outputs(store, tmp_path / "out.jsonl", clock))
    for raw in scam_posts(30):
        engine.process(raw)
    engine.close()
    assert not (tmp_path / "out.jsonl").exists()
    reopened = SqliteStore(tmp_path / "state.sqlite")
    assert reopened.outbox_status()["file"].pending == 30
    outputs = _outputs(reopened, tmp_path / "out.jsonl", clock)
    _drain(outputs)
    posts = sorted(line["message"]["event"]["id"] for line in _lines(tmp_path / "out.jsonl"))
    assert posts == sorted(f"p{i}" for i in range(30))
    assert reopened.outbox_status().get("file") is None or reopened.outbox_status()["file"].pending == 0
    reopened.close()


def test_labels_and_messages_of_an_event_are_stored_together_or_not_at_all(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "state.sqlite"
    store = SqliteStore(path)
    engine = _engine(store, _outputs(store, tmp_path / "out.jsonl", clock))
    with sqlite3.connect(path) as other:  # the outbox refuses this event's message
        other.execute("CREATE TRIGGER refuse BEFORE INSERT ON outbox WHEN CAST(NEW.body AS TEXT) LIKE '%\"p0\"%'"
                      " BEGIN SELECT RAISE(ABORT, 'refused'); END")
    result = engine.process(scam_posts(1)[0])
    assert isinstance(result, DeadLetter) and "refused" in result.reason
    # The label change was in the same transaction: it is not stored either, so deciding the event
    # again (the dead letter replayed) does everything once.
    assert store.label_history("user", "u0") == []
    assert not engine.labels.has("user", "u0", "scammer", T0 + 10)
    engine.close()


def test_an_event_decided_twice_sends_its_messages_once(tmp_path: Path, clock: Clock) -> None:
    store = SqliteStore(tmp_path / "state.sqlite")
    outputs = _outputs(store, tmp_path / "out.jsonl", clock)
    engine = _engine(store, outputs)
    raw = scam_posts(1)[0]
    engine.process(raw)
    _drain(outputs)
    engine.process(raw)  # a replay, a redelivery: the same key, already delivered
    _drain(outputs)
    assert len(_lines(tmp_path / "out.jsonl")) == 1
    engine.close()


def test_decisions_are_published_all_or_hits_only(clock: Clock, tmp_path: Path) -> None:
    store = MemoryStore()
    sinks = {"every": {"kind": "jsonl", "path": str(tmp_path / "all.jsonl"), "decisions": "all"},
             "hits": {"kind": "jsonl", "path": str(tmp_path / "hits.jsonl"), "decisions": "hits"}}
    outputs = build(sinks, {}, store, clock=clock)
    engine = _engine(store, outputs)
    quiet = orjson.dumps({"type": "post", "id": "q1", "time": T0, "actor": {"id": "u9"}, "text": "hello"})
    engine.process(quiet)
    engine.process(scam_posts(1)[0])
    _drain(outputs, "every")
    _drain(outputs, "hits")
    every = [line["message"]["decision"] for line in _lines(tmp_path / "all.jsonl")]
    hits = [line["message"]["decision"] for line in _lines(tmp_path / "hits.jsonl")]
    assert [(d["event_id"], d["verdict"]) for d in every] == [("q1", "allow"), ("p0", "block")]
    assert [(d["event_id"], d["verdict"]) for d in hits] == [("p0", "block")]
    assert hits[0]["effects"] == every[1]["effects"]  # the decision as the engine returned it


def test_an_output_no_route_names_stays_in_the_decision(clock: Clock, tmp_path: Path) -> None:
    store = MemoryStore()
    outputs = build({"file": {"kind": "jsonl", "path": str(tmp_path / "o.jsonl")}}, {"redact": "file"}, store,
                    clock=clock)
    engine = _engine(store, outputs)
    report = orjson.dumps({"type": "report", "id": "r1", "time": T0, "actor": {"id": "u1"}})
    decision = engine.process(report)
    assert isinstance(decision, Decision) and decision.to_json()["effects"] == [{"kind": "output", "name": "review"}]
    assert store.outbox_status() == {}
    catch_all = build({"file": {"kind": "jsonl", "path": str(tmp_path / "o.jsonl")}}, {"*": "file"}, store,
                      clock=clock)
    _engine(store, catch_all).process(report)
    assert store.outbox_status()["file"].pending == 1


def test_without_sinks_the_engine_writes_no_outbox(tmp_path: Path) -> None:
    outputs = build(None, None, MemoryStore())
    assert outputs.router is None


@pytest.mark.parametrize("make", [MemoryStore, "sqlite"])
def test_a_failing_sink_retries_with_backoff_then_gives_up(make: Any, tmp_path: Path, clock: Clock) -> None:
    store = SqliteStore(tmp_path / "s.sqlite") if make == "sqlite" else make()
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    # A path under a regular file can never be written: every attempt fails.
    outputs = _outputs(store, blocked / "out.jsonl", clock, max_attempts=3, backoff=10.0)
    engine = _engine(store, outputs)
    engine.process(scam_posts(1)[0])
    assert outputs.dispatcher.run_once("file") == 1
    assert outputs.dispatcher.run_once("file") == 0  # not due before its back-off
    clock.advance(4.0)
    assert outputs.dispatcher.run_once("file") == 0  # at least half the back-off (jitter)
    clock.advance(6.0)
    assert outputs.dispatcher.run_once("file") == 1  # second attempt
    clock.advance(20.0)
    assert outputs.dispatcher.run_once("file") == 1  # third: the last
    clock.advance(1000.0)
    assert outputs.dispatcher.run_once("file") == 0
    [dead] = store.outbox_dead("file")
    assert dead.attempts == 3 and "cannot append" in dead.last_error
    stats = outputs.stats()["file"]
    assert (stats.delivered, stats.retried, stats.failed, stats.dead, stats.pending) == (0, 2, 1, 1, 0)
    # Fixed, and sent again on request.
    fixed = _outputs(store, tmp_path / "out.jsonl", clock)
    assert store.requeue_outbox("file", clock()) == 1
    _drain(fixed)
    assert len(_lines(tmp_path / "out.jsonl")) == 1
    engine.close()


def test_lag_is_the_age_of_the_oldest_waiting_message(clock: Clock, tmp_path: Path) -> None:
    store = MemoryStore()
    outputs = _outputs(store, tmp_path / "out.jsonl", clock)
    engine = _engine(store, outputs)
    engine.process(scam_posts(1)[0])
    clock.advance(42.0)
    engine.process(scam_posts(1, start=1)[0])
    stats = outputs.stats()["file"]
    assert (stats.pending, stats.lag) == (2, 42.0)
    _drain(outputs)
    assert outputs.stats()["file"].lag == 0.0


def test_metrics_per_sink(clock: Clock, tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from vigil.service.metrics import SinksCollector

    store = MemoryStore()
    outputs = _outputs(store, tmp_path / "out.jsonl", clock)
    engine = _engine(store, outputs)
    for raw in scam_posts(3):
        engine.process(raw)
    outputs.dispatcher.run_once("file")
    engine.process(scam_posts(1, start=3)[0])
    clock.advance(7.0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SinksCollector(outputs.stats))
    text = generate_latest(registry).decode()
    assert 'vigil_sink_delivered_total{sink="file"} 3.0' in text
    assert 'vigil_sink_pending{sink="file"} 1.0' in text
    assert 'vigil_sink_lag_seconds{sink="file"} 7.0' in text
    assert 'vigil_sink_failed_total{sink="file"} 0.0' in text


def test_close_delivers_what_is_due_first(tmp_path: Path) -> None:
    import time

    store = SqliteStore(tmp_path / "s.sqlite")
    outputs = _outputs(store, tmp_path / "out.jsonl", Clock(time.time()), poll=60.0)
    engine = _engine(store, outputs)
    outputs.start()
    for raw in scam_posts(25):
        engine.process(raw)
    outputs.close()  # the threads sleep for a minute between looks; closing looks once more
    assert len(_lines(tmp_path / "out.jsonl")) == 25
    engine.close()
