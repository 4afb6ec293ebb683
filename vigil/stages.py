"""The second stage: rules that need a slow signal (a policy model behind an HTTP API).

The first stage decides every event at once from the fast signals. Events with slow rules to run come
here; the stage asks the policy models in batches, evaluates the slow rules, applies their effects and
hands a stage-2 decision (same event id, verdict upgraded if a slow rule gives a stronger one) to a
callback. A model that is slow or down answers "unknown": the rule does not fire, the event keeps its
first decision, and the policy client's retry queue keeps the item for a later pass.

The queue is bounded. `submit` waits for room (back-pressure for `vigil run` and the workers); the
service, which must never wait, reserves room before it decides an event (`reserve`) and refuses the
event when there is none (503 with Retry-After), so no first-stage effect is applied for an event whose
second stage could not be queued.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from vigil.effects import Decision
from vigil.engine import Engine
from vigil.events import Event

log = logging.getLogger("vigil.stages")

Request = tuple[str, str]  # (policy name, text)
MAX_ROUNDS = 4  # a condition can ask a second policy only once the first answered; bounded


class SlowStage:
    def __init__(self, engine: Engine, on_decision: Callable[[Decision], None], *, batch_size: int = 32,
                 max_queue: int = 100_000) -> None:
        if max_queue < 1:
            raise ValueError(f"the second stage's queue holds at least 1 event, got {max_queue}")
        self.engine = engine
        self.on_decision = on_decision
        self.batch_size = batch_size
        self.max_queue = max_queue
        # Unbounded itself: `_free` counts the places left, taken by `reserve` or `submit` and given back
        # when an event leaves the queue, so an event that reserved a place always finds it.
        self._queue: queue.Queue[tuple[Event, Decision] | None] = queue.Queue()
        self._free = max_queue
        self._space = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def depth(self) -> int:
        """Events queued (or with a place reserved) and not yet taken by the stage."""
        return self.max_queue - self._free

    def submit(self, event: Event, first: Decision) -> None:
        """Queue an event whose stage-1 decision is pending (blocks when the queue is full: back-pressure
        rather than dropping)."""
        self._take_place(wait=True)
        self._queue.put((event, first))

    def reserve(self) -> bool:
        """Take a place in the queue for an event about to be decided, without waiting; False when full."""
        return self._take_place(wait=False)

    def submit_reserved(self, event: Event, first: Decision) -> None:
        """Queue an event into the place `reserve` took."""
        self._queue.put((event, first))

    def release(self) -> None:
        """Give back a place (one `reserve` took that no event needed, or one an event left)."""
        with self._space:
            self._free += 1
            self._space.notify()

    def _take_place(self, *, wait: bool) -> bool:
        with self._space:
            while self._free == 0:
                if not wait:
                    return False
                self._space.wait()
            self._free -= 1
            return True

    def run_batch(self, batch: list[tuple[Event, Decision]]) -> list[Decision]:
        """Decide the slow rules of a batch of events; returns their stage-2 decisions."""
        answers: dict[Request, bool | None] = {}
        for _ in range(MAX_ROUNDS):
            wanted: set[Request] = set()

            def collect(name: str, text: str, wanted: set[Request] = wanted) -> bool | None:
                key = (name, text)
                if key in answers:
                    return answers[key]
                wanted.add(key)
                return None

            for event, _first in batch:
                self.engine.probe_slow(event, collect)
            if not wanted:
                break
            answers.update(self.engine.signals.policies(sorted(wanted)))
        decisions = []
        for event, first in batch:
            decision = self.engine.decide_slow(event, lambda name, text: answers.get((name, text)), first)
            decisions.append(decision)
            self.on_decision(decision)
        return decisions

    def drain(self) -> int:
        """Run everything queued now, in the caller's thread; returns how many events it decided."""
        done = 0
        while True:
            batch = self._take()
            if not batch:
                return done
            self.run_batch(batch)
            done += len(batch)

    def _take(self) -> list[tuple[Event, Decision]]:
        batch: list[tuple[Event, Decision]] = []
        while len(batch) < self.batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.release()
                batch.append(item)
        return batch

    def start(self) -> None:
        """Run batches in a background thread until `close`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="vigil-slow-stage", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            self.release()
            batch = [item]
            while len(batch) < self.batch_size:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # let the outer loop see the stop marker
                    break
                self.release()
                batch.append(more)
            try:
                self.run_batch(batch)
            except Exception:  # keep the stage alive; the events keep their first decisions
                log.exception("second stage failed for %d events", len(batch))

    def close(self) -> None:
        """Finish what is queued, then stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        else:
            self.drain()
