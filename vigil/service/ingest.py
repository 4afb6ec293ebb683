"""Events in: parse, decide, dead-letter, and the asynchronous queue. The HTTP routes are thin over this.

Parsing happens in the event loop; deciding, dead letters and the journal happen in the engine threads
(engine_threads.py), so that neither a costly event nor a store write ever blocks the loop. Each event
has a deadline (`event_deadline`): one still waiting for a thread then is refused (503, nothing applied),
one still being decided gets 504 and its decision later at GET /v1/decisions/{id}. Events accepted
asynchronously wait in a bounded queue that one background task drains, in order; at shutdown the
queue is drained before the engine closes, so an accepted event is never dropped.
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
from typing import Any, TypeVar

import orjson

from vigil.dsl.runtime import FieldTypeError
from vigil.effects import Decision
from vigil.engine import Engine
from vigil.events import DEFAULT_MAX_FUTURE_SKEW, MAX_EVENT_DEPTH, Event, EventError, event_key, parse_event
from vigil.jsonout import dumps
from vigil.record.writer import answered_together
from vigil.service.engine_threads import DEFAULT_EVENT_DEADLINE, EngineThreads, NotStarted, StillRunning
from vigil.service.errors import ApiError
from vigil.service.metrics import Metrics
from vigil.stages import SlowStage
from vigil.stores.base import EventJournal

log = logging.getLogger("vigil.service.ingest")
R = TypeVar("R")


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

    def put(self, key: str, event_id: str, outcome: dict[str, Any], *, unless_decided: bool = False) -> None:
        """Record an outcome; with `unless_decided`, only while no decision is recorded for the key."""
        with self._lock:
            if unless_decided and "decision" in self._items.get(key, {}):
                return
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
                 max_depth: int = MAX_EVENT_DEPTH, max_event_skew: float = DEFAULT_MAX_FUTURE_SKEW,
                 threads: EngineThreads | None = None, event_deadline: float = DEFAULT_EVENT_DEADLINE,
                 second_stage_queue: int = 10_000, slow: SlowStage | None = None) -> None:
        self.engine = engine
        self.threads = threads if threads is not None else EngineThreads()
        self.event_deadline = event_deadline
        self.max_event_skew = max_event_skew
        self.metrics = metrics
        self.max_depth = max_depth
        self.queue: asyncio.Queue[Queued] = asyncio.Queue(maxsize=queue_size)
        self.recent = RecentDecisions(recent)
        self.accepting = True
        self._worker: asyncio.Task[None] | None = None
        self._journalling = 0  # events accepted asynchronously whose journal row is being written
        # The store's journal of accepted events, where it has one (SQLite, PostgreSQL, memory).
        self.journal: EventJournal | None = engine.store if hasattr(engine.store, "journal_event") else None  # type: ignore[assignment]
        self._replay: deque[Queued] = deque()
        # Rules that wait for a policy model run in the second stage, in a thread of their own; their
        # decision joins the first one in the recent decisions (GET /v1/decisions/{id}).
        # `slow` is the runtime's stage (vigil.runtime), whose owner passes its decisions to
        # `second_stage_done`.
        self.slow = slow if slow is not None else SlowStage(engine, self.second_stage_done,
                                                            max_queue=second_stage_queue)
        metrics.second_stage_depth.set_function(lambda: self.slow.depth)

    # ---- parsing ----
    async def parse(self, raw: bytes, source: str) -> Event:
        """Parse an event body; malformed JSON is a 400 and a wrong shape a 422, each dead-lettered."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            await self.reject(raw, f"not valid JSON: {error}", source)
            raise EventRejected(400, "malformed_json", f"the body is not valid JSON: {error}",
                                "send one JSON object with type, id and time") from None
        return await self.parse_item(data, raw, source)

    async def parse_item(self, data: Any, raw: bytes | None, source: str) -> Event:
        try:
            return self._parse_item(data, source)
        except EventError as error:
            await self.reject(raw if raw is not None else dumps(data), str(error), source)
            raise EventRejected(422, "invalid_event", str(error),
                                'an event is {"type": "post", "id": "e1", "time": "2026-01-01T00:00:00Z", ...}'
                                ) from None

    def _parse_item(self, data: Any, source: str) -> Event:
        if not isinstance(data, dict):
            raise EventError(f"an event is a JSON object, got {type(data).__name__}")
        # Serving live: an event dated too far after this server's clock is refused.
        event = parse_event(data, max_depth=self.max_depth, now=time.time(), max_future_skew=self.max_event_skew)
        return dataclasses.replace(event, source=source)

    async def reject(self, raw: bytes, reason: str, source: str) -> None:
        """Keep a refused body as a dead letter (a store write: in an engine thread)."""
        await self.threads.run(self.reject_now, raw, reason, source)

    def reject_now(self, raw: bytes, reason: str, source: str) -> None:
        self.engine.dead_letter(raw, reason, source)

    # ---- deciding ----
    async def decide(self, event: Event, raw: bytes | None, source: str) -> Decision:
        """Decide one event in an engine thread within the event deadline (module docstring)."""
        return await self._by_deadline(f"event {event.id!r}", [event], self.decide_now, event, raw, source,
                                       time.monotonic() + self.event_deadline)

    async def decide_batch(self, events: list[Event], source: str) -> list[dict[str, Any]]:
        """Decide events in order in one engine thread, sharing one deadline; an outcome (the decision's
        JSON, or an error entry) per event."""
        def run(deadline: float) -> list[dict[str, Any]]:
            with answered_together(self.engine):  # the record: one commit for the batch, not one per event
                return [self.decide_quietly(event, None, source, deadline) for event in events]

        return await self._by_deadline(f"a batch of {len(events)} events", events, run,
                                       time.monotonic() + self.event_deadline)

    async def _by_deadline(self, what: str, events: list[Event], function: Callable[..., R], *args: Any) -> R:
        try:
            return await self.threads.run_by(self.event_deadline, function, *args)
        except NotStarted:
            self.metrics.deadline_exceeded.labels("not_started").inc()
            raise ApiError(503, "engine_busy", f"{what} waited {self.event_deadline:g} s for an engine thread "
                           "and was not decided (nothing was applied)", "retry shortly",
                           headers={"Retry-After": "1"}) from None
        except StillRunning:
            self.metrics.deadline_exceeded.labels("still_running").inc()
            for event in events:
                self.recent.put(event.key, event.id, {"event_id": event.id, "status": "deciding"}, unless_decided=True)
            where = f"/v1/decisions/{events[0].id}" if len(events) == 1 else "/v1/decisions/{event_id}"
            raise ApiError(504, "decision_timeout", f"{what} took longer than the event deadline "
                           f"({self.event_deadline:g} s) to decide; it is still being decided, and its slow signals "
                           "answer unknown from now on", f"read the decision at {where} shortly",
                           headers={"Location": where} if len(events) == 1 else None) from None

    def decide_now(self, event: Event, raw: bytes | None, source: str, deadline: float | None = None) -> Decision:
        """Decide one event in this thread; a field of the wrong type for the rules is a 422 and a dead
        letter. An event with second-stage rules takes its place in that stage's queue first: when it is
        full, the event is refused (503) before anything is applied."""
        started = time.perf_counter()
        reserved = False
        if self.engine.slow_pending(event):
            if not self.slow.reserve():
                self.metrics.second_stage_refused.inc()
                raise ApiError(503, "second_stage_full", f"the second stage's queue is full "
                               f"({self.slow.max_queue} events waiting for a policy model); the event was not decided",
                               "retry shortly, or raise --second-stage-queue", headers={"Retry-After": "1"})
            reserved = True
        try:
            decision = self._decide(event, raw, source, deadline)
        except BaseException:
            if reserved:
                self.slow.release()
            raise
        self.metrics.decide.observe(time.perf_counter() - started)
        self.recent.put(event.key, event.id, {"event_id": event.id, "status": "decided", "decision": decision})
        if decision.pending:
            if reserved:
                self.slow.submit_reserved(event, decision)
            elif not self.slow.reserve():  # a version with slow rules became active meanwhile
                self.metrics.second_stage_refused.inc()
                self.reject_now(dumps(event.data), "the second stage's queue was full: its slow rules did not run",
                                source)
            else:
                self.slow.submit_reserved(event, decision)
        elif reserved:
            self.slow.release()
        return decision

    def _decide(self, event: Event, raw: bytes | None, source: str, deadline: float | None) -> Decision:
        try:
            return self.engine.decide(event, deadline=deadline)
        except FieldTypeError as error:
            self.reject_now(raw if raw is not None else dumps(event.data), str(error), source)
            self.recent.put(event.key, event.id, {"event_id": event.id, "status": "dead_letter", "reason": str(error)})
            raise EventRejected(422, "wrong_type", str(error),
                                "the rules read this field as another type; fix the event's field") from None
        except Exception as error:  # a bug costs one event, never the service: keep it to replay
            log.exception("internal error deciding event %s", event.id)
            reason = f"internal error: {type(error).__name__}: {error}"
            self.reject_now(raw if raw is not None else dumps(event.data), reason, source)
            self.recent.put(event.key, event.id, {"event_id": event.id, "status": "dead_letter", "reason": reason})
            raise EventRejected(500, "internal", reason, "the event is kept as a dead letter to replay") from None

    def second_stage_done(self, decision: Decision) -> None:
        # Joined by source and id: another source's event of the same id is another event.
        key = event_key(decision.source, decision.event_id)
        found = self.recent.get(key)
        entry: dict[str, Any] = dict(found) if found is not None and "decision" in found else {
            "event_id": decision.event_id, "status": "decided"}
        entry["second_stage"] = decision
        self.recent.put(key, decision.event_id, entry)

    def decide_quietly(self, event: Event, raw: bytes | None, source: str,
                       deadline: float | None = None) -> dict[str, Any]:
        """Decide, turning a refusal into an error entry (batches report per event)."""
        try:
            return self.decide_now(event, raw, source, deadline).to_json()
        except ApiError as error:
            return {"event_id": event.id, **error.body()}

    # ---- asynchronous mode ----
    async def enqueue(self, event: Event, raw: bytes | None, source: str) -> None:
        """Accept an event to decide in the background. It is in the store's journal before this returns
        (so before the 202), and leaves the journal once decided: a killed process replays it on start."""
        if not self.accepting:
            raise ApiError(503, "shutting_down", "the service is shutting down", "retry on another instance")
        # Places are counted with the events still being journalled, so the queue has room for each of them.
        if self.queue.qsize() + self._journalling >= self.queue.maxsize:
            raise ApiError(503, "queue_full", f"the asynchronous queue is full ({self.queue.maxsize} events)",
                           "retry shortly, or send synchronously", headers={"Retry-After": "1"})
        body = raw if raw else dumps(event.data)
        self._journalling += 1
        try:
            journal_id = (await self.threads.run(self.journal.journal_event, source, body, time.time())
                          if self.journal is not None else None)
        finally:
            self._journalling -= 1
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
                self.reject_now(raw, f"journalled event no longer parses: {error}", source)
                self.journal.journal_done(journal_id)
                continue
            self._replay.append(Queued(event, raw, source, time.perf_counter(), journal_id))
            self.recent.put(event.key, event.id, {"event_id": event.id, "status": "queued"})
        if pending:
            log.info("replaying %d events accepted before the last stop and not yet decided", len(pending))

    def _decide_queued(self, item: Queued) -> None:
        try:
            self.decide_now(item.event, item.raw or None, item.source, time.monotonic() + self.event_deadline)
        except EventRejected:
            pass  # dead-lettered and recorded
        except ApiError as error:  # the second stage is full: keep the event, with the reason, to replay
            self.reject_now(item.raw or dumps(item.event.data), error.message, item.source)
            self.recent.put(item.event.key, item.event.id, {"event_id": item.event.id, "status": "dead_letter",
                                                            "reason": error.message})
        finally:
            self.metrics.queue_lag.observe(time.perf_counter() - item.accepted_at)
        if item.journal_id is not None and self.journal is not None:
            self.journal.journal_done(item.journal_id)

    async def _drain(self) -> None:
        """Decide accepted events one at a time, in order, in the engine threads."""
        while self._replay:
            await self.threads.run(self._decide_queued, self._replay.popleft())
        while True:
            item = await self.queue.get()
            try:
                await self.threads.run(self._decide_queued, item)
            finally:
                self.queue.task_done()

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
