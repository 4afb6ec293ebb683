"""A feature's own tables in the state store's database (people, sessions, the audit log): SQLite on its
own connection to the store's file (WAL lets it write beside the store's connection), PostgreSQL through
the store's connection pool, or a private in-memory SQLite database beside an in-memory store. The SQL is
written once with `?` placeholders and handed to psycopg with `%s`; each feature versions its own
migrations in a table of its own, so that it never renumbers the store's.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx:
    """One transaction: `execute` with `?` placeholders, whatever the database."""

    def __init__(self, conn: Any, postgres: bool) -> None:
        self.conn = conn
        self.postgres = postgres

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        if self.postgres:
            cursor: Cursor = self.conn.execute(sql.replace("?", "%s"), tuple(params))
            return cursor
        result: Cursor = self.conn.execute(sql, tuple(params))
        return result

    def lock(self, lock_id: int) -> None:
        """Serialise this transaction with every other taking `lock_id` (PostgreSQL: an advisory lock
        held to the end of the transaction; SQLite's BEGIN IMMEDIATE already admits one writer)."""
        if self.postgres:
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id,))


def _statements(script: str) -> list[str]:
    """The statements of a SQLite script, each whole (a trigger's body holds semicolons of its own)."""
    found, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending)
            pending = ""
    return found


class Tables:
    """The connection to one feature's tables. `migrations` per dialect ("sqlite", "postgres") are applied
    in order; `version_table` (a trusted identifier) holds how many ran."""

    def __init__(self, migrations: dict[str, list[str]], version_table: str, lock_id: int, *,
                 sqlite_path: str | None = None, pool: Any = None) -> None:
        self._lock = threading.Lock()
        self._pool = pool
        self._conn: sqlite3.Connection | None = None
        self.postgres = pool is not None
        if pool is not None:
            from vigil.stores.postgres import run_migrations

            with pool.connection() as conn:
                run_migrations(conn, migrations["postgres"], version_table, lock_id)
            return
        self._conn = sqlite3.connect(sqlite_path or ":memory:", check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout=10000")
        if sqlite_path not in (None, ":memory:"):
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._migrate_sqlite(migrations["sqlite"], version_table)

    @classmethod
    def over(cls, store: Any, migrations: dict[str, list[str]], version_table: str, lock_id: int) -> Tables:
        """The tables in the database of the state store `store`: its PostgreSQL pool, its SQLite file, or
        (an in-memory store) a private in-memory database that lives as long as this object."""
        pool = getattr(store, "pool", None)
        if pool is not None:
            return cls(migrations, version_table, lock_id, pool=pool)
        path = getattr(store, "path", None)
        return cls(migrations, version_table, lock_id, sqlite_path=None if path is None else str(path))

    def _migrate_sqlite(self, migrations: list[str], version_table: str) -> None:
        assert self._conn is not None  # set by __init__ before this runs
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {version_table} (version INTEGER NOT NULL)")
            row = conn.execute(f"SELECT version FROM {version_table}").fetchone()
            if row is None:
                conn.execute(f"INSERT INTO {version_table} VALUES (0)")
            version = int(row[0]) if row is not None else 0
            for index in range(version, len(migrations)):
                for statement in _statements(migrations[index]):
                    conn.execute(statement)
                conn.execute(f"UPDATE {version_table} SET version = ?", (index + 1,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def tx(self) -> Iterator[Tx]:
        """A write transaction: SQLite's BEGIN IMMEDIATE (one writer at a time, across processes too), or
        a PostgreSQL one."""
        if self._pool is not None:
            with self._pool.connection() as conn, conn.transaction():
                yield Tx(conn, True)
            return
        with self._lock:
            if self._conn is None:
                raise RuntimeError("these tables are closed")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(self._conn, False)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
