"""Stores from settings: one function every front door calls, so they all agree on what a URL means.

    vigil-data/vigil.sqlite, sqlite:///path   the embedded SQLite store (the default)
    postgresql://user:pw@host/db              PostgreSQL (psycopg 3, a connection pool)
    memory:                                   in process only (tests, dry runs)
    redis://host:port/db  (as store.redis)    counters and labels in Redis, shared by every worker;
                                              the store above keeps dead letters, rules versions, tokens
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vigil.settings import DEFAULT_STORE, Settings, reveal, store_scheme
from vigil.stores.base import CounterBackend, DeadLetterLimits, LabelBackend


def open_store(url: str, *, dead_letters: DeadLetterLimits | None = None) -> Any:
    """The durable store a URL names (see the module docstring), keeping dead letters within `dead_letters`;
    ValueError for a scheme Vigil does not know, so that no URL ever becomes a SQLite file named after it."""
    scheme = store_scheme(url)
    if scheme == "postgresql":
        from vigil.stores.postgres import PostgresStore

        return PostgresStore(url, dead_letters=dead_letters)
    if scheme == "memory":
        from vigil.stores.memory import MemoryStore

        return MemoryStore(dead_letters=dead_letters)
    if scheme != "sqlite":
        raise ValueError("a Redis URL names shared counters and labels (store.redis, VIGIL_REDIS), "
                         "not the durable store")
    from vigil.stores.sqlite import open_store as open_sqlite

    return open_sqlite(url, dead_letters=dead_letters)


@dataclass(slots=True)
class Backends:
    """What an engine is built on (vigil.runtime.build_engine): the store, and Redis counters and labels."""

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


def open_backends(settings: Settings, default_store: str = DEFAULT_STORE) -> Backends:
    """The store of `store.url` (else `default_store`) within the settings' dead-letter limits, and Redis
    counters and labels with `store.redis`."""
    store = open_store(settings.store_url(default_store), dead_letters=settings.dead_letters.limits())
    redis_url = reveal(settings.store.redis)
    if redis_url is None:
        return Backends(store)
    from vigil.stores.redis_counters import RedisCounters
    from vigil.stores.redis_labels import RedisLabels

    try:
        client = redis_client(redis_url)
    except BaseException:
        store.close()
        raise
    prefix = settings.store.prefix
    return Backends(store, RedisCounters(client, prefix), RedisLabels(client, prefix), client)
