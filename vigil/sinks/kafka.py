"""A Kafka topic sink (any Kafka-protocol broker): each message produced keyed by its idempotency key,
which also goes in an `idempotency-key` header, and flushed; a message counts as delivered when the
broker acknowledged it (acks=all)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vigil.sinks.base import DELIVERED, Delivery, Outcome


class KafkaSink:
    def __init__(self, bootstrap: str, topic: str, *, timeout: float = 10.0,
                 config: dict[str, Any] | None = None) -> None:
        from confluent_kafka import Producer

        from vigil.workers.kafka import librdkafka_log

        self.topic = topic
        self.timeout = timeout
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                                   "enable.idempotence": False, "message.timeout.ms": int(timeout * 1000),
                                   "logger": librdkafka_log, **(config or {})})

    def deliver(self, messages: Sequence[Delivery]) -> list[Outcome]:
        from confluent_kafka import KafkaException

        errors: dict[int, str] = {}

        def report(index: int) -> Any:
            def on_delivery(error: Any, _message: Any) -> None:
                if error is not None:
                    errors[index] = f"produce to {self.topic}: {error.str() if hasattr(error, 'str') else error}"
            return on_delivery

        produced = 0
        for index, m in enumerate(messages):
            try:
                self._producer.produce(self.topic, value=m.body, key=m.key.encode(),
                                       headers=[("idempotency-key", m.key.encode())], on_delivery=report(index))
            except (BufferError, KafkaException) as error:
                errors[index] = f"produce to {self.topic}: {error}"
                break
            produced += 1
            self._producer.poll(0)
        remaining = self._producer.flush(self.timeout)
        outcomes: list[Outcome] = []
        for index in range(produced):
            if index in errors:
                outcomes.append(Outcome(False, errors[index]))
            elif remaining:
                outcomes.append(Outcome(False, f"produce to {self.topic}: not acknowledged within {self.timeout} s"))
            else:
                outcomes.append(DELIVERED)
        if produced < len(messages):
            outcomes.append(Outcome(False, errors.get(produced, "not produced")))
        return outcomes

    def close(self) -> None:
        self._producer.flush(self.timeout)
