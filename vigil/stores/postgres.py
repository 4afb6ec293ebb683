"""PostgreSQL: the StateStore, RulesStore and TokenStore for several processes on several machines.

psycopg 3 with a connection pool. The schema is versioned: `schema_version` holds the number of
migrations applied, and each migration runs in its own transaction under an advisory lock, so workers
starting together migrate once. Label writes commit before the decision returns; counter rows arrive
from the working set's flusher, as with SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vigil.effects import DeadLetter, OutboxMessage
from vigil.stores.base import (
    OUTBOX_COLUMNS,
    ApiToken,
    CounterRow,
    DeadLetterLimits,
    LabelRecord,
    OutboxRow,
    OutboxStatus,
    RulesVersion,
    bounded_letter,
    outbox_row,
)

MIGRATIONS: list[str] = [
    """
    CREATE TABLE counter_log (
        id BIGSERIAL PRIMARY KEY, cid TEXT NOT NULL, key TEXT NOT NULL, sec BIGINT NOT NULL, value TEXT NOT NULL,
        amount DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX counter_log_cid_sec ON counter_log (cid, sec);
    CREATE TABLE labels (
        entity_type TEXT NOT NULL, key TEXT NOT NULL, label TEXT NOT NULL,
        present BOOLEAN NOT NULL, source TEXT NOT NULL, expires_at DOUBLE PRECISION,
        updated_at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL,
        PRIMARY KEY (entity_type, key, label)
    );
    CREATE TABLE label_history (
        id BIGSERIAL PRIMARY KEY, entity_type TEXT NOT NULL, key TEXT NOT NULL, label TEXT NOT NULL,
        present BOOLEAN NOT NULL, source TEXT NOT NULL, expires_at DOUBLE PRECISION,
        updated_at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL
    );
    CREATE INDEX label_history_entity ON label_history (entity_type, key);
    CREATE TABLE dead_letters (
        id BIGSERIAL PRIMARY KEY, time DOUBLE PRECISION NOT NULL, source TEXT NOT NULL, reason TEXT NOT NULL,
        raw BYTEA NOT NULL, details JSONB NOT NULL
    );
    """,
    # 2: the HTTP service's rules versions and API tokens.
    """
    CREATE TABLE rules_versions (
        seq BIGSERIAL PRIMARY KEY, version TEXT NOT NULL, files JSONB NOT NULL, entry JSONB NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, author TEXT NOT NULL, message TEXT NOT NULL,
        active BOOLEAN NOT NULL
    );
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, secret_hash TEXT NOT NULL UNIQUE,
        scopes JSONB NOT NULL, created_at DOUBLE PRECISION NOT NULL, revoked BOOLEAN NOT NULL
    );
    """,
    # 3: events accepted asynchronously (HTTP 202), kept until decided so that a killed process replays them.
    """
    CREATE TABLE event_journal (
        id BIGSERIAL PRIMARY KEY, source TEXT NOT NULL, raw BYTEA NOT NULL, accepted_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 4: the sources whose decisions a token may read beside its own (token names).
    """
    ALTER TABLE api_tokens ADD COLUMN read_sources JSONB NOT NULL DEFAULT '[]'::jsonb;
    """,
    # 5: the outbox: messages for sinks until delivered (vigil/sinks), one per sink and idempotency key.
    """
    CREATE TABLE outbox (
        id BIGSERIAL PRIMARY KEY, sink TEXT NOT NULL, key TEXT NOT NULL, body BYTEA NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, next_at DOUBLE PRECISION NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'pending', last_error TEXT NOT NULL DEFAULT '', done_at DOUBLE PRECISION,
        UNIQUE (sink, key)
    );
    CREATE INDEX outbox_due ON outbox (sink, state, next_at);
    """,
    # 6: one entity key's rows read on their own, when the working set needs that key.
    """
    CREATE INDEX counter_log_cid_key ON counter_log (cid, key, id);
    """,
    # 7: the person an API token belongs to (vigil.people); NULL for a token that belongs to nobody.
    """
    ALTER TABLE api_tokens ADD COLUMN person TEXT;
    """,
]

_LOCK = 0x76696769  # advisory lock id for migrations ("vigi")


def migrate(conn: Any) -> int:
    """Bring the schema to the latest version; returns it. Safe to call from several processes at once."""
    return run_migrations(conn, MIGRATIONS, "schema_version", _LOCK)


def run_migrations(conn: Any, migrations: list[str], version_table: str, lock_id: int) -> int:
    """Apply `migrations` from the version recorded in `version_table`, under an advisory lock so that
    processes starting together migrate once. `version_table` is a trusted identifier, never input."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id,))
        conn.execute(f"CREATE TABLE IF NOT EXISTS {version_table} (version INTEGER NOT NULL)")
        row = conn.execute(f"SELECT version FROM {version_table}").fetchone()
        if row is None:
            conn.execute(f"INSERT INTO {version_table} VALUES (0)")
            version = 0
        else:
            version = int(row[0])
        for index in range(version, len(migrations)):
            conn.execute(migrations[index])
            conn.execute(f"UPDATE {version_table} SET version = %s", (index + 1,))
    return len(migrations)


class PostgresStore:
    shared = True  # several processes on several machines: nothing read may be answered from later

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 4,
                 dead_letters: DeadLetterLimits | None = None) -> None:
        from psycopg_pool import ConnectionPool

        self.letter_limits = dead_letters if dead_letters is not None else DeadLetterLimits()
        self._letters_added = 0
        self.pool = ConnectionPool(url, min_size=min_size, max_size=max_size, open=True,
                                   kwargs={"autocommit": True})
        with self.pool.connection() as conn:
            migrate(conn)

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, rows)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    # ---- counters ----
    def write_counter_rows(self, rows: list[CounterRow]) -> None:
        if not rows:
            return
        with (self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur,
              cur.copy("COPY counter_log (cid, key, sec, value, amount) FROM STDIN") as copy):
            for row in rows:
                copy.write_row(row)

    def load_counter_rows(self, cid: str, since_sec: int | None) -> Iterable[CounterRow]:
        rows = self._read("SELECT cid, key, sec, value, amount FROM counter_log WHERE cid = %s AND sec > %s"
                          " ORDER BY id", (cid, since_sec if since_sec is not None else -(2**62)))
        return [(r[0], r[1], int(r[2]), r[3], float(r[4])) for r in rows]

    def load_counter_key(self, cid: str, key: str) -> list[CounterRow]:
        rows = self._read("SELECT sec, value, amount FROM counter_log WHERE cid = %s AND key = %s ORDER BY id",
                          (cid, key))
        return [(cid, key, int(r[0]), r[1], float(r[2])) for r in rows]

    def counter_keys(self, cid: str) -> Iterable[str]:
        last = None
        while True:  # a page at a time, along the (cid, key) index
            rows = self._read("SELECT DISTINCT key FROM counter_log WHERE cid = %s AND (%s::text IS NULL OR key > %s)"
                              " ORDER BY key LIMIT 10000", (cid, last, last))
            yield from (row[0] for row in rows)
            if len(rows) < 10000:
                return
            last = rows[-1][0]

    def latest_counter_sec(self, cid: str, *, not_after: float | None = None) -> int | None:
        limit = int(not_after) if not_after is not None else 2**63 - 1
        value = self._read("SELECT MAX(sec) FROM counter_log WHERE cid = %s AND sec <= %s", (cid, limit))[0][0]
        return None if value is None else int(value)

    def prune_counter_rows(self, cid: str, window: int | None, before_sec: int) -> None:
        """Per key, in one statement: each key's last-written second decides what its window still
        holds, and its newest second whether it went idle."""
        held = "n.last - %(window)s" if window is not None else "n.last - n.last %% 86400 - 1"
        idle = "m.newest" if window is not None else "m.newest - m.newest %% 86400 + 86399"
        with self.pool.connection() as conn:
            conn.execute(
                "WITH n AS (SELECT DISTINCT ON (key) key, sec AS last FROM counter_log WHERE cid = %(cid)s"
                " ORDER BY key, id DESC),"
                " m AS (SELECT key, MAX(sec) AS newest FROM counter_log WHERE cid = %(cid)s GROUP BY key)"
                " DELETE FROM counter_log c USING n, m WHERE c.cid = %(cid)s AND c.key = n.key AND m.key = n.key"
                f" AND ({idle} <= %(before)s OR c.sec <= {held})",
                {"cid": cid, "window": window, "before": before_sec})

    # ---- labels ----
    def write_labels(self, records: list[LabelRecord]) -> None:
        self.commit_effects(records, [])

    def commit_effects(self, labels: list[LabelRecord], outbox: list[OutboxMessage]) -> None:
        rows = [(r.entity_type, r.key, r.label, r.present, r.source, r.expires_at, r.updated_at, r.actor, r.reason)
                for r in labels]
        if not rows and not outbox:
            return
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            if outbox:
                cur.executemany(
                    "INSERT INTO outbox (sink, key, body, created_at, next_at) VALUES (%s, %s, %s, %s, %s)"
                    " ON CONFLICT (sink, key) DO NOTHING",
                    [(m.sink, m.key, m.body, m.created_at, m.created_at) for m in outbox])
            if not rows:
                return
            cur.executemany(
                "INSERT INTO labels VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (entity_type, key, label) DO UPDATE"
                " SET present = EXCLUDED.present, source = EXCLUDED.source, expires_at = EXCLUDED.expires_at,"
                " updated_at = EXCLUDED.updated_at, actor = EXCLUDED.actor, reason = EXCLUDED.reason"
                " WHERE EXCLUDED.updated_at >= labels.updated_at", rows)  # a replayed past change: history only
            cur.executemany(
                "INSERT INTO label_history (entity_type, key, label, present, source, expires_at, updated_at, actor,"
                " reason) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)", rows)

    @staticmethod
    def _record(row: tuple[Any, ...]) -> LabelRecord:
        etype, key, label, present, source, expires, updated, actor, reason = row
        return LabelRecord(etype, key, label, bool(present), source, None if expires is None else float(expires),
                           float(updated), actor, reason)

    _LABEL_COLUMNS = "entity_type, key, label, present, source, expires_at, updated_at, actor, reason"

    def load_labels(self) -> Iterable[LabelRecord]:
        return [self._record(r) for r in self._read(f"SELECT {self._LABEL_COLUMNS} FROM labels")]

    def entity_labels(self, entity_type: str, key: str) -> list[LabelRecord]:
        rows = self._read(f"SELECT {self._LABEL_COLUMNS} FROM labels WHERE entity_type = %s AND key = %s",
                          (entity_type, key))
        return [self._record(r) for r in rows]

    def labelled_entities(self) -> Iterable[tuple[str, str]]:
        return [(r[0], r[1]) for r in self._read("SELECT DISTINCT entity_type, key FROM labels")]

    def label_history(self, entity_type: str, key: str) -> list[LabelRecord]:
        rows = self._read(f"SELECT {self._LABEL_COLUMNS} FROM label_history WHERE entity_type = %s AND key = %s"
                          " ORDER BY id", (entity_type, key))
        return [self._record(r) for r in rows]

    # ---- dead letters ----
    def add_dead_letter(self, letter: DeadLetter) -> None:
        from psycopg.types.json import Jsonb

        letter = bounded_letter(letter, self.letter_limits)
        self._write("INSERT INTO dead_letters (time, source, reason, raw, details) VALUES (%s, %s, %s, %s, %s)",
                    [(letter.time, letter.source, letter.reason, letter.raw, Jsonb(letter.details))])
        self._letters_added += 1
        if (self._letters_added - 1) % self.letter_limits.trim_every == 0:  # the first add, then every n
            self.trim_dead_letters(letter.time)

    def trim_dead_letters(self, now: float) -> None:
        """Drop letters past the retention, then the oldest beyond the cap (shared by every process)."""
        limits = self.letter_limits
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("DELETE FROM dead_letters WHERE time < %s", (now - limits.retention_seconds,))
            conn.execute("DELETE FROM dead_letters WHERE id <= (SELECT id FROM dead_letters ORDER BY id DESC"
                         " LIMIT 1 OFFSET %s)", (limits.max_letters,))

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self._read("SELECT time, source, reason, raw, details, id FROM dead_letters ORDER BY id DESC LIMIT %s",
                          (limit,))
        return [DeadLetter(r[2], bytes(r[3]), r[1], float(r[0]), dict(r[4]), int(r[5])) for r in reversed(rows)]

    def mark_dead_letter(self, letter_id: int, details: dict[str, Any]) -> None:
        from psycopg.types.json import Jsonb

        with self.pool.connection() as conn:
            conn.execute("UPDATE dead_letters SET details = %s WHERE id = %s", (Jsonb(details), letter_id))

    def count_dead_letters(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM dead_letters")[0][0])

    # ---- the journal of events accepted but not yet decided (EventJournal) ----
    def journal_event(self, source: str, raw: bytes, now: float) -> int:
        row = self._read("INSERT INTO event_journal (source, raw, accepted_at) VALUES (%s, %s, %s) RETURNING id",
                         (source, raw, now))
        return int(row[0][0])

    def journal_done(self, journal_id: int) -> None:
        self._write("DELETE FROM event_journal WHERE id = %s", [(journal_id,)])

    def journal_pending(self) -> list[tuple[int, str, bytes]]:
        rows = self._read("SELECT id, source, raw FROM event_journal ORDER BY id")
        return [(int(r[0]), r[1], bytes(r[2])) for r in rows]

    # ---- the outbox (OutboxStore) ----
    def enqueue_outbox(self, messages: list[OutboxMessage]) -> None:
        self.commit_effects([], messages)

    def claim_outbox(self, sink: str, now: float, limit: int, lease: float) -> list[OutboxRow]:
        # SKIP LOCKED: dispatchers of several processes claim disjoint messages without waiting on each other.
        rows = self._read(
            f"UPDATE outbox SET next_at = %s WHERE id IN (SELECT id FROM outbox WHERE sink = %s AND state = 'pending'"
            f" AND next_at <= %s ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING {OUTBOX_COLUMNS}",
            (now + lease, sink, now, limit))
        return sorted((outbox_row(r) for r in rows), key=lambda r: r.id)

    def outbox_delivered(self, ids: list[int], now: float) -> None:
        self._write("UPDATE outbox SET state = 'delivered', done_at = %s, attempts = attempts + 1 WHERE id = %s",
                    [(now, i) for i in ids])

    def outbox_failed(self, row_id: int, attempts: int, error: str, next_at: float | None) -> None:
        if next_at is None:
            self._write("UPDATE outbox SET state = 'dead', attempts = %s, last_error = %s WHERE id = %s",
                        [(attempts, error, row_id)])
        else:
            self._write("UPDATE outbox SET attempts = %s, last_error = %s, next_at = %s WHERE id = %s",
                        [(attempts, error, next_at, row_id)])

    def outbox_release(self, ids: list[int], next_at: float) -> None:
        self._write("UPDATE outbox SET next_at = %s WHERE id = %s AND state = 'pending'", [(next_at, i) for i in ids])

    def outbox_status(self) -> dict[str, OutboxStatus]:
        rows = self._read("SELECT sink, COUNT(*) FILTER (WHERE state = 'pending'),"
                          " MIN(created_at) FILTER (WHERE state = 'pending'), COUNT(*) FILTER (WHERE state = 'dead')"
                          " FROM outbox WHERE state != 'delivered' GROUP BY sink")
        return {sink: OutboxStatus(int(pending), None if oldest is None else float(oldest), int(dead))
                for sink, pending, oldest, dead in rows}

    def outbox_dead(self, sink: str | None = None, limit: int = 100) -> list[OutboxRow]:
        rows = self._read(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state = 'dead'"
                          " AND (%s::text IS NULL OR sink = %s) ORDER BY id DESC LIMIT %s", (sink, sink, limit))
        return [outbox_row(r) for r in reversed(rows)]

    def requeue_outbox(self, sink: str | None, now: float) -> int:
        with self.pool.connection() as conn:
            cursor = conn.execute("UPDATE outbox SET state = 'pending', attempts = 0, next_at = %s WHERE state = 'dead'"
                                  " AND (%s::text IS NULL OR sink = %s)", (now, sink, sink))
            return cursor.rowcount

    def prune_outbox(self, delivered_before: float) -> int:
        with self.pool.connection() as conn:
            cursor = conn.execute("DELETE FROM outbox WHERE state = 'delivered' AND done_at < %s", (delivered_before,))
            return cursor.rowcount

    # ---- rules versions (RulesStore) ----
    _VERSION_COLUMNS = "seq, version, files, entry, created_at, author, message, active"

    @staticmethod
    def _version(row: tuple[Any, ...]) -> RulesVersion:
        seq, version, files, entry, created, author, message, active = row
        return RulesVersion(int(seq), version, dict(files), tuple(entry), float(created), author, message,
                            bool(active))

    def add_rules_version(self, version: str, files: dict[str, str], entry: tuple[str, ...], *,
                          author: str, message: str, now: float) -> RulesVersion:
        from psycopg.types.json import Jsonb

        row = self._read("INSERT INTO rules_versions (version, files, entry, created_at, author, message, active)"
                         " VALUES (%s, %s, %s, %s, %s, %s, false) RETURNING seq",
                         (version, Jsonb(files), Jsonb(list(entry)), now, author, message))
        return RulesVersion(int(row[0][0]), version, dict(files), tuple(entry), now, author, message, False)

    def activate_rules_version(self, seq: int) -> None:
        with self.pool.connection() as conn, conn.transaction():
            if conn.execute("SELECT 1 FROM rules_versions WHERE seq = %s FOR UPDATE", (seq,)).fetchone() is None:
                raise KeyError(seq)
            conn.execute("UPDATE rules_versions SET active = (seq = %s) WHERE active OR seq = %s", (seq, seq))

    def active_rules_version(self) -> RulesVersion | None:
        rows = self._read(f"SELECT {self._VERSION_COLUMNS} FROM rules_versions WHERE active LIMIT 1")
        return self._version(rows[0]) if rows else None

    def get_rules_version(self, seq: int) -> RulesVersion | None:
        rows = self._read(f"SELECT {self._VERSION_COLUMNS} FROM rules_versions WHERE seq = %s", (seq,))
        return self._version(rows[0]) if rows else None

    def list_rules_versions(self, limit: int = 100) -> list[RulesVersion]:
        rows = self._read(f"SELECT {self._VERSION_COLUMNS} FROM rules_versions ORDER BY seq DESC LIMIT %s", (limit,))
        return [self._version(r) for r in rows]

    # ---- API tokens (TokenStore) ----
    @staticmethod
    def _token(row: tuple[Any, ...]) -> ApiToken:
        tid, name, secret_hash, scopes, created, revoked, read_sources, person = row
        return ApiToken(tid, name, secret_hash, tuple(scopes), float(created), bool(revoked), tuple(read_sources),
                        person)

    _TOKEN_COLUMNS = "id, name, secret_hash, scopes, created_at, revoked, read_sources, person"

    def add_token(self, token: ApiToken) -> None:
        import psycopg
        from psycopg.types.json import Jsonb

        try:
            self._write(f"INSERT INTO api_tokens ({self._TOKEN_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        [(token.id, token.name, token.secret_hash, Jsonb(list(token.scopes)), token.created_at,
                          token.revoked, Jsonb(list(token.read_sources)), token.person)])
        except psycopg.errors.UniqueViolation as error:
            raise ValueError(f"a token named {token.name!r} exists already") from error

    def find_token(self, secret_hash: str) -> ApiToken | None:
        rows = self._read(f"SELECT {self._TOKEN_COLUMNS} FROM api_tokens WHERE secret_hash = %s", (secret_hash,))
        return self._token(rows[0]) if rows else None

    def list_tokens(self) -> list[ApiToken]:
        return [self._token(r) for r in self._read(f"SELECT {self._TOKEN_COLUMNS} FROM api_tokens"
                                                   " ORDER BY created_at, id")]

    def revoke_token(self, name_or_id: str) -> bool:
        with self.pool.connection() as conn:
            cursor = conn.execute("UPDATE api_tokens SET revoked = true WHERE name = %s OR id = %s",
                                  (name_or_id, name_or_id))
            return cursor.rowcount > 0

    def close(self) -> None:
        self.pool.close()
