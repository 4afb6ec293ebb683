"""A Redis stream sink: XADD of `key` (the idempotency key) and `message` (the JSON body) per message,
with the stream capped near `maxlen` entries (MAXLEN ~, trimmed a node at a time): a reader that is
away for a long time loses the oldest entries, never the server's memory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vigil.sinks.base import DELIVERED, Delivery, Outcome


class RedisStreamSink:
    def __init__(self, url: str, stream: str, *, maxlen: int = 1_000_000, timeout: float = 10.0) -> None:
        import redis

        self.stream = stream
        self.maxlen = maxlen
        self._client: Any = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)

    def deliver(self, messages: Sequence[Delivery]) -> list[Outcome]:
        import redis

        pipe = self._client.pipeline(transaction=False)
        for m in messages:
            pipe.xadd(self.stream, {"key": m.key, "message": m.body}, maxlen=self.maxlen, approximate=True)
        try:
            pipe.execute()
        except redis.RedisError as error:
            return [Outcome(False, f"XADD {self.stream}: {type(error).__name__}: {error}")]
        return [DELIVERED] * len(messages)

    def close(self) -> None:
        self._client.close()
