"""Redis Streams: a consumer group shared by every worker, on one machine or several.

New entries are read with XREADGROUP. Every `claim_idle / 2` seconds a worker looks at the group's
pending entries idle for `claim_idle` seconds or more (their worker died, or failed on them): those
delivered `max_attempts` times go to the dead-letter stream, the others are claimed (XCLAIM) and
processed again. Entries are acknowledged (XACK) only after their decisions are written.

An event is an entry's `event` field (JSON); decisions go to the hash `{prefix}:decisions:{source}` (one
per source, since ids are unique per source only: event id → decision JSON, so a redelivered event's
decision replaces the first) and, with `--output`, to a stream.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from vigil.effects import Decision
from vigil.workers.loop import Message

OUTPUT_MAXLEN = 1_000_000


def split_stream_url(url: str) -> tuple[str, str]:
    """`redis://host:port/db/stream` → (`redis://host:port/db`, `stream`).

    >>> split_stream_url("redis://127.0.0.1:6379/0/events")
    ('redis://127.0.0.1:6379/0', 'events')
    """
    parts = urlsplit(url)
    path, _, stream = parts.path.rpartition("/")
    if not stream:
        raise ValueError(f"no stream name in {url!r}: write redis://host:port/db/STREAM")
    return urlunsplit(parts._replace(path=path or "/0")), stream


class RedisStreamSource:
    retry_in_place = False

    def __init__(self, client: Any, stream: str, group: str, consumer: str, *, dead_stream: str | None = None,
                 claim_idle: float = 30.0, max_attempts: int = 5, batch: int = 100) -> None:
        self.client, self.stream, self.group, self.consumer = client, stream, group, consumer
        self.name = f"redis:{stream}"
        self.dead_stream = dead_stream or f"{stream}:dead"
        self.claim_idle_ms = int(claim_idle * 1000)
        self.max_attempts = max_attempts
        self.batch = batch
        self._next_claim = 0.0
        self.claimed = 0
        try:
            client.xgroup_create(stream, group, id="0", mkstream=True)
        except Exception as error:  # the group exists already: join it
            if "BUSYGROUP" not in str(error):
                raise

    @staticmethod
    def _message(entry_id: bytes, fields: dict[bytes, bytes], attempts: int) -> Message:
        raw = fields.get(b"event")
        if raw is None:
            raw = next(iter(fields.values()), b"")
        return Message(entry_id.decode(), raw, attempts)

    def fetch(self, timeout: float) -> list[Message]:
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + self.claim_idle_ms / 2000
            claimed = self.claim()
            if claimed:
                return claimed
        reply = self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=self.batch,
                                       block=max(1, int(timeout * 1000)))
        if not reply:
            return []
        return [self._message(entry_id, fields, 1) for entry_id, fields in reply[0][1] if fields is not None]

    def claim(self) -> list[Message]:
        """Take over entries pending too long; dead-letter those delivered `max_attempts` times."""
        pending = self.client.xpending_range(self.stream, self.group, "-", "+", self.batch, idle=self.claim_idle_ms)
        if not pending:
            return []
        attempts = {p["message_id"]: int(p["times_delivered"]) for p in pending}
        spent = [mid for mid, n in attempts.items() if n >= self.max_attempts]
        for mid in spent:
            entries = self.client.xrange(self.stream, mid, mid)
            raw = self._message(mid, entries[0][1], attempts[mid]).raw if entries else b""
            self.dead(Message(mid.decode(), raw, attempts[mid]), f"delivered {attempts[mid]} times without success")
        retry = [mid for mid, n in attempts.items() if n < self.max_attempts]
        if not retry:
            return []
        claimed = self.client.xclaim(self.stream, self.group, self.consumer, self.claim_idle_ms, retry)
        self.claimed += len(claimed)
        return [self._message(entry_id, fields, attempts[entry_id] + 1) for entry_id, fields in claimed
                if fields is not None]

    def done(self, messages: list[Message]) -> None:
        if messages:
            self.client.xack(self.stream, self.group, *[m.id for m in messages])

    def dead(self, message: Message, reason: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.dead_stream, {"event": message.raw, "reason": reason, "id": message.id,
                                     "attempts": message.attempts, "consumer": self.consumer})
        pipe.xack(self.stream, self.group, message.id)
        pipe.execute()

    def close(self) -> None:
        """The client belongs to the caller."""


class RedisDecisionTable:
    """Decisions upserted into a hash per source, `{key}:{source}`, event id → decision JSON: one per
    event, however often decided (`key` alone for a decision without a source)."""

    def __init__(self, client: Any, key: str) -> None:
        self.client, self.key = client, key

    def hash_for(self, source: str) -> str:
        return f"{self.key}:{source}" if source else self.key

    def write(self, decisions: list[Decision]) -> None:
        by_hash: dict[str, dict[str, bytes]] = {}
        for d in decisions:
            by_hash.setdefault(self.hash_for(d.source), {})[d.event_id] = orjson.dumps(d.to_json())
        for key, mapping in by_hash.items():
            self.client.hset(key, mapping=mapping)


class RedisOutputStream:
    """Decisions appended to a stream (at least once: a consumer dedupes by `source` and `event_id`)."""

    def __init__(self, client: Any, stream: str, maxlen: int = OUTPUT_MAXLEN) -> None:
        self.client, self.stream, self.maxlen = client, stream, maxlen

    def write(self, decisions: list[Decision]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for d in decisions:
            pipe.xadd(self.stream, {"event_id": d.event_id, "source": d.source, "verdict": d.verdict,
                                    "decision": orjson.dumps(d.to_json())}, maxlen=self.maxlen, approximate=True)
        pipe.execute()
