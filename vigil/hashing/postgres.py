"""`BankStore` on PostgreSQL (psycopg 3 with a connection pool), for banks shared by several processes.

It mirrors `SqliteBankStore` write for write: every write to a bank bumps its `seq` and stamps the
entries it touched, removed entries stay as tombstones, and `add_entries` is all or nothing. Writes to
one bank are serialised by locking the bank's row (`SELECT … FOR UPDATE`), so a matcher that reads
`Bank.seq` and then `hash_rows(…, until_seq=seq)` never misses a row committed under that seq.

The schema is versioned apart from the state store's: `bank_schema_version` holds the number of
`MIGRATIONS` applied, each under an advisory lock, so processes starting together migrate once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Self

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

MIGRATIONS: list[str] = [
    """
    CREATE TABLE hash_banks (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        signal_type TEXT NOT NULL,
        max_distance INTEGER NOT NULL,
        min_quality INTEGER NOT NULL,
        enabled BOOLEAN NOT NULL DEFAULT true,
        created_at TIMESTAMPTZ NOT NULL,
        seq BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE hash_bank_entries (
        id BIGSERIAL PRIMARY KEY,
        bank_id BIGINT NOT NULL REFERENCES hash_banks(id) ON DELETE CASCADE,
        hash TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT '',
        tags JSONB NOT NULL DEFAULT '[]',
        added_at TIMESTAMPTZ NOT NULL,
        enabled BOOLEAN NOT NULL DEFAULT true,
        removed BOOLEAN NOT NULL DEFAULT false,
        seq BIGINT NOT NULL
    );
    CREATE INDEX hash_bank_entries_by_hash ON hash_bank_entries (bank_id, hash);
    CREATE INDEX hash_bank_entries_by_seq ON hash_bank_entries (bank_id, seq);
    """,
]

_LOCK = 0x62616E6B  # advisory lock id for bank migrations ("bank"); the state store uses its own
_BANK_COLUMNS = "id, name, signal_type, max_distance, min_quality, enabled, created_at, seq"
_ENTRY_COLUMNS = "id, hash, source, tags, added_at, enabled"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def migrate(conn: Any) -> int:
    """Bring the bank schema to the latest version; returns it. Safe from several processes at once."""
    from vigil.stores.postgres import run_migrations

    return run_migrations(conn, MIGRATIONS, "bank_schema_version", _LOCK)


class PostgresBankStore:
    """Banks in a PostgreSQL database. Takes a URL (the store owns and closes its pool) or a
    `psycopg_pool.ConnectionPool` whose connections are in autocommit mode (the caller closes it)."""

    def __init__(
        self,
        url_or_pool: Any,
        *,
        clock: Callable[[], datetime] = _utcnow,
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = 30.0,
    ) -> None:
        self._clock = clock
        if isinstance(url_or_pool, str):
            import psycopg
            from psycopg_pool import ConnectionPool

            # Migrate on a connection of its own first: a bad URL fails now, not after the pool's timeout.
            with psycopg.connect(url_or_pool, autocommit=True, connect_timeout=int(timeout)) as conn:
                migrate(conn)
            self.pool = ConnectionPool(url_or_pool, min_size=min_size, max_size=max_size, open=True,
                                       timeout=timeout, kwargs={"autocommit": True})
            self._owns_pool = True
        else:
            self.pool = url_or_pool
            self._owns_pool = False
            with self.pool.connection() as conn:
                migrate(conn)

    def close(self) -> None:
        if self._owns_pool:
            self.pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """One connection in one transaction, rolled back on any exception (nothing half-written)."""
        with self.pool.connection() as conn, conn.transaction():
            yield conn

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        with self.pool.connection() as conn:
            yield conn

    # --- banks --------------------------------------------------------------------------------------

    @staticmethod
    def _bank(row: tuple[Any, ...]) -> Bank:
        id_, name, signal, max_distance, min_quality, enabled, created, seq = row
        return Bank(
            id=int(id_),
            name=str(name),
            signal_type=SignalType(str(signal)),
            max_distance=int(max_distance),
            min_quality=int(min_quality),
            enabled=bool(enabled),
            created_at=created,
            seq=int(seq),
        )

    def _get_bank(self, conn: Any, name: str, *, lock: bool = False) -> Bank:
        row = conn.execute(
            f"SELECT {_BANK_COLUMNS} FROM hash_banks WHERE name = %s" + (" FOR UPDATE" if lock else ""),
            (name,),
        ).fetchone()
        if row is None:
            raise BankNotFound(f"no bank called {name!r}; create it first (vigil bank create {name} …)")
        return self._bank(row)

    @staticmethod
    def _bump(conn: Any, bank: Bank) -> int:
        seq = bank.seq + 1
        conn.execute("UPDATE hash_banks SET seq = %s WHERE id = %s", (seq, bank.id))
        return seq

    def create_bank(
        self,
        name: str,
        signal_type: SignalType,
        *,
        max_distance: int | None = None,
        min_quality: int | None = None,
    ) -> Bank:
        import psycopg

        signal_type, distance, quality = bank_settings(name, signal_type, max_distance, min_quality)
        try:
            with self._transaction() as conn:
                if conn.execute("SELECT 1 FROM hash_banks WHERE name = %s", (name,)).fetchone():
                    raise BankExists(f"a bank called {name!r} already exists")
                row = conn.execute(
                    "INSERT INTO hash_banks (name, signal_type, max_distance, min_quality, created_at) "
                    f"VALUES (%s, %s, %s, %s, %s) RETURNING {_BANK_COLUMNS}",
                    (name, signal_type.value, distance, quality, self._clock()),
                ).fetchone()
                return self._bank(row)
        except psycopg.errors.UniqueViolation:  # created by another process since the check
            raise BankExists(f"a bank called {name!r} already exists") from None

    def get_bank(self, name: str) -> Bank:
        with self._reading() as conn:
            return self._get_bank(conn, name)

    def list_banks(self) -> list[Bank]:
        with self._reading() as conn:
            rows = conn.execute(f"SELECT {_BANK_COLUMNS} FROM hash_banks ORDER BY name").fetchall()
        return [self._bank(row) for row in rows]

    def count_entries(self, name: str) -> int:
        """Number of entries not removed (enabled or not) in a bank."""
        with self._reading() as conn:
            bank = self._get_bank(conn, name)
            row = conn.execute(
                "SELECT COUNT(*) FROM hash_bank_entries WHERE bank_id = %s AND NOT removed", (bank.id,)
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
        with self._transaction() as conn:
            bank = self._get_bank(conn, name, lock=True)
            distance = bank.max_distance if max_distance is None else max_distance
            quality = bank.min_quality if min_quality is None else min_quality
            check_settings(bank.signal_type, distance, quality)
            on = bank.enabled if enabled is None else enabled
            row = conn.execute(
                "UPDATE hash_banks SET enabled = %s, max_distance = %s, min_quality = %s, seq = %s "
                f"WHERE id = %s RETURNING {_BANK_COLUMNS}",
                (on, distance, quality, bank.seq + 1, bank.id),
            ).fetchone()
            return self._bank(row)

    def delete_bank(self, name: str) -> None:
        with self._transaction() as conn:
            bank = self._get_bank(conn, name, lock=True)
            conn.execute("DELETE FROM hash_bank_entries WHERE bank_id = %s", (bank.id,))
            conn.execute("DELETE FROM hash_banks WHERE id = %s", (bank.id,))

    # --- entries ------------------------------------------------------------------------------------

    def add_entries(self, bank: str, entries: Sequence[NewEntry]) -> list[int]:
        from psycopg.types.json import Jsonb

        with self._transaction() as conn:
            found = self._get_bank(conn, bank, lock=True)
            checked = validate_entries(found.signal_type, entries)
            wanted = list({e.hash for e in checked})
            rows = conn.execute(
                "SELECT hash FROM hash_bank_entries WHERE bank_id = %s AND NOT removed AND hash = ANY(%s)",
                (found.id, wanted),
            ).fetchall()
            seen: set[str] = {row[0] for row in rows}
            fresh: list[NewEntry] = []
            for entry in checked:
                if entry.hash not in seen:
                    seen.add(entry.hash)
                    fresh.append(entry)
            if not fresh:
                return []
            seq = self._bump(conn, found)
            now = self._clock()
            ids = sorted(
                int(row[0])
                for row in conn.execute(
                    "SELECT nextval(pg_get_serial_sequence('hash_bank_entries', 'id')) "
                    "FROM generate_series(1, %s)",
                    (len(fresh),),
                ).fetchall()
            )
            with conn.cursor() as cur, cur.copy(
                "COPY hash_bank_entries (id, bank_id, hash, source, tags, added_at, seq) FROM STDIN"
            ) as copy:
                for entry_id, e in zip(ids, fresh, strict=True):
                    copy.write_row((entry_id, found.id, e.hash, e.source, Jsonb(list(e.tags)), now, seq))
            return ids

    def _update_entries(self, bank: str, entry_ids: Sequence[int], assignment: str, where: str) -> int:
        with self._transaction() as conn:
            found = self._get_bank(conn, bank, lock=True)
            seq = found.seq + 1
            changed = conn.execute(
                f"UPDATE hash_bank_entries SET {assignment}, seq = %s "
                f"WHERE bank_id = %s AND NOT removed AND {where} AND id = ANY(%s)",
                (seq, found.id, [int(i) for i in entry_ids]),
            ).rowcount
            if changed:
                self._bump(conn, found)
            return int(changed)

    def remove_entries(self, bank: str, entry_ids: Sequence[int]) -> int:
        return self._update_entries(bank, entry_ids, "removed = true", "true")

    def set_entries_enabled(self, bank: str, entry_ids: Sequence[int], enabled: bool) -> int:
        flag = "true" if enabled else "false"
        return self._update_entries(bank, entry_ids, f"enabled = {flag}", f"enabled != {flag}")

    @staticmethod
    def _entry(bank: str, row: tuple[Any, ...]) -> BankEntry:
        id_, digest, source, tags, added, enabled = row
        return BankEntry(
            id=int(id_),
            bank=bank,
            hash=str(digest),
            source=str(source),
            tags=tuple(tags),
            added_at=added,
            enabled=bool(enabled),
        )

    def get_entries(self, bank: str, entry_ids: Sequence[int]) -> list[BankEntry]:
        with self._reading() as conn:
            found = self._get_bank(conn, bank)
            rows = conn.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM hash_bank_entries "
                "WHERE bank_id = %s AND NOT removed AND id = ANY(%s) ORDER BY id",
                (found.id, [int(i) for i in entry_ids]),
            ).fetchall()
        return [self._entry(bank, row) for row in rows]

    def iter_entries(self, bank: str, *, include_disabled: bool = False) -> Iterator[BankEntry]:
        after = 0
        while True:
            with self._reading() as conn:
                found = self._get_bank(conn, bank)
                rows = conn.execute(
                    f"SELECT {_ENTRY_COLUMNS} FROM hash_bank_entries WHERE bank_id = %s AND NOT removed "
                    "AND id > %s AND (enabled OR %s) ORDER BY id LIMIT 1000",
                    (found.id, after, include_disabled),
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
            # Page by id, a connection per page; the seq window keeps pages consistent.
            with self._reading() as conn:
                found = self._get_bank(conn, bank)
                rows = conn.execute(
                    "SELECT id, hash, enabled AND NOT removed FROM hash_bank_entries "
                    "WHERE bank_id = %s AND seq > %s AND seq <= %s AND id > %s ORDER BY id LIMIT %s",
                    (found.id, since_seq, until_seq, after, batch_size),
                ).fetchall()
            if not rows:
                return
            ids, hashes, active = zip(*rows, strict=True)
            yield HashRows(tuple(int(i) for i in ids), hashes, tuple(bool(a) for a in active))
            after = int(ids[-1])


def _redacted(url: str) -> str:
    """The URL without its password, for error messages."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def open_store(url: str) -> PostgresBankStore:
    """Open (migrating if needed) the bank store in the PostgreSQL database at `url`.

    >>> _redacted("postgresql://vigil:s3cret@db:5432/vigil")
    'postgresql://vigil:***@db:5432/vigil'
    """
    import psycopg
    from psycopg_pool import PoolTimeout

    try:
        return PostgresBankStore(url)
    except (psycopg.Error, PoolTimeout) as exc:
        raise BankError(f"cannot open bank database {_redacted(url)!r}: {exc}") from exc
