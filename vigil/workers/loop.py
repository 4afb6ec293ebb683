"""The loop every worker runs, whatever the broker: read a batch, decide each event, write the decisions,
then acknowledge. Delivery is at least once; the effects are idempotent by event id within the worker's
source (the counter and label backends apply an event once), and decisions are upserted by source and
event id, so a redelivered event leaves exactly one decision and changes no count twice.

A message whose event is invalid is dead-lettered at once (it would fail the same way again). A message
whose processing raises (a backend briefly down, a bug) is retried; after `max_attempts` deliveries it
goes to the dead-letter stream or topic. On SIGTERM or SIGINT the loop stops reading, finishes the batch
in hand, acknowledges it, and returns; the caller then flushes and closes the engine.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vigil.dsl.loader import RuleSet
from vigil.dsl.runtime import FieldTypeError
from vigil.effects import Decision
from vigil.engine import Engine
from vigil.events import DEFAULT_MAX_FUTURE_SKEW, Event, EventError, parse_event
from vigil.gate import Gate, RulesRejected
from vigil.record.writer import answered_together
from vigil.rules_source import RulesSource
from vigil.stages import SlowStage
from vigil.stores.base import RulesStore

log = logging.getLogger("vigil.workers")


@dataclass(slots=True)
class Message:
    id: str  # the broker's id: a stream entry id, or "partition:offset"
    raw: bytes
    attempts: int = 1  # deliveries so far, this one included
    handle: Any = None  # what the source needs to acknowledge it


class Source(Protocol):
    name: str
    retry_in_place: bool  # True: retry a failing message now (Kafka); False: the broker redelivers it (Redis)

    def fetch(self, timeout: float) -> list[Message]: ...

    def done(self, messages: list[Message]) -> None:
        """Acknowledge processed messages (their decisions are durable by now)."""
        ...

    def dead(self, message: Message, reason: str) -> None:
        """Move a message to the dead-letter stream or topic, and acknowledge it."""
        ...

    def close(self) -> None: ...


class Sink(Protocol):
    def write(self, decisions: list[Decision]) -> None:
        """Make the decisions durable; a decision for an event id already written replaces it."""
        ...


@dataclass(slots=True)
class WorkerStats:
    events: int = 0
    decided: int = 0
    dead: int = 0
    failures: int = 0
    reloads: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)


def rules_fingerprint(paths: Sequence[str]) -> tuple[tuple[str, int, int], ...]:
    """What changes when any file under the rules paths is written, added or removed."""
    out = []
    for root in paths:
        base = Path(root)
        for path in [base] if base.is_file() else base.rglob("*"):
            try:
                st = path.stat()
            except OSError:
                continue
            if path.is_file():
                out.append((path.as_posix(), st.st_mtime_ns, st.st_size))
    return tuple(sorted(out))


class RulesWatcher:
    """Hot reload from the worker's one rules source (vigil/rules_source.py): every `interval` seconds,
    a change in the rules files (`directory`) or a new active version in the store (`store`) passes the
    gate (the checker and the rules' own tests, with the engine's signals) and is activated between two
    events; one the gate refuses is logged and the running version keeps going. A store version refused
    is tried again every `retry_interval` seconds while it stays active (a classifier or bank may answer
    by then), as `vigil serve` does; files, on their next change. The rule stages the gate lays over the
    version (vigil/lifecycle) are followed too: a change of stage, made anywhere, runs here next round.
    `written`: the version the engine started on, as it passed the gate (before the stages)."""

    def __init__(self, engine: Engine, gate: Gate, *, source: RulesSource = "directory", paths: Sequence[str] = (),
                 store: RulesStore | None = None, interval: float = 2.0, retry_interval: float = 30.0,
                 written: RuleSet | None = None) -> None:
        if source == "store" and store is None:
            raise ValueError("following the store needs a store that keeps rules versions")
        self.engine, self.gate, self.source, self.interval = engine, gate, source, interval
        self.paths = list(paths) if source == "directory" else []
        self.store = store if source == "store" else None
        self._fingerprint = rules_fingerprint(self.paths) if self.paths else None
        self._seq: int | None = None
        self._seq = self._active_seq()
        self._next = time.monotonic() + interval
        self.retry_interval = retry_interval
        self._refused: tuple[int, float] | None = None  # the store version last refused, and when (monotonic)
        self.rejected = 0
        self.reloads = 0
        self._written = written
        self._generation = 0
        self._generation = self._stages_generation()

    def _stages_generation(self) -> int:
        states = self.gate.states
        if states is None:
            return 0
        try:
            return states.generation()
        except Exception:  # a store briefly unreachable: check again next round
            log.exception("reading the rule stages failed")
            return self._generation

    def _poll_stages(self) -> bool:
        """Run the stored rule stages when they changed; True when the engine changed."""
        generation = self._stages_generation()
        if generation == self._generation or self._written is None:
            return False
        self._generation = generation
        running = self.gate.running(self._written)
        if running.version == self.engine.version:
            return False
        self.engine.activate(running)
        self.reloads += 1
        log.info("rule stages changed: rules version %s active", running.version)
        return True

    def _active_seq(self) -> int | None:
        if self.store is None:
            return None
        try:
            active = self.store.active_rules_version()
        except Exception:  # a store briefly unreachable: check again next round
            log.exception("reading the active rules version failed")
            return self._seq
        return active.seq if active is not None else None

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def poll(self) -> bool:
        """One round; returns True when another rules version (or another stage of a rule) became active."""
        self._next = time.monotonic() + self.interval
        return self._poll_source() | self._poll_stages()

    def _poll_source(self) -> bool:
        if self.store is not None:
            active = self.store.active_rules_version()
            if active is None or active.seq == self._seq:
                return False
            refused = self._refused
            if refused is not None and refused[0] == active.seq and time.monotonic() - refused[1] < self.retry_interval:
                return False
            before = self.rejected
            changed = self._activate(lambda: self.gate.admit(active.files, active.entry), f"store version {active.seq}")
            if self.rejected == before:
                self._seq, self._refused = active.seq, None
            else:
                self._refused = (active.seq, time.monotonic())
            return changed
        if self.paths:
            fingerprint = rules_fingerprint(self.paths)
            if fingerprint != self._fingerprint:
                self._fingerprint = fingerprint
                return self._activate(lambda: self.gate.admit_paths(self.paths), f"disk {', '.join(self.paths)}")
        return False

    def _activate(self, admit: Callable[[], RuleSet], where: str) -> bool:
        try:
            ruleset = admit()
        except RulesRejected as error:
            self.rejected += 1
            log.error("rules from %s refused by the gate; version %s keeps running:\n%s", where, self.engine.version,
                      error)
            return False
        except (OSError, ValueError) as error:
            self.rejected += 1
            log.error("rules from %s not loaded (%s); version %s keeps running", where, error, self.engine.version)
            return False
        self._written = ruleset
        self._generation = self._stages_generation()
        running = self.gate.running(ruleset)
        if running.version == self.engine.version:
            return False
        self.engine.activate(running)
        self.reloads += 1
        log.info("rules version %s active (from %s)", running.version, where)
        return True


class Worker:
    """`event_source` names where the events come from (default: the source's name, `redis:STREAM` or
    `kafka:TOPIC`). Ids are unique per source only: it scopes counters' redelivery marks, label changes
    once per event and the decisions written, so two streams reusing an id never stand for each other."""

    def __init__(self, engine: Engine, source: Source, sinks: Sequence[Sink] = (), *,
                 watcher: RulesWatcher | None = None, max_attempts: int = 5,
                 max_event_skew: float = DEFAULT_MAX_FUTURE_SKEW, event_source: str | None = None,
                 second_stage: SlowStage | None = None) -> None:
        self.engine, self.source, self.sinks, self.watcher = engine, source, list(sinks), watcher
        # Rules that wait for a policy model run for each batch before it is written and acknowledged,
        # so a worker's decisions never stay pending (vigil.runtime builds the stage).
        self.second_stage = second_stage
        self.event_source = event_source or source.name
        self.max_attempts = max_attempts
        self.max_event_skew = max_event_skew
        self.stats = WorkerStats()

    def run(self, stop: threading.Event, *, max_events: int | None = None, idle_exit: float | None = None,
            poll_timeout: float = 1.0) -> WorkerStats:
        """Process until `stop` is set (or `max_events` were decided, or nothing came for `idle_exit` s)."""
        last_message = time.monotonic()
        while not stop.is_set():
            if self.watcher is not None and self.watcher.due():
                try:
                    if self.watcher.poll():
                        self.stats.reloads += 1
                except Exception:
                    log.exception("rules reload round failed")
            messages = self.source.fetch(poll_timeout)
            if messages:
                last_message = time.monotonic()
                self.process(messages)
            elif idle_exit is not None and time.monotonic() - last_message > idle_exit:
                break
            if max_events is not None and self.stats.events >= max_events:
                break
        return self.stats

    def process(self, messages: list[Message]) -> None:
        decisions: list[Decision] = []
        handled: list[Message] = []
        waiting: list[tuple[Event, Decision]] = []
        # The batch's decisions reach the record with one commit, before the batch is acknowledged.
        with answered_together(self.engine):
            for message in messages:
                self.stats.events += 1
                if message.attempts > self.max_attempts:
                    self._dead(message, f"failed {message.attempts - 1} times")
                    continue
                decided = self._decide(message)
                if decided is not None:
                    decisions.append(decided[1])
                    handled.append(message)
                    if decided[1].pending:
                        waiting.append(decided)
            if waiting and self.second_stage is not None:
                decisions += self._second_stage(self.second_stage, waiting)
        if decisions:
            for sink in self.sinks:
                sink.write(decisions)
        self.source.done(handled)
        self.stats.decided += len(handled)
        self.stats.batches += 1

    @staticmethod
    def _second_stage(stage: SlowStage, waiting: list[tuple[Event, Decision]]) -> list[Decision]:
        """The stage-2 decisions of the batch's pending events, written after (and upserted over) the
        first ones; a failure keeps the first decisions, as the service's second stage does."""
        try:
            return stage.run_batch(waiting)
        except Exception:
            log.exception("second stage failed for %d events; they keep their first decisions", len(waiting))
            return []

    def _decide(self, message: Message) -> tuple[Event, Decision] | None:
        while True:
            try:
                parsed = parse_event(message.raw, now=time.time(), max_future_skew=self.max_event_skew)
                event = dataclasses.replace(parsed, source=self.event_source)
                return event, self.engine.decide(event)
            except (EventError, FieldTypeError) as error:
                self.engine.dead_letter(message.raw, str(error), self.event_source)
                self._dead(message, str(error))
                return None
            except Exception as error:  # noqa: BLE001 - transient or a bug: at least once means trying again
                self.stats.failures += 1
                log.warning("message %s failed (attempt %s of %s): %s: %s", message.id, message.attempts,
                            self.max_attempts, type(error).__name__, error)
                if message.attempts >= self.max_attempts:
                    self._dead(message, f"internal error after {message.attempts} attempts: "
                                        f"{type(error).__name__}: {error}")
                    return None
                if not self.source.retry_in_place:
                    return None  # left unacknowledged: the broker delivers it again
                message.attempts += 1
                time.sleep(min(2.0, 0.05 * 2 ** message.attempts))

    def _dead(self, message: Message, reason: str) -> None:
        self.stats.dead += 1
        self.source.dead(message, reason)
