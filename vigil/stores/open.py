"""Stores from settings: one function every front door calls, so they all agree on what a URL means.

    vigil-data/vigil.sqlite, sqlite:///path   the embedded SQLite store (the default)
    postgresql://user:pw@host/db              PostgreSQL (psycopg 3, a connection pool)
    memory:                                   in process only (tests, dry runs)
    redis://host:port/db  (as settings.redis) counters and labels in Redis, shared by every worker;
                                              the store above keeps dead letters, rules versions, tokens
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vigil.config import Settings
from vigil.stores.base import CounterBackend, DeadLetterLimits, LabelBackend


def open_store(url: str, *, dead_letters: DeadLetterLimits | None = None) -> Any:
    """The durable store a URL names (see the module docstring), keeping dead letters within `dead_letters`."""
    if url.startswith(("postgresql://", "postgres://")):
        from vigil.stores.postgres import PostgresStore

        return PostgresStore(url, dead_letters=dead_letters)
    if url in ("memory", "memory:"):
        from vigil.stores.memory import MemoryStore

        return MemoryStore(dead_letters=dead_letters)
    if url.startswith(("redis://", "rediss://")):
        raise ValueError("a Redis URL names shared counters and labels (VIGIL_REDIS), not the durable store")
    from vigil.stores.sqlite import open_store as open_sqlite

    return open_sqlite(url, dead_letters=dead_letters)


@dataclass(slots=True)
class Backends:
    """What an Engine is built on: `Engine(rules, b.store, counters=b.counters, labels=b.labels)`."""

    store: Any
    counters: CounterBackend | None = None
    labels: LabelBackend | None = None
    redis: Any = None  # the redis.Redis client shared by counters and labels, when there is one

    def close(self) -> None:
        """Close what the engine does not: the Redis client (`Engine.close` closes the store)."""
        if self.redis is not None:
            self.redis.close()


def redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, health_check_interval=30, socket_keepalive=True)


def open_backends(settings: Settings, *, dead_letters: DeadLetterLimits | None = None) -> Backends:
    store = open_store(settings.store.value, dead_letters=dead_letters)
    if settings.redis is None:
        return Backends(store)
    from vigil.stores.redis_counters import RedisCounters
    from vigil.stores.redis_labels import RedisLabels

    client = redis_client(settings.redis.value)
    return Backends(store, RedisCounters(client, settings.redis_prefix), RedisLabels(client, settings.redis_prefix),
                    client)
