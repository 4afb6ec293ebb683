"""A durable queue of texts a remote classifier could not answer yet.

When the endpoint is slow, down, rate-limited or over budget, the caller gets "unknown" at once
and the text lands here, in an SQLite file the caller passes in. A later pass
(:meth:`~vigil.classifiers.llm.PolicyClassifier.retry_pending`) answers it; nothing is dropped.
One connection guarded by a lock is the single writer, as SQLite likes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY,
    classifier TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    text TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    enqueued_at REAL NOT NULL,
    not_before REAL NOT NULL,
    UNIQUE (classifier, content_hash)
);
CREATE INDEX IF NOT EXISTS pending_due ON pending (classifier, not_before);
"""


@dataclass(frozen=True, slots=True)
class QueuedItem:
    """A text waiting for a classifier's answer."""

    id: int
    classifier: str
    content_hash: str
    text: str
    reason: str
    attempts: int
    enqueued_at: float
    not_before: float


class RetryQueue:
    """SQLite-backed retry queue; the same text queued twice for one classifier is kept once."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def put(
        self, classifier: str, content_hash: str, text: str, reason: str, *, delay_s: float = 0.0
    ) -> None:
        """Queue ``text``; if already queued, keep the earliest entry and note the latest reason."""
        now = self._clock()
        with self._lock:
            self._db.execute(
                "INSERT INTO pending (classifier, content_hash, text, reason, enqueued_at, not_before)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (classifier, content_hash) DO UPDATE SET reason = excluded.reason",
                (classifier, content_hash, text, reason, now, now + delay_s),
            )

    def due(self, classifier: str, limit: int = 100) -> list[QueuedItem]:
        """Items for ``classifier`` whose retry time has come, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, classifier, content_hash, text, reason, attempts, enqueued_at, not_before"
                " FROM pending WHERE classifier = ? AND not_before <= ? ORDER BY enqueued_at, id LIMIT ?",
                (classifier, self._clock(), limit),
            ).fetchall()
        return [QueuedItem(*row) for row in rows]

    def done(self, item_id: int) -> None:
        """Remove an answered item."""
        with self._lock:
            self._db.execute("DELETE FROM pending WHERE id = ?", (item_id,))

    def defer(self, item_id: int, reason: str, *, delay_s: float) -> None:
        """Count a failed retry and push the next one back by ``delay_s``."""
        with self._lock:
            self._db.execute(
                "UPDATE pending SET attempts = attempts + 1, reason = ?, not_before = ? WHERE id = ?",
                (reason, self._clock() + delay_s, item_id),
            )

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM pending").fetchone()
        return int(count)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
