"""A StateStore that keeps everything in process memory: for tests, `vigil test` and dry runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from vigil.effects import DeadLetter, OutboxMessage
from vigil.stores.base import (
    ApiToken,
    CounterRow,
    DeadLetterLimits,
    LabelRecord,
    OutboxRow,
    OutboxStatus,
    RulesVersion,
    bounded_letter,
    horizon,
    idle_until,
)


class MemoryStore:
    shared = False

    def __init__(self, *, dead_letters: DeadLetterLimits | None = None) -> None:
        self.letter_limits = dead_letters if dead_letters is not None else DeadLetterLimits()
        self.counter_rows: list[CounterRow] = []
        self._counter_keys: dict[tuple[str, str], list[CounterRow]] = {}  # the same rows by (counter, key)
        self.labels: dict[tuple[str, str], dict[str, LabelRecord]] = {}  # entity → label → latest record
        self.history: list[LabelRecord] = []
        self.letters: list[DeadLetter] = []
        self._letter_seq = 0  # the ids letters get here
        self.versions: list[RulesVersion] = []
        self.tokens: dict[str, ApiToken] = {}
        self.journal: dict[int, tuple[str, bytes]] = {}
        self._journal_seq = 0
        self.outbox: dict[int, OutboxRow] = {}
        self._outbox_keys: dict[tuple[str, str], int] = {}
        self._outbox_done: dict[int, float] = {}
        self._outbox_seq = 0

    def write_counter_rows(self, rows: list[CounterRow]) -> None:
        self.counter_rows.extend(rows)
        for row in rows:
            self._counter_keys.setdefault((row[0], row[1]), []).append(row)

    def load_counter_rows(self, cid: str, since_sec: int | None) -> Iterable[CounterRow]:
        return [r for r in self.counter_rows if r[0] == cid and (since_sec is None or r[2] > since_sec)]

    def load_counter_key(self, cid: str, key: str) -> list[CounterRow]:
        return list(self._counter_keys.get((cid, key), ()))

    def counter_keys(self, cid: str) -> Iterable[str]:
        return [key for c, key in self._counter_keys if c == cid]

    def latest_counter_sec(self, cid: str, *, not_after: float | None = None) -> int | None:
        return max((r[2] for r in self.counter_rows if r[0] == cid and (not_after is None or r[2] <= not_after)),
                   default=None)

    def prune_counter_rows(self, cid: str, window: int | None, before_sec: int) -> None:
        last: dict[str, int] = {}  # each key's last-written second
        newest: dict[str, int] = {}
        for r in self.counter_rows:
            if r[0] == cid:
                last[r[1]] = r[2]
                newest[r[1]] = max(newest.get(r[1], r[2]), r[2])
        self.counter_rows = [r for r in self.counter_rows if r[0] != cid
                             or (idle_until(newest[r[1]], window) > before_sec and r[2] > horizon(last[r[1]], window))]
        self._counter_keys = {}
        for row in self.counter_rows:
            self._counter_keys.setdefault((row[0], row[1]), []).append(row)

    def write_labels(self, records: list[LabelRecord]) -> None:
        for r in records:
            labels = self.labels.setdefault((r.entity_type, r.key), {})
            latest = labels.get(r.label)
            if latest is None or latest.updated_at <= r.updated_at:
                labels[r.label] = r
            self.history.append(r)

    def load_labels(self) -> Iterable[LabelRecord]:
        return [r for labels in self.labels.values() for r in labels.values()]

    def entity_labels(self, entity_type: str, key: str) -> list[LabelRecord]:
        return list(self.labels.get((entity_type, key), {}).values())

    def labelled_entities(self) -> Iterable[tuple[str, str]]:
        return list(self.labels)

    def commit_effects(self, labels: list[LabelRecord], outbox: list[OutboxMessage]) -> None:
        self.enqueue_outbox(outbox)
        self.write_labels(labels)

    # ---- the outbox (lost with the process: delivery at least once while it runs) ----
    def enqueue_outbox(self, messages: list[OutboxMessage]) -> None:
        for m in messages:
            if (m.sink, m.key) not in self._outbox_keys:
                self._outbox_seq += 1
                row_id = self._outbox_seq
                self._outbox_keys[(m.sink, m.key)] = row_id
                self.outbox[row_id] = OutboxRow(row_id, m.sink, m.key, m.body, m.created_at, next_at=m.created_at)

    def claim_outbox(self, sink: str, now: float, limit: int, lease: float) -> list[OutboxRow]:
        due = [r for r in self.outbox.values() if r.sink == sink and r.state == "pending" and r.next_at <= now]
        for r in due[:limit]:
            self.outbox[r.id] = dataclasses.replace(r, next_at=now + lease)
        return due[:limit]

    def outbox_delivered(self, ids: list[int], now: float) -> None:
        for i in ids:
            row = self.outbox[i]
            self.outbox[i] = dataclasses.replace(row, state="delivered", attempts=row.attempts + 1)
            self._outbox_done[i] = now

    def outbox_failed(self, row_id: int, attempts: int, error: str, next_at: float | None) -> None:
        row = self.outbox[row_id]
        self.outbox[row_id] = dataclasses.replace(row, attempts=attempts, last_error=error,
                                                  state="dead" if next_at is None else row.state,
                                                  next_at=row.next_at if next_at is None else next_at)

    def outbox_release(self, ids: list[int], next_at: float) -> None:
        for i in ids:
            if self.outbox[i].state == "pending":
                self.outbox[i] = dataclasses.replace(self.outbox[i], next_at=next_at)

    def outbox_status(self) -> dict[str, OutboxStatus]:
        out: dict[str, OutboxStatus] = {}
        for r in self.outbox.values():
            if r.state == "delivered":
                continue
            s = out.get(r.sink, OutboxStatus())
            if r.state == "pending":
                oldest = r.created_at if s.oldest is None else min(s.oldest, r.created_at)
                out[r.sink] = dataclasses.replace(s, pending=s.pending + 1, oldest=oldest)
            else:
                out[r.sink] = dataclasses.replace(s, dead=s.dead + 1)
        return out

    def outbox_dead(self, sink: str | None = None, limit: int = 100) -> list[OutboxRow]:
        dead = [r for r in self.outbox.values() if r.state == "dead" and sink in (None, r.sink)]
        return dead[-limit:]

    def requeue_outbox(self, sink: str | None, now: float) -> int:
        dead = self.outbox_dead(sink, limit=len(self.outbox))
        for r in dead:
            self.outbox[r.id] = dataclasses.replace(r, state="pending", attempts=0, next_at=now)
        return len(dead)

    def prune_outbox(self, delivered_before: float) -> int:
        gone = [i for i, t in self._outbox_done.items() if t < delivered_before]
        for i in gone:
            row = self.outbox.pop(i)
            del self._outbox_keys[(row.sink, row.key)]
            del self._outbox_done[i]
        return len(gone)

    def label_history(self, entity_type: str, key: str) -> list[LabelRecord]:
        return [r for r in self.history if r.entity_type == entity_type and r.key == key]

    def add_dead_letter(self, letter: DeadLetter) -> None:
        self._letter_seq += 1
        self.letters.append(dataclasses.replace(bounded_letter(letter, self.letter_limits), id=self._letter_seq))
        limits = self.letter_limits
        if len(self.letters) > limits.max_letters:
            del self.letters[:len(self.letters) - limits.max_letters]
        while self.letters and self.letters[0].time < letter.time - limits.retention_seconds:
            self.letters.pop(0)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return self.letters[-limit:]

    def count_dead_letters(self) -> int:
        return len(self.letters)

    def mark_dead_letter(self, letter_id: int, details: dict[str, Any]) -> None:
        self.letters = [dataclasses.replace(x, details=dict(details)) if x.id == letter_id else x
                        for x in self.letters]

    # ---- the journal of accepted events (lost with the process, like everything here) ----
    def journal_event(self, source: str, raw: bytes, now: float) -> int:
        self._journal_seq += 1
        self.journal[self._journal_seq] = (source, raw)
        return self._journal_seq

    def journal_done(self, journal_id: int) -> None:
        self.journal.pop(journal_id, None)

    def journal_pending(self) -> list[tuple[int, str, bytes]]:
        return [(jid, source, raw) for jid, (source, raw) in sorted(self.journal.items())]

    # ---- rules versions ----
    def add_rules_version(self, version: str, files: dict[str, str], entry: tuple[str, ...], *,
                          author: str, message: str, now: float) -> RulesVersion:
        stored = RulesVersion(len(self.versions) + 1, version, dict(files), tuple(entry), now, author, message)
        self.versions.append(stored)
        return stored

    def activate_rules_version(self, seq: int) -> None:
        if not 1 <= seq <= len(self.versions):
            raise KeyError(seq)
        self.versions = [dataclasses.replace(v, active=v.seq == seq) for v in self.versions]

    def active_rules_version(self) -> RulesVersion | None:
        return next((v for v in self.versions if v.active), None)

    def get_rules_version(self, seq: int) -> RulesVersion | None:
        return self.versions[seq - 1] if 1 <= seq <= len(self.versions) else None

    def list_rules_versions(self, limit: int = 100) -> list[RulesVersion]:
        return list(reversed(self.versions))[:limit]

    # ---- API tokens ----
    def add_token(self, token: ApiToken) -> None:
        if token.id in self.tokens or any(t.name == token.name for t in self.tokens.values()):
            raise ValueError(f"a token named {token.name!r} exists already")
        self.tokens[token.id] = token

    def find_token(self, secret_hash: str) -> ApiToken | None:
        return next((t for t in self.tokens.values() if t.secret_hash == secret_hash), None)

    def list_tokens(self) -> list[ApiToken]:
        return sorted(self.tokens.values(), key=lambda t: (t.created_at, t.id))

    def revoke_token(self, name_or_id: str) -> bool:
        for tid, token in self.tokens.items():
            if name_or_id in (token.id, token.name):
                self.tokens[tid] = dataclasses.replace(token, revoked=True)
                return True
        return False

    def close(self) -> None:
        pass
