"""The embedded default StateStore: one SQLite file in WAL mode.

Durability: label writes commit before the event's decision is returned. Counter updates are summed
in memory and written by the working set's flusher once a second, one chunk per counter, so `kill -9`
loses at most the last second of counter updates (docs/operations.md). WAL with synchronous=NORMAL survives a
killed process; only a power loss can take the last commits.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
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
    StoreUnavailable,
    bounded_letter,
    outbox_row,
)

# Versioned schema: each entry migrates from the version before it.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE counter_log (
        cid TEXT NOT NULL, key TEXT NOT NULL, sec INTEGER NOT NULL, value TEXT NOT NULL, amount REAL NOT NULL
    );
    CREATE INDEX counter_log_cid_sec ON counter_log (cid, sec);
    CREATE TABLE labels (
        entity_type TEXT NOT NULL, key TEXT NOT NULL, label TEXT NOT NULL,
        present INTEGER NOT NULL, source TEXT NOT NULL, expires_at REAL, updated_at REAL NOT NULL,
        actor TEXT NOT NULL, reason TEXT NOT NULL,
        PRIMARY KEY (entity_type, key, label)
    );
    CREATE TABLE label_history (
        id INTEGER PRIMARY KEY, entity_type TEXT NOT NULL, key TEXT NOT NULL, label TEXT NOT NULL,
        present INTEGER NOT NULL, source TEXT NOT NULL, expires_at REAL, updated_at REAL NOT NULL,
        actor TEXT NOT NULL, reason TEXT NOT NULL
    );
    CREATE INDEX label_history_entity ON label_history (entity_type, key);
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY, time REAL NOT NULL, source TEXT NOT NULL, reason TEXT NOT NULL,
        raw BLOB NOT NULL, details TEXT NOT NULL
    );
    """,
    # 2: the HTTP service's rules versions and API tokens.
    """
    CREATE TABLE rules_versions (
        seq INTEGER PRIMARY KEY, version TEXT NOT NULL, files TEXT NOT NULL, entry TEXT NOT NULL,
        created_at REAL NOT NULL, author TEXT NOT NULL, message TEXT NOT NULL, active INTEGER NOT NULL
    );
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, secret_hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL, created_at REAL NOT NULL, revoked INTEGER NOT NULL
    );
    """,
    # 3: counter updates stored as one chunk per counter and flush (a JSON array of [key, sec, value,
    # amount]) instead of one row per update: a flush of half a million updates was most of the cost
    # of running with SQLite state.
    """
    CREATE TABLE counter_chunks (
        id INTEGER PRIMARY KEY, cid TEXT NOT NULL, sec_min INTEGER NOT NULL, sec_max INTEGER NOT NULL,
        rows BLOB NOT NULL
    );
    CREATE INDEX counter_chunks_cid_sec ON counter_chunks (cid, sec_max);
    INSERT INTO counter_chunks (cid, sec_min, sec_max, rows)
        SELECT cid, MIN(sec), MAX(sec), json_group_array(json_array(key, sec, value, amount))
        FROM counter_log GROUP BY cid;
    DROP TABLE counter_log;
    """,
    # 4: events accepted asynchronously (HTTP 202), kept until decided so that a killed process replays them.
    """
    CREATE TABLE event_journal (
        id INTEGER PRIMARY KEY, source TEXT NOT NULL, raw BLOB NOT NULL, accepted_at REAL NOT NULL
    );
    """,
    # 5: the sources whose decisions a token may read beside its own (a JSON array of token names).
    """
    ALTER TABLE api_tokens ADD COLUMN read_sources TEXT NOT NULL DEFAULT '[]';
    """,
    # 6: the outbox: messages for sinks until delivered (vigil/sinks), one per sink and idempotency key.
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY, sink TEXT NOT NULL, key TEXT NOT NULL, body BLOB NOT NULL,
        created_at REAL NOT NULL, next_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'pending', last_error TEXT NOT NULL DEFAULT '', done_at REAL,
        UNIQUE (sink, key)
    );
    CREATE INDEX outbox_due ON outbox (sink, state, next_at);
    """,
    # 7: counter updates one row each again, indexed by counter and entity key: the working set reads
    # one key's rows when an event needs it (a chunk per flush could only be read whole).
    """
    CREATE TABLE counter_rows (
        cid TEXT NOT NULL, key TEXT NOT NULL, sec INTEGER NOT NULL, value TEXT NOT NULL, amount REAL NOT NULL
    );
    INSERT INTO counter_rows (cid, key, sec, value, amount)
        SELECT c.cid, json_extract(r.value, '$[0]'), json_extract(r.value, '$[1]'), json_extract(r.value, '$[2]'),
               json_extract(r.value, '$[3]')
        FROM counter_chunks c, json_each(CAST(c.rows AS TEXT)) r ORDER BY c.id, r.key;
    DROP TABLE counter_chunks;
    CREATE INDEX counter_rows_key ON counter_rows (cid, key);
    """,
    # 8: the person an API token belongs to (vigil.people); NULL for a token that belongs to nobody.
    """
    ALTER TABLE api_tokens ADD COLUMN person TEXT;
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the latest version; returns it."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    for index in range(version, len(MIGRATIONS)):
        conn.executescript("BEGIN;" + MIGRATIONS[index] + f"PRAGMA user_version = {index + 1}; COMMIT;")
    return len(MIGRATIONS)


def _unusable(path: str, error: BaseException) -> StoreUnavailable:
    """What is wrong with a SQLite file that cannot be opened, and what to do about it."""
    text = str(error)
    code = getattr(error, "sqlite_errorname", "")
    file = Path(path)
    # WAL needs -wal and -shm files beside the database: on a read-only file system or directory the
    # open itself fails (SQLITE_CANTOPEN), so look at what cannot be written.
    read_only = file.exists() and not (os.access(file, os.W_OK) and os.access(file.parent, os.W_OK))
    if (read_only or code.startswith(("SQLITE_READONLY", "SQLITE_PERM")) or "readonly" in text
            or isinstance(error, PermissionError)):
        return StoreUnavailable(
            f"the SQLite store {path} cannot be written ({text}): Vigil writes the file and, beside it, its "
            "-wal and -shm files; give the user running Vigil write access to the file and its directory, "
            "or point --db (VIGIL_STORE) at a writable path")
    if code.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in text or "malformed" in text:
        return StoreUnavailable(
            f"the SQLite store {path} is not a SQLite database or is damaged ({text}): restore it from a "
            f"backup, or move it aside (Vigil then starts with an empty store); `sqlite3 {path} .recover` may "
            "rescue its rows")
    return StoreUnavailable(f"the SQLite store {path} cannot be opened ({text}): check that the path is right "
                            "and its directory exists and is writable, or point --db (VIGIL_STORE) elsewhere")


def damaged_store(path: str, problems: list[str]) -> StoreUnavailable:
    shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
    return StoreUnavailable(
        f"the SQLite store {path} is damaged ({shown}): restore it from a backup, or move it aside (Vigil then "
        f"starts with an empty store); `sqlite3 {path} .recover` may rescue its rows")


# A store up to this size is checked page by page (PRAGMA quick_check) when opened, in tens of
# milliseconds; a larger one only has its header and schema read (a full check of 200 MB took 0.65 s
# on every start), and `vigil store check` checks it whole.
CHECK_ON_OPEN_BYTES = 16 << 20

# Counter rows written per transaction (see write_counter_rows).
WRITE_BATCH = 20_000


class SqliteStore:
    shared = False  # one process per file (docs/operations.md)

    def __init__(self, path: str | Path, *, dead_letters: DeadLetterLimits | None = None,
                 check_on_open_bytes: int = CHECK_ON_OPEN_BYTES) -> None:
        self.path = Path(path)
        self.letter_limits = dead_letters if dead_letters is not None else DeadLetterLimits()
        self._letters_added = 0
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # One connection, one writer: the engine thread and the counter flusher share it under a lock.
            self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            raise _unusable(str(path), error) from error
        self._lock = threading.Lock()
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            migrate(self._conn)
            # Every later write would fail the same way: find out now, while there is someone to tell.
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("ROLLBACK")
            # The header and schema were read above (a file that is not a database fails there); the
            # pages themselves are checked here while that is cheap, and by `vigil store check` always.
            small = str(path) == ":memory:" or self.path.stat().st_size <= check_on_open_bytes
            problems = self.integrity_problems(limit=10) if small else []
        except (OSError, sqlite3.Error) as error:
            self._conn.close()
            raise _unusable(str(path), error) from error
        if problems:
            self._conn.close()
            raise damaged_store(str(path), problems)
        # Point reads of one entity (counter rows, labels) on a second connection: WAL lets it read the
        # last commit while the flusher's write is under way, so a lookup never waits for that write.
        self._reader_conn, self._reader_lock = self._conn, self._lock
        if str(path) != ":memory:":
            self._reader_conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._reader_conn.execute("PRAGMA busy_timeout=5000")
            self._reader_lock = threading.Lock()

    def integrity_problems(self, *, limit: int = 100, full: bool = False) -> list[str]:
        """What SQLite finds wrong with the file, at most `limit` problems; [] when it is sound.
        `full`: PRAGMA integrity_check (also index contents), else quick_check (pages and structure)."""
        pragma = "integrity_check" if full else "quick_check"
        try:
            rows = self._read(f"PRAGMA {pragma}({int(limit)})")
        except sqlite3.DatabaseError as error:  # damage the check itself cannot get past
            return [str(error)]
        found = [line for row in rows for line in str(row[0]).splitlines()
                 if line.strip() and not line.startswith("*** in database")]  # a header, not a problem
        return [] if found == ["ok"] else found

    def _write(self, sql: str, rows: Iterable[tuple[object, ...]]) -> None:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(sql, rows)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _read_all(self, sql: str, params: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
        """The rows of a large answer a few thousand at a time, on the reading connection."""
        with self._reader_lock:
            cursor = self._reader_conn.execute(sql, params)
            while rows := cursor.fetchmany(5000):
                yield from rows

    def _reader(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """A read of committed rows that need not wait for a write in progress."""
        with self._reader_lock:
            return self._reader_conn.execute(sql, params).fetchall()

    # ---- counters ----
    def write_counter_rows(self, rows: list[CounterRow]) -> None:
        """In transactions of at most WRITE_BATCH rows, so that a label write (which an event's decision
        waits for) never waits out a whole second's worth of counter rows."""
        for start in range(0, len(rows), WRITE_BATCH):
            self._write("INSERT INTO counter_rows (cid, key, sec, value, amount) VALUES (?, ?, ?, ?, ?)",
                        rows[start:start + WRITE_BATCH])

    def load_counter_rows(self, cid: str, since_sec: int | None) -> Iterable[CounterRow]:
        since = since_sec if since_sec is not None else -(2**62)
        rows = self._read("SELECT cid, key, sec, value, amount FROM counter_rows WHERE cid = ? AND sec > ?"
                          " ORDER BY rowid", (cid, since))
        return [(str(c), str(k), int(s), str(v), float(a)) for c, k, s, v, a in rows]  # type: ignore[call-overload, arg-type]

    def load_counter_key(self, cid: str, key: str) -> list[CounterRow]:
        rows = self._reader("SELECT sec, value, amount FROM counter_rows WHERE cid = ? AND key = ? ORDER BY rowid",
                            (cid, key))
        return [(cid, key, int(s), str(v), float(a)) for s, v, a in rows]  # type: ignore[call-overload, arg-type]

    def counter_keys(self, cid: str) -> Iterable[str]:
        return (str(key) for (key,) in self._read_all("SELECT DISTINCT key FROM counter_rows WHERE cid = ?", (cid,)))

    def latest_counter_sec(self, cid: str, *, not_after: float | None = None) -> int | None:
        limit = not_after if not_after is not None else float(2**63)
        row = self._read("SELECT MAX(sec) FROM counter_rows WHERE cid = ? AND sec <= ?", (cid, limit))
        return row[0][0]  # type: ignore[return-value]

    def prune_counter_rows(self, cid: str, window: int | None, before_sec: int) -> None:
        """Per key, in one statement: each key's last-written second decides what its window still
        holds, and its newest second whether it went idle."""
        held = "last.sec - ?" if window is not None else "last.sec - last.sec % 86400 - 1"
        idle = "keyed.newest" if window is not None else "keyed.newest - keyed.newest % 86400 + 86399"
        params: tuple[object, ...] = (cid, cid, cid, before_sec) + ((window,) if window is not None else ())
        with self._lock:
            self._conn.execute(
                "WITH keyed AS (SELECT key, MAX(sec) AS newest FROM counter_rows WHERE cid = ? GROUP BY key),"
                " last AS (SELECT key, sec, MAX(rowid) FROM counter_rows WHERE cid = ? GROUP BY key)"
                " DELETE FROM counter_rows WHERE rowid IN (SELECT r.rowid FROM counter_rows r"
                " JOIN keyed ON keyed.key = r.key JOIN last ON last.key = r.key"
                f" WHERE r.cid = ? AND ({idle} <= ? OR r.sec <= {held}))", params)

    # ---- labels ----
    def write_labels(self, records: list[LabelRecord]) -> None:
        self.commit_effects(records, [])

    def commit_effects(self, labels: list[LabelRecord], outbox: list[OutboxMessage]) -> None:
        rows = [(r.entity_type, r.key, r.label, int(r.present), r.source, r.expires_at, r.updated_at,
                 r.actor, r.reason) for r in labels]
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._enqueue(outbox)
                # The latest change stays the label's record: a replayed change of the past goes to history only.
                self._conn.executemany(
                    "INSERT INTO labels VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (entity_type, key, label) DO UPDATE"
                    " SET present = excluded.present, source = excluded.source, expires_at = excluded.expires_at,"
                    " updated_at = excluded.updated_at, actor = excluded.actor, reason = excluded.reason"
                    " WHERE excluded.updated_at >= labels.updated_at", rows)
                self._conn.executemany(
                    "INSERT INTO label_history (entity_type, key, label, present, source, expires_at, updated_at,"
                    " actor, reason) VALUES (?,?,?,?,?,?,?,?,?)", rows)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @staticmethod
    def _record(row: tuple[object, ...]) -> LabelRecord:
        etype, key, label, present, source, expires, updated, actor, reason = row
        return LabelRecord(str(etype), str(key), str(label), bool(present), str(source),
                           None if expires is None else float(expires), float(updated), str(actor),  # type: ignore[arg-type]
                           str(reason))

    def load_labels(self) -> Iterable[LabelRecord]:
        return [self._record(r) for r in self._read("SELECT * FROM labels")]

    def entity_labels(self, entity_type: str, key: str) -> list[LabelRecord]:
        rows = self._reader("SELECT * FROM labels WHERE entity_type = ? AND key = ?", (entity_type, key))
        return [self._record(r) for r in rows]

    def labelled_entities(self) -> Iterable[tuple[str, str]]:
        return ((str(etype), str(key)) for etype, key in self._read_all("SELECT DISTINCT entity_type, key FROM labels"))

    def label_history(self, entity_type: str, key: str) -> list[LabelRecord]:
        rows = self._read(
            "SELECT entity_type, key, label, present, source, expires_at, updated_at, actor, reason"
            " FROM label_history WHERE entity_type = ? AND key = ? ORDER BY id", (entity_type, key))
        return [self._record(r) for r in rows]

    # ---- dead letters ----
    def add_dead_letter(self, letter: DeadLetter) -> None:
        letter = bounded_letter(letter, self.letter_limits)
        self._write("INSERT INTO dead_letters (time, source, reason, raw, details) VALUES (?, ?, ?, ?, ?)",
                    [(letter.time, letter.source, letter.reason, letter.raw, json.dumps(letter.details))])
        self._letters_added += 1
        if (self._letters_added - 1) % self.letter_limits.trim_every == 0:  # the first add, then every n
            self.trim_dead_letters(letter.time)

    def trim_dead_letters(self, now: float) -> None:
        """Drop letters past the retention, then the oldest beyond the cap."""
        limits = self.letter_limits
        with self._lock:
            self._conn.execute("DELETE FROM dead_letters WHERE time < ?", (now - limits.retention_seconds,))
            self._conn.execute("DELETE FROM dead_letters WHERE id <= (SELECT id FROM dead_letters ORDER BY id DESC"
                               " LIMIT 1 OFFSET ?)", (limits.max_letters,))

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self._read("SELECT time, source, reason, raw, details, id FROM dead_letters ORDER BY id DESC LIMIT ?",
                          (limit,))
        return [DeadLetter(str(r[2]), bytes(r[3]), str(r[1]), float(r[0]), json.loads(str(r[4])),  # type: ignore[call-overload, arg-type]
                           int(r[5]))  # type: ignore[call-overload]
                for r in reversed(rows)]

    def mark_dead_letter(self, letter_id: int, details: dict[str, Any]) -> None:
        self._write("UPDATE dead_letters SET details = ? WHERE id = ?", [(json.dumps(details), letter_id)])

    def count_dead_letters(self) -> int:
        count: int = self._read("SELECT COUNT(*) FROM dead_letters")[0][0]  # type: ignore[assignment]
        return count

    # ---- the journal of events accepted but not yet decided (EventJournal) ----
    def journal_event(self, source: str, raw: bytes, now: float) -> int:
        """Keep an accepted event until `journal_done`; committed before this returns."""
        with self._lock:
            cursor = self._conn.execute("INSERT INTO event_journal (source, raw, accepted_at) VALUES (?, ?, ?)",
                                        (source, raw, now))
            return int(cursor.lastrowid or 0)

    def journal_done(self, journal_id: int) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM event_journal WHERE id = ?", (journal_id,))

    def journal_pending(self) -> list[tuple[int, str, bytes]]:
        """Events accepted and never decided (the process stopped first), oldest first."""
        rows = self._read("SELECT id, source, raw FROM event_journal ORDER BY id")
        return [(int(r[0]), str(r[1]), bytes(r[2])) for r in rows]  # type: ignore[call-overload]

    # ---- the outbox (OutboxStore) ----
    def _enqueue(self, messages: list[OutboxMessage]) -> None:
        """Within the caller's transaction, under the lock."""
        self._conn.executemany(
            "INSERT INTO outbox (sink, key, body, created_at, next_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (sink, key) DO NOTHING",
            [(m.sink, m.key, m.body, m.created_at, m.created_at) for m in messages])

    def enqueue_outbox(self, messages: list[OutboxMessage]) -> None:
        self.commit_effects([], messages)

    def claim_outbox(self, sink: str, now: float, limit: int, lease: float) -> list[OutboxRow]:
        with self._lock:
            rows = self._conn.execute(
                f"UPDATE outbox SET next_at = ? WHERE id IN (SELECT id FROM outbox WHERE sink = ? AND state = 'pending'"
                f" AND next_at <= ? ORDER BY id LIMIT ?) RETURNING {OUTBOX_COLUMNS}",
                (now + lease, sink, now, limit)).fetchall()
        return sorted((outbox_row(r) for r in rows), key=lambda r: r.id)

    def outbox_delivered(self, ids: list[int], now: float) -> None:
        self._write("UPDATE outbox SET state = 'delivered', done_at = ?, attempts = attempts + 1 WHERE id = ?",
                    [(now, i) for i in ids])

    def outbox_failed(self, row_id: int, attempts: int, error: str, next_at: float | None) -> None:
        if next_at is None:
            self._write("UPDATE outbox SET state = 'dead', attempts = ?, last_error = ? WHERE id = ?",
                        [(attempts, error, row_id)])
        else:
            self._write("UPDATE outbox SET attempts = ?, last_error = ?, next_at = ? WHERE id = ?",
                        [(attempts, error, next_at, row_id)])

    def outbox_release(self, ids: list[int], next_at: float) -> None:
        self._write("UPDATE outbox SET next_at = ? WHERE id = ? AND state = 'pending'", [(next_at, i) for i in ids])

    def outbox_status(self) -> dict[str, OutboxStatus]:
        rows = self._read("SELECT sink, SUM(state = 'pending'), MIN(CASE WHEN state = 'pending' THEN created_at END),"
                          " SUM(state = 'dead') FROM outbox WHERE state != 'delivered' GROUP BY sink")
        return {str(sink): OutboxStatus(int(pending or 0), None if oldest is None else float(oldest),  # type: ignore[call-overload, arg-type]
                                        int(dead or 0))  # type: ignore[call-overload]
                for sink, pending, oldest, dead in rows}

    def outbox_dead(self, sink: str | None = None, limit: int = 100) -> list[OutboxRow]:
        rows = self._read(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state = 'dead' AND (? IS NULL OR sink = ?)"
                          " ORDER BY id DESC LIMIT ?", (sink, sink, limit))
        return [outbox_row(r) for r in reversed(rows)]

    def requeue_outbox(self, sink: str | None, now: float) -> int:
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_at = ? WHERE state = 'dead'"
                " AND (? IS NULL OR sink = ?)", (now, sink, sink))
            return cursor.rowcount

    def prune_outbox(self, delivered_before: float) -> int:
        with self._lock:
            cursor = self._conn.execute("DELETE FROM outbox WHERE state = 'delivered' AND done_at < ?",
                                        (delivered_before,))
            return cursor.rowcount

    # ---- rules versions (RulesStore) ----
    _VERSION_COLUMNS = "seq, version, files, entry, created_at, author, message, active"

    @staticmethod
    def _version(row: tuple[object, ...]) -> RulesVersion:
        seq, version, files, entry, created, author, message, active = row
        return RulesVersion(int(seq), str(version), json.loads(str(files)), tuple(json.loads(str(entry))),  # type: ignore[call-overload]
                            float(created), str(author), str(message), bool(active))  # type: ignore[arg-type]

    def add_rules_version(self, version: str, files: dict[str, str], entry: tuple[str, ...], *,
                          author: str, message: str, now: float) -> RulesVersion:
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO rules_versions (version, files, entry, created_at, author, message, active)"
                " VALUES (?, ?, ?, ?, ?, ?, 0)", (version, json.dumps(files), json.dumps(list(entry)), now, author,
                                                   message))
            seq = int(cursor.lastrowid or 0)
        return RulesVersion(seq, version, dict(files), tuple(entry), now, author, message, False)

    def activate_rules_version(self, seq: int) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if self._conn.execute("SELECT 1 FROM rules_versions WHERE seq = ?", (seq,)).fetchone() is None:
                    raise KeyError(seq)
                self._conn.execute("UPDATE rules_versions SET active = (seq = ?)", (seq,))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def active_rules_version(self) -> RulesVersion | None:
        rows = self._read(f"SELECT {self._VERSION_COLUMNS} FROM rules_versions WHERE active = 1 LIMIT 1")
        return self._version(rows[0]) if rows else None

    def get_rules_version(self, seq: int) -> RulesVersion | None:
        rows = self._read(f"SELECT {self._VERSION_COLUMNS} FROM rules_versions WHERE seq = ?", (seq,))
        return self._version(rows[0]) if rows else None

    def list_rules_versions(self, limit: int = 100) -> list[RulesVersion]:
        rows = self._read(f"SELECT {self._VERSION_COLUMNS} FROM rules_versions ORDER BY seq DESC LIMIT ?", (limit,))
        return [self._version(r) for r in rows]

    # ---- API tokens (TokenStore) ----
    _TOKEN_COLUMNS = "id, name, secret_hash, scopes, created_at, revoked, read_sources, person"

    @staticmethod
    def _token(row: tuple[object, ...]) -> ApiToken:
        tid, name, secret_hash, scopes, created, revoked, read_sources, person = row
        return ApiToken(str(tid), str(name), str(secret_hash), tuple(json.loads(str(scopes))), float(created),  # type: ignore[arg-type]
                        bool(revoked), tuple(json.loads(str(read_sources))), None if person is None else str(person))

    def add_token(self, token: ApiToken) -> None:
        try:
            self._write(f"INSERT INTO api_tokens ({self._TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(token.id, token.name, token.secret_hash, json.dumps(list(token.scopes)),
                          token.created_at, int(token.revoked), json.dumps(list(token.read_sources)), token.person)])
        except sqlite3.IntegrityError as error:
            raise ValueError(f"a token named {token.name!r} exists already") from error

    def find_token(self, secret_hash: str) -> ApiToken | None:
        rows = self._read(f"SELECT {self._TOKEN_COLUMNS} FROM api_tokens WHERE secret_hash = ?", (secret_hash,))
        return self._token(rows[0]) if rows else None

    def list_tokens(self) -> list[ApiToken]:
        return [self._token(r) for r in self._read(f"SELECT {self._TOKEN_COLUMNS} FROM api_tokens"
                                                   " ORDER BY created_at, id")]

    def revoke_token(self, name_or_id: str) -> bool:
        with self._lock:
            cursor = self._conn.execute("UPDATE api_tokens SET revoked = 1 WHERE name = ? OR id = ?",
                                        (name_or_id, name_or_id))
            return cursor.rowcount > 0

    def close(self) -> None:
        with self._reader_lock:
            if self._reader_conn is not self._conn:
                self._reader_conn.close()
        with self._lock:
            self._conn.close()


def open_store(url: str, *, dead_letters: DeadLetterLimits | None = None) -> SqliteStore:
    """A store from a URL: `sqlite:///path/to/file.sqlite`, a plain path, or `memory:`. Another URL is a
    ValueError: `postgresql://u@h/db` must never become a file of that name."""
    if "://" in url and not url.startswith("sqlite://"):
        raise ValueError(f"{url.split('://', 1)[0]}:// is not a SQLite store: open it with "
                         "vigil.stores.open.open_store")
    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///"):], dead_letters=dead_letters)
    if url.startswith("sqlite://"):
        return SqliteStore(url[len("sqlite://"):], dead_letters=dead_letters)
    return SqliteStore(url, dead_letters=dead_letters)
