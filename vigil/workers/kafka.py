"""Kafka (any Kafka-protocol broker): a consumer group with offsets committed after processing.

confluent-kafka's consumer with auto-commit off: a batch is decided, its decisions produced (and
flushed) to the output topic keyed by source and event id, then the batch's offsets are committed synchronously.
Kafka keeps no delivery count, so a failing message is retried in place, with backoff, and after
`max_attempts` goes to the dead-letter topic; a rebalance or a crash before the commit redelivers the
batch to another member of the group, whose effects are idempotent by event id.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from vigil.effects import Decision
from vigil.events import event_key
from vigil.workers.loop import Message

# librdkafka's own log lines (a connection refused, every few milliseconds, per client) go to this logger,
# not to stderr: a worker says once that the broker cannot be reached, and `--log-level debug` shows them.
librdkafka_log = logging.getLogger("vigil.workers.librdkafka")
CONNECT_TIMEOUT = 10.0  # seconds a worker waits for the broker at start-up before it gives up


class BrokerUnreachable(Exception):
    """The broker a worker was given does not answer: one line saying what to do."""


def consumer_config(bootstrap: str, group: str, **extra: Any) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "session.timeout.ms": 10_000, "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 300_000, "logger": librdkafka_log, **extra}


def check_reachable(client: Any, bootstrap: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise BrokerUnreachable unless the broker answers a metadata request within `timeout`."""
    from confluent_kafka import KafkaException

    try:
        client.list_topics(timeout=timeout)
    except KafkaException as error:
        why = error.args[0].str() if error.args and hasattr(error.args[0], "str") else str(error)
        raise BrokerUnreachable(f"cannot reach the Kafka broker at {bootstrap} ({why}): start it, or give "
                                "--kafka the right HOST:PORT") from None


class KafkaSource:
    retry_in_place = True

    def __init__(self, bootstrap: str, topic: str, group: str, *, dead_topic: str | None = None, batch: int = 100,
                 config: dict[str, Any] | None = None) -> None:
        from confluent_kafka import Consumer, Producer

        self.topic, self.batch = topic, batch
        self.name = f"kafka:{topic}"
        self.dead_topic = dead_topic or f"{topic}.dead"
        self.consumer = Consumer(consumer_config(bootstrap, group, **(config or {})))
        try:
            check_reachable(self.consumer, bootstrap)
        except BrokerUnreachable:
            self.consumer.close()
            raise
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "linger.ms": 5,
                                  "logger": librdkafka_log})
        self.consumer.subscribe([topic])
        self.assigned = False

    def fetch(self, timeout: float) -> list[Message]:
        out = []
        for msg in self.consumer.consume(num_messages=self.batch, timeout=timeout):
            if msg.error() is not None:
                continue  # partition EOF and transient broker errors: librdkafka retries itself
            self.assigned = True
            out.append(Message(f"{msg.partition()}:{msg.offset()}", msg.value() or b"", 1, msg))
        return out

    def done(self, messages: list[Message]) -> None:
        if not messages:
            return
        from confluent_kafka import TopicPartition

        latest: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.handle.topic(), m.handle.partition())
            latest[key] = max(latest.get(key, -1), m.handle.offset())
        offsets = [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in latest.items()]
        for attempt in range(5):
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
                return
            except Exception:  # a rebalance in progress: the next owner may redeliver; idempotent anyway
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def dead(self, message: Message, reason: str) -> None:
        self.producer.produce(self.dead_topic, value=message.raw, key=message.id.encode(),
                              headers=[("reason", reason.encode())])
        self.producer.flush(30)
        if message.handle is not None:
            self.done([message])

    def close(self) -> None:
        self.producer.flush(30)
        self.consumer.close()  # leaves the group at once: its partitions go to the others


class KafkaOutput:
    """Decisions produced to a topic keyed by source and event id (Event.key: `SOURCE\\x1fID`), so
    compaction keeps one per event even when several input topics share the output."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "logger": librdkafka_log})

    def write(self, decisions: list[Decision]) -> None:
        for d in decisions:
            self.producer.produce(self.topic, key=event_key(d.source, d.event_id).encode(),
                                  value=orjson.dumps(d.to_json()))
            self.producer.poll(0)
        remaining = self.producer.flush(30)
        if remaining:
            raise RuntimeError(f"{remaining} decisions not delivered to {self.topic}")
