"""What the engine needs from durable storage, as Protocols: SQLite is the embedded default;
PostgreSQL and Redis implement the same interface."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from vigil.effects import DeadLetter, OutboxMessage

if TYPE_CHECKING:
    from vigil.dsl.compile import CounterSpec

class StoreUnavailable(Exception):
    """The durable store cannot be used at all (a file that is not a database, one that cannot be
    written): the message says what is wrong and what to do. Front doors show it as one line."""


@dataclass(frozen=True, slots=True)
class DeadLetterLimits:
    """How much of each dead letter a store keeps, and for how long. A dead letter is for finding out what
    went wrong and replaying it, so the store keeps the first `max_raw_bytes` of the raw body with its size
    and SHA-256 (details "raw_size", "raw_sha256", "raw_truncated"), at most `max_letters` letters
    (the oldest go first) and none older than `retention_seconds`. Trimming runs every `trim_every` adds."""

    max_raw_bytes: int = 64 << 10
    max_letters: int = 100_000
    retention_seconds: float = 30 * 86400.0
    trim_every: int = 100


def bounded_letter(letter: DeadLetter, limits: DeadLetterLimits) -> DeadLetter:
    """`letter` with its raw body cut to the limit; the whole body's size and hash are in its details."""
    raw = letter.raw
    if len(raw) <= limits.max_raw_bytes:
        return letter
    details = {**letter.details, "raw_size": len(raw), "raw_sha256": hashlib.sha256(raw).hexdigest(),
               "raw_truncated": True}
    return dataclasses.replace(letter, raw=raw[:limits.max_raw_bytes], details=details)


# (counter id, entity key, second, value for distinct counters or "", amount)
CounterRow = tuple[str, str, int, str, float]


@dataclass(frozen=True, slots=True)
class LabelRecord:
    """One change of one label on one entity, in effect from `updated_at` (the event's time for a rule,
    the time a person made it for a manual change) until the label's next change. A removed label is kept
    with present=False, so that a person's removal still outranks a rule that would add it again;
    `expires_at` ends a label's presence, or a person's removal (after it, rules may add the label)."""

    entity_type: str
    key: str
    label: str
    present: bool
    source: str  # "rule" or "manual"
    expires_at: float | None
    updated_at: float
    actor: str  # the rule's name, or the person/token that set it
    reason: str = ""

    def in_force(self, now: float) -> bool:
        """Not expired at `now` (a present label is active; a person's removal still holds)."""
        return self.expires_at is None or self.expires_at > now

    def active(self, now: float) -> bool:
        return self.present and self.in_force(now)

    def held(self, now: float) -> bool:
        """A person's change that rules cannot undo at `now`."""
        return self.source == "manual" and self.in_force(now)


def label_at(records: Iterable[LabelRecord], label: str, at: float) -> LabelRecord | None:
    """The change of `label` in effect at `at` among an entity's history: the latest one made at or
    before `at` (of several made at the same time, the last stored)."""
    best: LabelRecord | None = None
    for record in records:
        if record.label == label and record.updated_at <= at and (best is None or record.updated_at >= best.updated_at):
            best = record
    return best


def horizon(newest: int, window: int | None) -> int:
    """The last second outside the window ending at second `newest`: a sliding window of `window`
    seconds holds the seconds after `newest - window`; the calendar day (None) its UTC day.

    >>> horizon(1000, 60), horizon(86400 + 5, None)
    (940, 86399)
    """
    return newest - window if window is not None else newest - newest % 86400 - 1


def idle_until(newest: int | None, window: int | None) -> int:
    """The second after which a key whose newest row is at `newest` counts as active, for pruning keys
    that went idle: that second itself for a sliding window, the last second of its UTC day for `today`
    (a key with nothing held: always idle).

    >>> idle_until(1000, 60), idle_until(86400 + 5, None), idle_until(None, 60) < 0
    (1000, 172799, True)
    """
    if newest is None:
        return -(2**63)
    return newest if window is not None else newest - newest % 86400 + 86399


class StateStore(Protocol):
    """Durable state behind the in-memory working set."""

    # Whether other processes write this store too (PostgreSQL): then no process may answer from what it
    # read earlier, since another may have changed it since.
    shared: bool

    def write_counter_rows(self, rows: list[CounterRow]) -> None: ...

    def load_counter_rows(self, cid: str, since_sec: int | None) -> Iterable[CounterRow]:
        """The rows of counter `cid` after `since_sec` (None: all), in the order they were written."""
        ...

    def load_counter_key(self, cid: str, key: str) -> list[CounterRow]:
        """The rows of one entity key of counter `cid`, in the order they were written (an indexed read:
        the working set reads a key this way when an event needs it)."""
        ...

    def counter_keys(self, cid: str) -> Iterable[str]:
        """Every entity key of counter `cid` with stored rows, each once (read at start, in place of the
        rows: the working set asks the store only about keys it may hold)."""
        ...

    def latest_counter_sec(self, cid: str, *, not_after: float | None = None) -> int | None:
        """The newest second among counter `cid`'s rows (only those at or before `not_after`, if given)."""
        ...

    def prune_counter_rows(self, cid: str, window: int | None, before_sec: int) -> None:
        """Drop the rows of counter `cid` that reloading would drop anyway: per key, those at or before
        `horizon(second of the key's last-written row, window)`; and every row of a key idle since
        `before_sec` (`idle_until(the key's newest second, window) <= before_sec`). Never by one
        counter-wide newest second (one future-dated row would erase every other key)."""
        ...

    def write_labels(self, records: list[LabelRecord]) -> None:
        """Append each change to the label history and make it the label's latest record unless that one
        took effect later (a replayed change of the past), in one transaction."""
        ...

    def load_labels(self) -> Iterable[LabelRecord]:
        """The latest record of every label (for tools and tests: the engine reads labels per entity)."""
        ...

    def entity_labels(self, entity_type: str, key: str) -> list[LabelRecord]:
        """The latest record of each label of one entity."""
        ...

    def labelled_entities(self) -> Iterable[tuple[str, str]]:
        """Every (entity type, key) with a stored label record, each once."""
        ...

    def label_history(self, entity_type: str, key: str) -> list[LabelRecord]:
        """Every change of the entity's labels, in the order stored."""
        ...

    def commit_effects(self, labels: list[LabelRecord], outbox: list[OutboxMessage]) -> None:
        """Write label changes (as `write_labels`) and enqueue outbox messages (as `enqueue_outbox`) in one
        transaction: an event's effects are all stored or none."""
        ...

    def add_dead_letter(self, letter: DeadLetter) -> None: ...

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]: ...

    def count_dead_letters(self) -> int: ...

    def mark_dead_letter(self, letter_id: int, details: dict[str, Any]) -> None:
        """Replace a stored letter's details (a replay marks it replayed: vigil dead-letters replay)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A message in the outbox as stored: `state` is "pending" (to deliver, from `next_at`), "delivered",
    or "dead" (gave up after `attempts`, `last_error` says why; `requeue_outbox` sends it again)."""

    id: int
    sink: str
    key: str
    body: bytes
    created_at: float
    attempts: int = 0
    state: str = "pending"
    last_error: str = ""
    next_at: float = 0.0


# The outbox's columns in the order `outbox_row` reads them, for SELECT and RETURNING in both SQL stores.
OUTBOX_COLUMNS = "id, sink, key, body, created_at, attempts, state, last_error, next_at"


def outbox_row(row: Sequence[Any]) -> OutboxRow:
    """A row of OUTBOX_COLUMNS as an OutboxRow, from SQLite or PostgreSQL (whose bytea is a memoryview)."""
    rid, sink, key, body, created, attempts, state, error, next_at = row
    return OutboxRow(int(rid), str(sink), str(key), bytes(body), float(created), int(attempts), str(state),
                     str(error), float(next_at))


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """One sink's part of the outbox: messages waiting, the creation time of the oldest (its lag), and
    messages given up."""

    pending: int = 0
    oldest: float | None = None
    dead: int = 0


class OutboxStore(Protocol):
    """The durable outbox: messages for sinks, delivered at least once by vigil.sinks' dispatcher. A
    message is stored once per (sink, key): enqueueing it again (a replayed event) changes nothing, even
    after delivery, until `prune_outbox` forgets delivered messages."""

    def enqueue_outbox(self, messages: list[OutboxMessage]) -> None: ...

    def claim_outbox(self, sink: str, now: float, limit: int, lease: float) -> list[OutboxRow]:
        """Up to `limit` pending messages of `sink` due at `now`, oldest first, each hidden from other
        claims until `now + lease` (a dispatcher that dies holding them loses them for that long only)."""
        ...

    def outbox_delivered(self, ids: list[int], now: float) -> None: ...

    def outbox_failed(self, row_id: int, attempts: int, error: str, next_at: float | None) -> None:
        """Record a failed attempt: due again at `next_at`, or dead (None)."""
        ...

    def outbox_release(self, ids: list[int], next_at: float) -> None:
        """Give back claimed messages not tried (their sink failed first): due at `next_at`, no attempt counted."""
        ...

    def outbox_status(self) -> dict[str, OutboxStatus]: ...

    def outbox_dead(self, sink: str | None = None, limit: int = 100) -> list[OutboxRow]:
        """Messages given up, newest last."""
        ...

    def requeue_outbox(self, sink: str | None, now: float) -> int:
        """Make dead messages (of `sink`, or all) pending again with no attempts; returns how many."""
        ...

    def prune_outbox(self, delivered_before: float) -> int:
        """Forget messages delivered before that time; returns how many."""
        ...


class EventJournal(Protocol):
    """Events accepted for later decision (HTTP 202), durable before the answer, until they are decided."""

    def journal_event(self, source: str, raw: bytes, now: float) -> int: ...

    def journal_done(self, journal_id: int) -> None: ...

    def journal_pending(self) -> list[tuple[int, str, bytes]]: ...


@dataclass(slots=True)
class FlushStatus:
    """How writing counter updates to the store goes (/readyz and /metrics show it)."""

    failures: int = 0  # flushes the store refused (their rows were kept and retried)
    set_aside: int = 0  # rows no store can hold, dead-lettered with the reason instead
    last_error: str = ""  # why the latest flush failed; empty once a flush succeeds
    waiting: int = 0  # rows kept for the next flush after a failure


class CounterBackend(Protocol):
    """Where the windowed counters live: in process (`WindowCounters`, journalled to a StateStore) or in
    a shared server (`RedisCounters`) that several workers update together.

    The compiled rules make one `add_many` call per event, so an implementation can apply an event's
    updates atomically and idempotently: a second call with the same event id (a redelivery) must change
    nothing and return what the first call returned. `peekers[i](key, sec)` reads counter i without adding.
    Semantics are those of vigil/signals/counters.py, exactly."""

    peekers: list[Callable[[str, int], float]]

    def prepare(self, specs: list[CounterSpec]) -> None:
        """Do the slow part of binding `specs` (store reads for new counters) before `bind`, without the
        engine's lock: the running version goes on deciding meanwhile."""
        ...

    def bind(self, specs: list[CounterSpec]) -> None:
        """Make `specs` the active counters; index i of the compiled rules is specs[i]."""
        ...

    def add_many(self, event_id: str, sec: int,
                 updates: list[tuple[int, str, Any]]) -> dict[int, tuple[float, float]]: ...

    def start(self) -> None: ...

    def flush(self) -> int: ...

    def flush_status(self) -> FlushStatus: ...

    def close(self) -> None: ...


class LabelBackend(Protocol):
    """Entity labels as the engine and the service use them (`Labels` in process, `RedisLabels` shared).

    Every answer is about one time `now`: the labels as they were then (each label's latest change made
    at or before `now`), so an event is decided against the labels of its own time, replayed or live.
    `change` decides a label's next state without storing it; `commit` stores the changes of one event
    (at most once per `event_id` when one is given: a redelivered event appends no history twice) and
    returns the ones stored, as stored."""

    def has(self, entity_type: str, key: str, label: str, now: float) -> bool: ...

    def has_manual(self, entity_type: str, key: str, label: str, now: float) -> bool:
        """Active at `now` and set by a person."""
        ...

    def get(self, entity_type: str, key: str, now: float | None = None) -> list[LabelRecord]:
        """The active labels at `now`; without `now`, every label's latest record."""
        ...

    def as_of(self, entity_type: str, key: str, at: float) -> list[LabelRecord]:
        """Every label's record in effect at `at`, active or not (removed, expired)."""
        ...

    def history(self, entity_type: str, key: str) -> list[LabelRecord]: ...

    def change(self, entity_type: str, key: str, label: str, *, present: bool, now: float, source: str,
               actor: str, expires_at: float | None = None, reason: str = "") -> LabelRecord | None: ...

    def commit(self, records: list[LabelRecord], event_id: str = "") -> list[LabelRecord]: ...

    def set(self, entity_type: str, key: str, label: str, *, present: bool, now: float, source: str,
            actor: str, expires_at: float | None = None, reason: str = "") -> LabelRecord | None: ...


# ---- rules versions and API tokens (the HTTP service's own state) ----


@dataclass(frozen=True, slots=True)
class RulesVersion:
    """One stored rules set: the files as uploaded (path → text) and the entry files to load.

    `seq` numbers versions in the order they were stored (1, 2, …); `version` is the content hash that
    `load_ruleset` gives the same files, so two stores of identical files share a `version`."""

    seq: int
    version: str
    files: dict[str, str]
    entry: tuple[str, ...]
    created_at: float
    author: str
    message: str
    active: bool = False


class RulesStore(Protocol):
    """Stored rules versions, exactly one of them active once any is activated. Every instance of the
    service polls `active_rules_version` and switches when another instance activated a new one."""

    def add_rules_version(self, version: str, files: dict[str, str], entry: tuple[str, ...], *,
                          author: str, message: str, now: float) -> RulesVersion:
        """Store a version (not yet active) and return it with its new `seq`."""
        ...

    def activate_rules_version(self, seq: int) -> None:
        """Make `seq` the only active version, in one transaction. Raises KeyError if there is none."""
        ...

    def active_rules_version(self) -> RulesVersion | None: ...

    def get_rules_version(self, seq: int) -> RulesVersion | None: ...

    def list_rules_versions(self, limit: int = 100) -> list[RulesVersion]:
        """The newest `limit` versions, newest first, with their files."""
        ...


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token as stored: never the secret, only its SHA-256 (hex). Scopes: ingest, read, review, admin.
    `read_sources`: the other tokens (by name, "*" for all) whose events' decisions it may read; its own
    it always may, and an admin token reads every source's."""

    id: str
    name: str
    secret_hash: str
    scopes: tuple[str, ...]
    created_at: float
    revoked: bool = False
    read_sources: tuple[str, ...] = ()
    # The person the token belongs to (vigil.people): it acts with that person's roles and its actions are
    # theirs. None for a token made before people existed: it acts with the roles of its scopes.
    person: str | None = None


class TokenStore(Protocol):
    def add_token(self, token: ApiToken) -> None:
        """Store a new token; raises ValueError if its name or id is taken."""
        ...

    def find_token(self, secret_hash: str) -> ApiToken | None:
        """The token whose secret hashes to `secret_hash`, revoked or not (callers check)."""
        ...

    def list_tokens(self) -> list[ApiToken]: ...

    def revoke_token(self, name_or_id: str) -> bool:
        """Revoke by name or id; False if there is no such token."""
        ...
