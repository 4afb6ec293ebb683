"""`BankStore` on SQLite (stdlib sqlite3, WAL). One store per database file; no module-level state.

The SQL is deliberately plain (no upserts, no JSON functions) so a PostgreSQL store can mirror it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from vigil.hashing.banks import (
    Bank,
    BankEntry,
    BankError,
    BankExists,
    BankNotFound,
    HashRows,
    NewEntry,
    bank_settings,
    check_settings,
    validate_entries,
)
from vigil.hashing.hashers import SignalType

SCHEMA = """
CREATE TABLE IF NOT EXISTS hash_banks (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    signal_type TEXT NOT NULL,
    max_distance INTEGER NOT NULL,
    min_quality INTEGER NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS hash_bank_entries (
    id INTEGER PRIMARY KEY,
    bank_id INTEGER NOT NULL REFERENCES hash_banks(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    added_at TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    removed INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS hash_bank_entries_by_hash ON hash_bank_entries (bank_id, hash);
CREATE INDEX IF NOT EXISTS hash_bank_entries_by_seq ON hash_bank_entries (bank_id, seq);
"""

_BANK_COLUMNS = "id, name, signal_type, max_distance, min_quality, enabled, created_at, seq"
_ENTRY_COLUMNS = "id, hash, source, tags, added_at, enabled"
# SQLite's default limit on bound parameters is 32766; stay well under it.
_CHUNK = 500


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SqliteBankStore:
    """Banks in one SQLite file. Safe to share between threads (one connection behind a lock)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=5000")
        with self._transaction() as cur:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (nothing half-written)."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    # --- banks --------------------------------------------------------------------------------------

    @staticmethod
    def _bank(row: tuple[object, ...]) -> Bank:
        id_, name, signal, max_distance, min_quality, enabled, created, seq = row
        return Bank(
            id=int(str(id_)),
            name=str(name),
            signal_type=SignalType(str(signal)),
            max_distance=int(str(max_distance)),
            min_quality=int(str(min_quality)),
            enabled=bool(enabled),
            created_at=datetime.fromisoformat(str(created)),
            seq=int(str(seq)),
        )

    def _get_bank(self, cur: sqlite3.Cursor, name: str) -> Bank:
        row = cur.execute(f"SELECT {_BANK_COLUMNS} FROM hash_banks WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise BankNotFound(f"no bank called {name!r}; create it first (vigil bank create {name} …)")
        return self._bank(row)

    def _bump(self, cur: sqlite3.Cursor, bank: Bank) -> int:
        seq = bank.seq + 1
        cur.execute("UPDATE hash_banks SET seq = ? WHERE id = ?", (seq, bank.id))
        return seq

    def create_bank(
        self,
        name: str,
        signal_type: SignalType,
        *,
        max_distance: int | None = None,
        min_quality: int | None = None,
    ) -> Bank:
        signal_type, distance, quality = bank_settings(name, signal_type, max_distance, min_quality)
        with self._transaction() as cur:
            if cur.execute("SELECT 1 FROM hash_banks WHERE name = ?", (name,)).fetchone():
                raise BankExists(f"a bank called {name!r} already exists")
            cur.execute(
                "INSERT INTO hash_banks (name, signal_type, max_distance, min_quality, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, signal_type.value, distance, quality, self._clock().isoformat()),
            )
            return self._get_bank(cur, name)

    def get_bank(self, name: str) -> Bank:
        with self._lock:
            return self._get_bank(self._conn.cursor(), name)

    def list_banks(self) -> list[Bank]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_BANK_COLUMNS} FROM hash_banks ORDER BY name").fetchall()
        return [self._bank(row) for row in rows]

    def count_entries(self, name: str) -> int:
        """Number of entries not removed (enabled or not) in a bank."""
        with self._lock:
            bank = self._get_bank(self._conn.cursor(), name)
            row = self._conn.execute(
                "SELECT COUNT(*) FROM hash_bank_entries WHERE bank_id = ? AND removed = 0", (bank.id,)
            ).fetchone()
        return int(row[0])

    def update_bank(
        self,
        name: str,
        *,
        enabled: bool | None = None,
        max_distance: int | None = None,
        min_quality: int | None = None,
    ) -> Bank:
        with self._transaction() as cur:
            bank = self._get_bank(cur, name)
            distance = bank.max_distance if max_distance is None else max_distance
            quality = bank.min_quality if min_quality is None else min_quality
            check_settings(bank.signal_type, distance, quality)
            on = bank.enabled if enabled is None else enabled
            cur.execute(
                "UPDATE hash_banks SET enabled = ?, max_distance = ?, min_quality = ?, seq = ? WHERE id = ?",
                (int(on), distance, quality, bank.seq + 1, bank.id),
            )
            return self._get_bank(cur, name)

    def delete_bank(self, name: str) -> None:
        with self._transaction() as cur:
            bank = self._get_bank(cur, name)
            cur.execute("DELETE FROM hash_bank_entries WHERE bank_id = ?", (bank.id,))
            cur.execute("DELETE FROM hash_banks WHERE id = ?", (bank.id,))

    # --- entries ------------------------------------------------------------------------------------

    def add_entries(self, bank: str, entries: Sequence[NewEntry]) -> list[int]:
        with self._transaction() as cur:
            found = self._get_bank(cur, bank)
            checked = validate_entries(found.signal_type, entries)
            seen: set[str] = set()
            for start in range(0, len(checked), _CHUNK):
                chunk = list({e.hash for e in checked[start : start + _CHUNK]})
                marks = ",".join("?" * len(chunk))
                rows = cur.execute(
                    f"SELECT hash FROM hash_bank_entries WHERE bank_id = ? AND removed = 0 AND hash IN ({marks})",
                    (found.id, *chunk),
                ).fetchall()
                seen.update(row[0] for row in rows)
            fresh: list[NewEntry] = []
            for entry in checked:
                if entry.hash not in seen:
                    seen.add(entry.hash)
                    fresh.append(entry)
            if not fresh:
                return []
            seq = self._bump(cur, found)
            now = self._clock().isoformat()
            first = cur.execute("SELECT COALESCE(MAX(id), 0) FROM hash_bank_entries").fetchone()[0] + 1
            cur.executemany(
                "INSERT INTO hash_bank_entries (id, bank_id, hash, source, tags, added_at, seq) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (first + i, found.id, e.hash, e.source, json.dumps(list(e.tags)), now, seq)
                    for i, e in enumerate(fresh)
                ),
            )
            return list(range(first, first + len(fresh)))

    def _update_entries(self, bank: str, entry_ids: Sequence[int], assignment: str, where: str) -> int:
        with self._transaction() as cur:
            found = self._get_bank(cur, bank)
            seq = found.seq + 1
            changed = 0
            for start in range(0, len(entry_ids), _CHUNK):
                chunk = [int(i) for i in entry_ids[start : start + _CHUNK]]
                marks = ",".join("?" * len(chunk))
                changed += cur.execute(
                    f"UPDATE hash_bank_entries SET {assignment}, seq = ? "
                    f"WHERE bank_id = ? AND removed = 0 AND {where} AND id IN ({marks})",
                    (seq, found.id, *chunk),
                ).rowcount
            if changed:
                self._bump(cur, found)
            return changed

    def remove_entries(self, bank: str, entry_ids: Sequence[int]) -> int:
        return self._update_entries(bank, entry_ids, "removed = 1", "1 = 1")

    def set_entries_enabled(self, bank: str, entry_ids: Sequence[int], enabled: bool) -> int:
        flag = int(enabled)
        return self._update_entries(bank, entry_ids, f"enabled = {flag}", f"enabled != {flag}")

    def _entry(self, bank: str, row: tuple[object, ...]) -> BankEntry:
        id_, digest, source, tags, added, enabled = row
        return BankEntry(
            id=int(str(id_)),
            bank=bank,
            hash=str(digest),
            source=str(source),
            tags=tuple(json.loads(str(tags))),
            added_at=datetime.fromisoformat(str(added)),
            enabled=bool(enabled),
        )

    def get_entries(self, bank: str, entry_ids: Sequence[int]) -> list[BankEntry]:
        with self._lock:
            found = self._get_bank(self._conn.cursor(), bank)
            result: list[BankEntry] = []
            for start in range(0, len(entry_ids), _CHUNK):
                chunk = [int(i) for i in entry_ids[start : start + _CHUNK]]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT {_ENTRY_COLUMNS} FROM hash_bank_entries "
                    f"WHERE bank_id = ? AND removed = 0 AND id IN ({marks})",
                    (found.id, *chunk),
                ).fetchall()
                result.extend(self._entry(bank, row) for row in rows)
        return sorted(result, key=lambda e: e.id)

    def iter_entries(self, bank: str, *, include_disabled: bool = False) -> Iterator[BankEntry]:
        after = 0
        while True:
            with self._lock:
                found = self._get_bank(self._conn.cursor(), bank)
                rows = self._conn.execute(
                    f"SELECT {_ENTRY_COLUMNS} FROM hash_bank_entries WHERE bank_id = ? AND removed = 0 "
                    "AND id > ? AND (enabled = 1 OR ?) ORDER BY id LIMIT 1000",
                    (found.id, after, int(include_disabled)),
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield self._entry(bank, row)
            after = int(rows[-1][0])

    def hash_rows(
        self, bank: str, since_seq: int, until_seq: int, batch_size: int = 100_000
    ) -> Iterator[HashRows]:
        after = 0
        while True:
            # Page by id without holding the lock between pages; the seq window keeps pages consistent.
            with self._lock:
                found = self._get_bank(self._conn.cursor(), bank)
                rows = self._conn.execute(
                    "SELECT id, hash, enabled = 1 AND removed = 0 FROM hash_bank_entries "
                    "WHERE bank_id = ? AND seq > ? AND seq <= ? AND id > ? ORDER BY id LIMIT ?",
                    (found.id, since_seq, until_seq, after, batch_size),
                ).fetchall()
            if not rows:
                return
            ids, hashes, active = zip(*rows, strict=True)
            yield HashRows(ids, hashes, tuple(bool(a) for a in active))
            after = int(ids[-1])


def open_store(path: str | Path) -> SqliteBankStore:
    """Open (creating if needed) the bank store at `path`."""
    try:
        return SqliteBankStore(path)
    except sqlite3.Error as exc:
        raise BankError(f"cannot open bank database {str(path)!r}: {exc}") from exc
