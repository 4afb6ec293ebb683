"""The engine's hook into the record: each decision is queued as it is made and written in batches by a
thread of its own, so the engine only appends to a queue. Serialising, redacting and indexing happen
on that thread too.

Durability: with `durable`, `record` returns once the decision's batch is committed (the decisions of
concurrent engine threads share one commit), so what a front door answered survives a kill -9. Without
it (`vigil run`), the queue is written every `flush_interval` and at close.
"""

from __future__ import annotations

import logging
import threading
import time as wall
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from vigil.dsl.loader import RuleSet
from vigil.dsl.runtime import FieldTypeError, entity_key, get
from vigil.effects import Decision
from vigil.events import Event
from vigil.jsonout import dumps
from vigil.record.base import Record, RecordEntry
from vigil.record.redact import Redactor
from vigil.record.settings import RecordSettings

log = logging.getLogger("vigil.record")

EntityFields = tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]  # (entity name, its fields' paths)


class Recorder:
    """Queues (event, decision) pairs from the engine and writes them to `record`.

    `rules` gives the running rules set (for the entity declarations the entity-key index uses)."""

    def __init__(self, record: Record, settings: RecordSettings, rules: Callable[[], RuleSet], *,
                 durable: bool = False, clock: Callable[[], float] = wall.time) -> None:
        self.record = record
        self.settings = settings
        self.durable = durable
        self._rules = rules
        self._clock = clock
        self.redactor = Redactor(settings)
        self._dumps = dumps  # JSON that cannot fail (orjson's nesting limit, lone surrogates)
        self._entity_cache: tuple[str, EntityFields] = ("", ())
        self._extra = tuple((name, (tuple(path.split(".")),)) for name, path in settings.entity_fields.items())
        self._queue: deque[tuple[Event, Decision]] = deque()
        self._cond = threading.Condition()
        self._queued = 0  # decisions ever queued
        self._written = 0  # decisions ever written (or given up, see `failed`)
        self.failed = 0  # decisions the store refused (logged; kept queued until it takes them)
        self.late = 0  # durable decisions answered before they were written (the record was refusing writes)
        self.last_error = ""
        self._closing = False
        self._local = threading.local()  # per engine thread: whether its waits are deferred (`together`)
        self._thread = threading.Thread(target=self._run, name="vigil-record", daemon=True)
        self._last_prune = 0.0
        self._thread.start()

    # ---- the engine's side ----
    def record_decision(self, event: Event, decision: Decision) -> None:
        """Queue one decision (both stages call this); with `durable`, wait until it is written."""
        with self._cond:
            while len(self._queue) >= self.settings.max_queue and not self._closing:
                self._cond.wait()  # back-pressure: deciding waits for the log, nothing is dropped
            self._queue.append((event, decision))
            self._queued += 1
            mine = self._queued
            if self.durable or len(self._queue) >= self.settings.batch_size:
                self._cond.notify_all()
            if self.durable:
                if getattr(self._local, "deferred", False):
                    self._local.last = mine  # `together` waits once, for the last of its decisions
                else:
                    self._wait_written(mine)

    def _wait_written(self, mine: int) -> None:
        """Wait (holding the condition) until decision number `mine` is written. Bounded: a record that
        refuses writes for long must not stall deciding; the decision stays queued and is written once
        the record takes it."""
        deadline = wall.monotonic() + self.settings.durable_timeout
        while self._written < mine and self._thread.is_alive():
            left = deadline - wall.monotonic()
            if left <= 0:
                self.late += 1
                break
            self._cond.wait(timeout=left)

    @contextmanager
    def together(self) -> Iterator[None]:
        """Decisions made in this thread inside the block are durable together: each is queued at once
        and the block's end waits for the last (a batch of events answered as one: one commit, not one
        per event)."""
        self._local.deferred, self._local.last = True, 0
        try:
            yield
        finally:
            self._local.deferred = False
            if self._local.last:
                with self._cond:
                    self._cond.notify_all()
                    self._wait_written(self._local.last)

    def flush(self) -> None:
        """Wait until everything queued so far is written."""
        with self._cond:
            target = self._queued
            self._cond.notify_all()
            while self._written < target and self._thread.is_alive():
                self._cond.wait()

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        self.record.close()

    @property
    def depth(self) -> int:
        return len(self._queue)

    # ---- the writer thread ----
    def _run(self) -> None:
        interval = self.settings.flush_interval
        while True:
            with self._cond:
                if not self._queue and not self._closing:
                    self._cond.wait(timeout=interval)
                if not self.durable and not self._closing and len(self._queue) < self.settings.batch_size:
                    self._cond.wait(timeout=interval)  # gather a batch: one commit for many decisions
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.settings.batch_size))]
                closing = self._closing and not self._queue
            if batch:
                self._write(batch)
            if closing and not batch:
                return
            self._maybe_prune()

    def _write(self, batch: list[tuple[Event, Decision]]) -> None:
        entries = [self.entry(event, decision) for event, decision in batch]
        while True:
            try:
                self.record.write(entries)
                self.last_error = ""
                break
            except Exception as error:  # the log must outlive a store that fails for a while
                self.failed += len(batch)
                self.last_error = f"{type(error).__name__}: {error}"
                log.exception("the record refused %d decisions; retrying", len(batch))
                if self._closing:
                    break
                wall.sleep(min(self.settings.flush_interval * 5, 1.0))
        with self._cond:
            self._written += len(batch)
            self._cond.notify_all()

    def _maybe_prune(self) -> None:
        now = self._clock()
        if now - self._last_prune < self.settings.prune_interval:
            return
        self._last_prune = now
        s = self.settings
        before = now - s.retention_days * 86400 if s.retention_days else None
        if before is None and not s.max_events:
            return
        try:
            pruned = self.record.prune(recorded_before=before, max_events=s.max_events or None)
            if pruned:
                log.info("record: %d events past retention forgotten", pruned)
        except Exception:  # pruning is retried at the next interval
            log.exception("record: pruning failed")

    # ---- one decision as stored ----
    def entry(self, event: Event, decision: Decision) -> RecordEntry:
        rules = tuple((hit.rule, hit.mode) for hit in decision.hits)
        body = self._dumps(decision.to_json())
        if decision.stage != 1:
            return RecordEntry(event.source, event.id, event.time, event.type, decision.stage, decision.verdict,
                               decision.ruleset_version, body, self._clock(), rules=rules)
        data, encoded = self.redactor.encoded(event.data, self._dumps)
        return RecordEntry(event.source, event.id, event.time, event.type, decision.stage, decision.verdict,
                           decision.ruleset_version, body, self._clock(),
                           event=encoded, rules=rules,
                           entities=self._entities(data))

    def _entities(self, data: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        out = []
        for name, paths in self._entity_fields():
            try:
                key = entity_key(*(get(data, path) for path in paths))
            except FieldTypeError:  # a field of another type (an object, a list) is no key
                key = None
            if key is not None:
                out.append((name, key))
        return tuple(out)

    def _entity_fields(self) -> EntityFields:
        ruleset = self._rules()
        version, fields = self._entity_cache
        if version != ruleset.version:
            declared = tuple((decl.name, tuple(f.path for f in decl.fields))
                             for decl in ruleset.program.entities.values())
            names = {name for name, _ in declared}
            fields = declared + tuple(extra for extra in self._extra if extra[0] not in names)
            self._entity_cache = (ruleset.version, fields)
        return fields


def answered_together(engine: Any) -> Any:
    """`engine.recorder.together()` when the engine keeps a record, else a block that does nothing."""
    from contextlib import nullcontext

    recorder = getattr(engine, "recorder", None)
    return recorder.together() if isinstance(recorder, Recorder) else nullcontext()
