"""The record from the settings: which store it is written to, and the engine hook that writes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vigil.record.base import Record
from vigil.record.settings import RecordSettings, record_settings
from vigil.record.writer import Recorder

RECORD_FILE = "record.sqlite"


def record_url(settings: RecordSettings, store_url: str | None) -> str | None:
    """Where the record goes: `record.url`, else beside a durable state store (None: nowhere, for a
    state store in memory unless `record.enabled` is set, which then keeps it in memory)."""
    if settings.enabled is False:
        return None
    if settings.url is not None:
        return settings.url.get_secret_value()
    store = store_url or "memory:"
    if store.startswith(("postgresql://", "postgres://")):
        return store
    if store in ("memory", "memory:"):
        return "memory:" if settings.enabled else None
    path = store.removeprefix("sqlite:///").removeprefix("sqlite://")
    return str(Path(path).parent / RECORD_FILE)


def open_record(url: str) -> Record:
    """The record store a URL names: postgresql://…, memory: (tests), or a SQLite path / sqlite:/// URL."""
    if url.startswith(("postgresql://", "postgres://")):
        from vigil.record.postgres import PostgresRecord

        record: Record = PostgresRecord(url)
        return record
    from vigil.record.sqlite import SqliteRecord

    if url in ("memory", "memory:"):
        return SqliteRecord(":memory:")
    return SqliteRecord(url.removeprefix("sqlite:///").removeprefix("sqlite://"))


def attach_record(engine: Any, raw: dict[str, Any] | None, store_url: str | None, *,
                  durable: bool = False) -> Recorder | None:
    """Hook the record the `record` settings describe into `engine` (the engine closes it); None when
    there is none. `durable` is the front door's default for `record.durable`."""
    settings = record_settings(raw)
    url = record_url(settings, store_url)
    if url is None:
        return None
    recorder = Recorder(open_record(url), settings, lambda: engine.ruleset,
                        durable=settings.durable if settings.durable is not None else durable)
    engine.recorder = recorder
    return recorder


def store_location(store: Any) -> str | None:
    """The URL or path of an opened state store (where the record goes by default); None in memory."""
    path = getattr(store, "path", None)
    if path is not None and str(path) != ":memory:":
        return str(path)
    pool = getattr(store, "pool", None)
    conninfo = getattr(pool, "conninfo", None)
    return str(conninfo) if conninfo else None
