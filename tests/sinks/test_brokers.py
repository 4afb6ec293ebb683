"""The Redis stream and Kafka topic sinks against real servers on loopback: a Redis server
(tests/backends/servers.py) and the Tansu broker the Kafka worker tests use."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from backends.servers import Server, free_port, kafka_broker

from vigil.dsl.loader import load_ruleset
from vigil.engine import Engine
from vigil.sinks import Outputs, build
from vigil.stores.sqlite import SqliteStore

from .conftest import RULES, Clock, scam_posts


def _engine(tmp_path: Path, sinks: dict[str, Any], clock: Clock) -> tuple[Engine, Outputs]:
    store = SqliteStore(tmp_path / "state.sqlite")
    outputs = build(sinks, {"redact": list(sinks)}, store, clock=clock)
    return Engine(load_ruleset("r.vigil", files={"r.vigil": RULES}), store, outbox=outputs.router), outputs


def test_redis_stream_gets_each_message_with_its_key_capped_in_length(redis_url: str, tmp_path: Path,
                                                                      clock: Clock) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete("vigil:outputs")
    sinks = {"stream": {"kind": "redis_stream", "url": redis_url, "stream": "vigil:outputs", "maxlen": 1000}}
    engine, outputs = _engine(tmp_path, sinks, clock)
    for raw in scam_posts(30):
        engine.process(raw)
    while outputs.dispatcher.run_once("stream"):
        pass
    entries = client.xrange("vigil:outputs")
    messages = [orjson.loads(fields[b"message"]) for _id, fields in entries]
    assert [m["params"]["post"] for m in messages] == [f"p{i}" for i in range(30)]
    assert all(fields[b"key"].decode() == orjson.loads(fields[b"message"])["key"] for _id, fields in entries)
    assert outputs.stats()["stream"].delivered == 30
    outputs.close()
    engine.close()
    client.close()


def test_redis_stream_bounded_by_maxlen(redis_url: str, tmp_path: Path, clock: Clock) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete("capped")
    sinks = {"stream": {"kind": "redis_stream", "url": redis_url, "stream": "capped", "maxlen": 10}}
    engine, outputs = _engine(tmp_path, sinks, clock)
    for raw in scam_posts(500):
        engine.process(raw)
    while outputs.dispatcher.run_once("stream"):
        pass
    # MAXLEN ~ trims whole nodes (100 entries by default): near the cap, never the whole history.
    assert 10 <= client.xlen("capped") <= 200
    outputs.close()
    engine.close()
    client.close()


def test_a_redis_server_that_is_away_is_retried(tmp_path: Path, clock: Clock) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    engine, outputs = _engine(tmp_path, {"stream": {"kind": "redis_stream", "url": url, "stream": "s",
                                                    "timeout": 2.0}}, clock)
    engine.process(scam_posts(1)[0])
    assert outputs.dispatcher.run_once("stream") == 1
    stats = outputs.stats()["stream"]
    assert (stats.delivered, stats.retried, stats.pending) == (0, 1, 1)
    assert "XADD s: ConnectionError" in outputs.dispatcher.store.claim_outbox("stream", clock() + 1e6, 1, 1)[0].last_error
    outputs.close()
    engine.close()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with kafka_broker(Path(tmp_path_factory.mktemp("tansu")), ["vigil-outputs"], partitions=1) as server:
        yield server


def test_kafka_topic_gets_each_message_keyed_by_its_idempotency_key(broker: Server, tmp_path: Path,
                                                                    clock: Clock) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    sinks = {"topic": {"kind": "kafka", "bootstrap": broker.url, "topic": "vigil-outputs", "timeout": 30.0}}
    engine, outputs = _engine(tmp_path, sinks, clock)
    for raw in scam_posts(20):
        engine.process(raw)
    while outputs.dispatcher.run_once("topic"):
        pass
    assert outputs.stats()["topic"].delivered == 20
    outputs.close()
    engine.close()
    consumer = Consumer({"bootstrap.servers": broker.url, "group.id": "check", "enable.auto.commit": False})
    consumer.assign([TopicPartition("vigil-outputs", 0, OFFSET_BEGINNING)])
    got: list[Any] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < 20 and time.monotonic() < deadline:
            got += [m for m in consumer.consume(100, 1.0) if m.error() is None]
    finally:
        consumer.close()
    messages = [orjson.loads(m.value()) for m in got]
    assert sorted(m["params"]["post"] for m in messages) == sorted(f"p{i}" for i in range(20))
    assert all(m.key().decode() == orjson.loads(m.value())["key"] for m in got)
    assert all(dict(m.headers())["idempotency-key"] == m.key() for m in got)


def test_with_labels_in_redis_the_messages_follow_in_the_store(redis_url: str, tmp_path: Path,
                                                                clock: Clock) -> None:
    import redis

    from vigil.stores.redis_labels import RedisLabels

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    store = SqliteStore(tmp_path / "state.sqlite")
    outputs = build({"file": {"kind": "jsonl", "path": str(tmp_path / "o.jsonl")}}, {"redact": "file"}, store,
                    clock=clock)
    engine = Engine(load_ruleset("r.vigil", files={"r.vigil": RULES}), store, labels=RedisLabels(client),
                    outbox=outputs.router)
    raw = scam_posts(1)[0]
    engine.process(raw)
    engine.process(raw)  # redelivered: Redis applies its label once, the outbox takes its message once
    assert store.outbox_status()["file"].pending == 1
    assert engine.labels.has("user", "u0", "scammer", clock() + 10)
    while outputs.dispatcher.run_once("file"):
        pass
    [line] = (tmp_path / "o.jsonl").read_bytes().splitlines()
    assert orjson.loads(line)["message"]["subject"] == {"entity": "user", "key": "u0"}
    engine.close()
    client.close()
