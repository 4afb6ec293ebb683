"""Events in: parse, decide, dead-letter, and the asynchronous queue. The HTTP routes are thin over this.

The engine is synchronous and fast (tens of microseconds an event), so it is called in the event loop's
own thread: no thread hand-off per request, and every engine call happens in one thread. Events
accepted asynchronously wait in a bounded queue that one background task drains; at shutdown the queue
is drained before the engine closes, so an accepted event is never dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from vigil.dsl.runtime import FieldTypeError
from vigil.effects import Decision
from vigil.engine import Engine
from vigil.events import DEFAULT_MAX_FUTURE_SKEW, MAX_EVENT_DEPTH, Event, EventError, event_key, parse_event
from vigil.service.errors import ApiError
from vigil.service.metrics import Metrics
from vigil.service.render import dumps
from vigil.stages import SlowStage
from vigil.stores.base import EventJournal

log = logging.getLogger("vigil.service.ingest")


class EventRejected(ApiError):
    """An event that was refused and dead-lettered."""


@dataclass(frozen=True, slots=True)
class Queued:
    event: Event
    raw: bytes
    source: str
    accepted_at: float
    journal_id: int | None = None  # its row in the store's journal, deleted once decided


class RecentDecisions:
    """The last `size` outcomes by event key (source and id, Event.key): a decision, a dead letter's
    reason, or "queued". `keys(event_id)` lists the keys holding that id, from any source."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._ids: dict[str, set[str]] = {}
        self._lock = threading.Lock()  # the second stage records its decisions from its own thread

    def put(self, key: str, event_id: str, outcome: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = outcome
            self._items.move_to_end(key)
            self._ids.setdefault(event_id, set()).add(key)
            while len(self._items) > self.size:
                old, entry = self._items.popitem(last=False)
                old_id = entry.get("event_id") or entry["decision"].event_id
                keys = self._ids.get(old_id)
                if keys is not None:
                    keys.discard(old)
                    if not keys:
                        del self._ids[old_id]

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get(key)

    def keys(self, event_id: str) -> list[str]:
        with self._lock:
            return sorted(self._ids.get(event_id, ()))


class Ingest:
    def __init__(self, engine: Engine, metrics: Metrics, *, queue_size: int, recent: int,
                 max_depth: int = MAX_EVENT_DEPTH, max_event_skew: float = DEFAULT_MAX_FUTURE_SKEW) -> None:
        self.engine = engine
        self.max_event_skew = max_event_skew
        self.metrics = metrics
        self.max_depth = max_depth
        self.queue: asyncio.Queue[Queued] = asyncio.Queue(maxsize=queue_size)
        self.recent = RecentDecisions(recent)
        self.accepting = True
        self._worker: asyncio.Task[None] | None = None
        # The store's journal of accepted events, where it has one (SQLite, PostgreSQL, memory).
        self.journal: EventJournal | None = engine.store if hasattr(engine.store, "journal_event") else None  # type: ignore[assignment]
        self._replay: deque[Queued] = deque()
        # Rules that wait for a policy model run in the second stage, in a thread of their own; their
        # decision joins the first one in the recent decisions (GET /v1/decisions/{id}).
        self.slow = SlowStage(engine, self._second_stage_done)

    # ---- parsing ----
    def parse(self, raw: bytes, source: str) -> Event:
        """Parse an event body; malformed JSON is a 400 and a wrong shape a 422, each dead-lettered."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            self.reject(raw, f"not valid JSON: {error}", source)
            raise EventRejected(400, "malformed_json", f"the body is not valid JSON: {error}",
                                "send one JSON object with type, id and time") from None
        return self.parse_item(data, raw, source)

    def parse_item(self, data: Any, raw: bytes | None, source: str) -> Event:
        try:
            if not isinstance(data, dict):
                raise EventError(f"an event is a JSON object, got {type(data).__name__}")
            # Serving live: an event dated too far after this server's clock is refused.
            event = parse_event(data, max_depth=self.max_depth, now=time.time(), max_future_skew=self.max_event_skew)
            return dataclasses.replace(event, source=source)
        except EventError as error:
            self.reject(raw if raw is not None else dumps(data), str(error), source)
            raise EventRejected(422, "invalid_event", str(error),
                                'an event is {"type": "post", "id": "e1", "time": "2026-01-01T00:00:00Z", ...}'
                                ) from None

    def reject(self, raw: bytes, reason: str, source: str) -> None:
        self.engine.dead_letter(raw, reason, source)

    # ---- deciding ----
    def decide(self, event: Event, raw: bytes | None, source: str) -> Decision:
        """Decide one event; a field of the wrong type for the rules is a 422 and a dead letter."""
        started = time.perf_counter()
        try:
            decision = self.engine.decide(event)
        except FieldTypeError as error:
            self.reject(raw if raw is not None else dumps(event.data), str(error), source)
            self.recent.put(event.key, event.id, {"event_id": event.id, "status": "dead_letter", "reason": str(error)})
            raise EventRejected(422, "wrong_type", str(error),
                                "the rules read this field as another type; fix the event's field") from None
        except Exception as error:  # a bug costs one event, never the service: keep it to replay
            log.exception("internal error deciding event %s", event.id)
            reason = f"internal error: {type(error).__name__}: {error}"
            self.reject(raw if raw is not None else dumps(event.data), reason, source)
            self.recent.put(event.key, event.id, {"event_id": event.id, "status": "dead_letter", "reason": reason})
            raise EventRejected(500, "internal", reason, "the event is kept as a dead letter to replay") from None
        self.metrics.decide.observe(time.perf_counter() - started)
        self.recent.put(event.key, event.id, {"event_id": event.id, "status": "decided", "decision": decision})
        if decision.pending:
            self.slow.submit(event, decision)
        return decision

    def _second_stage_done(self, decision: Decision) -> None:
        # Joined by source and id: another source's event of the same id is another event.
        key = event_key(decision.source, decision.event_id)
        found = self.recent.get(key)
        entry: dict[str, Any] = dict(found) if found is not None and "decision" in found else {
            "event_id": decision.event_id, "status": "decided"}
        entry["second_stage"] = decision
        self.recent.put(key, decision.event_id, entry)

    def decide_quietly(self, event: Event, raw: bytes | None, source: str) -> dict[str, Any]:
        """Decide, turning a refusal into an error entry (batches report per event)."""
        try:
            return self.decide(event, raw, source).to_json()
        except EventRejected as error:
            return {"event_id": event.id, **error.body()}

    # ---- asynchronous mode ----
    def enqueue(self, event: Event, raw: bytes | None, source: str) -> None:
        """Accept an event to decide in the background. It is in the store's journal before this returns
        (so before the 202), and leaves the journal once decided: a killed process replays it on start."""
        if not self.accepting:
            raise ApiError(503, "shutting_down", "the service is shutting down", "retry on another instance")
        if self.queue.full():
            raise ApiError(503, "queue_full", f"the asynchronous queue is full ({self.queue.maxsize} events)",
                           "retry shortly, or send synchronously", headers={"Retry-After": "1"})
        body = raw if raw else dumps(event.data)
        journal_id = self.journal.journal_event(source, body, time.time()) if self.journal is not None else None
        self.queue.put_nowait(Queued(event, body, source, time.perf_counter(), journal_id))
        self.recent.put(event.key, event.id, {"event_id": event.id, "status": "queued"})

    def start(self) -> None:
        self._replay_journal()
        self._worker = asyncio.get_running_loop().create_task(self._drain(), name="vigil-async-events")
        self.slow.start()

    def _replay_journal(self) -> None:
        """Events accepted by an earlier process and never decided: decided first, oldest first."""
        if self.journal is None:
            return
        pending = self.journal.journal_pending()
        for journal_id, source, raw in pending:
            try:
                event = dataclasses.replace(parse_event(raw), source=source)
            except EventError as error:  # accepted once, so it parsed then; keep it rather than lose it
                self.reject(raw, f"journalled event no longer parses: {error}", source)
                self.journal.journal_done(journal_id)
                continue
            self._replay.append(Queued(event, raw, source, time.perf_counter(), journal_id))
            self.recent.put(event.key, event.id, {"event_id": event.id, "status": "queued"})
        if pending:
            log.info("replaying %d events accepted before the last stop and not yet decided", len(pending))

    def _decide_queued(self, item: Queued) -> None:
        try:
            self.decide(item.event, item.raw or None, item.source)
        except EventRejected:
            pass  # dead-lettered and recorded
        finally:
            self.metrics.queue_lag.observe(time.perf_counter() - item.accepted_at)
        if item.journal_id is not None and self.journal is not None:
            self.journal.journal_done(item.journal_id)

    async def _drain(self) -> None:
        while self._replay:
            self._decide_queued(self._replay.popleft())
            if len(self._replay) % 64 == 0:
                await asyncio.sleep(0)
        while True:
            item = await self.queue.get()
            try:
                self._decide_queued(item)
            finally:
                self.queue.task_done()
            if self.queue.empty() or self.queue.qsize() % 64 == 0:
                await asyncio.sleep(0)  # let requests in between long runs of queued events

    async def stop(self) -> None:
        """Stop accepting, decide everything accepted, then stop the worker."""
        self.accepting = False
        if self._worker is not None:
            if not self._worker.done():
                await self.queue.join()
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        await asyncio.to_thread(self.slow.close)  # finish the second stage of what was decided

    def outcome(self, event_id: str, source: str, readable: Callable[[str], bool] = lambda _source: True
                ) -> dict[str, Any] | None:
        """The outcome of `event_id` as sent by `source`; failing that, of the one source the caller may
        read (`readable`) that sent that id. Raises a 409 when several readable sources did and none is
        `source`; another source's event the caller may not read is as if unknown."""
        found = self.recent.get(event_key(source, event_id))
        if found is None:
            # A key is "source\x1fid" (Event.key), or the bare id for an event without a source.
            keys = [key for key in self.recent.keys(event_id) if readable(key[:max(0, len(key) - len(event_id) - 1)])]
            if len(keys) > 1:
                raise ApiError(409, "ambiguous_event", f"{len(keys)} sources sent an event {event_id!r}",
                               "add ?source=NAME, the name of the token that sent it")
            found = self.recent.get(keys[0]) if keys else None
        if found is not None and "decision" in found:
            out = {"event_id": event_id, "status": "decided", "decision": found["decision"].to_json()}
            if "second_stage" in found:
                out["second_stage"] = found["second_stage"].to_json()
            return out
        return found
