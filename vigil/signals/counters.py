"""Windowed counters per entity, kept in memory and written to a StateStore once a second.

Semantics (docs/language.md, "Counters"): time comes from the events, at one-second resolution.
A sliding window of W seconds at second `s` holds what was added at seconds s-W+1 … s. The calendar
window `today` holds what was added on the current UTC day. The value a rule sees includes the event
being decided. Each entity key holds what the window ending at its newest event can see; an event
older than that newest one (a late event) counts at its own second, over what is held.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import orjson

from vigil.dsl.compile import CounterSpec
from vigil.effects import DeadLetter
from vigil.events import DEFAULT_MAX_FUTURE_SKEW
from vigil.stores.base import CounterRow, FlushStatus, StateStore

log = logging.getLogger("vigil.counters")

Adder = Callable[[str, int, Any], tuple[float, float]]
# Updates not yet written, summed: (counter id, entity key, second, distinct value or "") -> amount.
Pending = dict[tuple[str, str, int, str], float]

# Stored rows that no window can see any more are deleted every this many flushes.
PRUNE_EVERY = 60

# How many recent event ids each process remembers to recognise a redelivered event.
RECENT_EVENTS = 100_000
Peeker = Callable[[str, int], float]


def _distinct_value(value: Any) -> str:
    return value if type(value) is str else str(value)


class _Counter:
    """The state of one counter definition across all entity keys."""

    __slots__ = ("spec", "states", "window")

    def __init__(self, spec: CounterSpec) -> None:
        self.spec = spec
        self.states: dict[str, list[Any]] = {}
        self.window = int(spec.window) if spec.window is not None else None

    def functions(self, pending: Pending | None) -> tuple[Adder, Peeker]:
        """Closures specialised to this counter's kind and window: the hot path of every event.
        Updates are also summed into `pending` (by counter, key, second and value) for the store.

        Each key holds its additions sorted by second. Every event first drops, from the oldest end, what
        its own window no longer sees; an event at or after the key's newest second is the fast path, an
        earlier (late) one is held and counted at its own second."""
        states, cid = self.states, self.spec.cid
        if self.window is None:
            return self._day_functions(states, cid, pending)
        window = self.window
        if self.spec.kind == "distinct":

            def add_distinct(key: str, sec: int, value: Any) -> tuple[float, float]:
                state = states.get(key)
                if state is None:
                    state = states[key] = [{}, deque()]
                seen, queue = state
                limit = sec - window
                while queue and queue[0][0] <= limit:
                    old_sec, old_value = queue.popleft()
                    if seen.get(old_value) == old_sec:
                        del seen[old_value]
                value = _distinct_value(value)
                if not queue or queue[-1][0] <= sec:
                    before = len(seen)
                    last = seen.get(value)
                    if last is None or last < sec:
                        seen[value] = sec
                        queue.append((sec, value))
                    after = len(seen)
                else:
                    before, after = _add_late_distinct(seen, queue, sec, value)
                if pending is not None:
                    pending[(cid, key, sec, value)] = 1.0
                return before, after

            def peek_distinct(key: str, sec: int) -> float:
                state = states.get(key)
                if state is None or not state[1]:
                    return 0
                seen, queue = state
                limit = sec - window
                if sec < queue[-1][0]:
                    return len({v for s, v in queue if limit < s <= sec})
                return len(seen) - len({v for s, v in queue if s <= limit and seen.get(v) == s})

            return add_distinct, peek_distinct

        def add(key: str, sec: int, amount: Any) -> tuple[float, float]:
            state = states.get(key)
            if state is None:
                state = states[key] = [0, deque()]
            queue = state[1]
            total = state[0]
            limit = sec - window
            while queue and queue[0][0] <= limit:
                total -= queue.popleft()[1]
            if not queue or queue[-1][0] <= sec:
                if queue and queue[-1][0] == sec:
                    queue[-1][1] += amount
                else:
                    queue.append([sec, amount])
                before = total
            else:  # late: what is held after its second is outside its window
                later, index = _later_sum(queue, sec)
                before = total - later
                if index > 0 and queue[index - 1][0] == sec:
                    queue[index - 1][1] += amount
                else:
                    queue.insert(index, [sec, amount])
            state[0] = total + amount
            if pending is not None:
                row = (cid, key, sec, "")
                pending[row] = pending.get(row, 0) + amount
            return before, before + amount

        def peek(key: str, sec: int) -> float:
            state = states.get(key)
            if state is None or not state[1]:
                return 0
            queue = state[1]
            limit = sec - window
            held = state[0] - sum(amount for s, amount in queue if s <= limit)
            return held - _later_sum(queue, sec)[0] if sec < queue[-1][0] else held  # type: ignore[no-any-return]

        return add, peek

    def _day_functions(self, states: dict[str, list[Any]], cid: str,
                       pending: Pending | None) -> tuple[Adder, Peeker]:
        distinct = self.spec.kind == "distinct"

        def add_day(key: str, sec: int, value: Any) -> tuple[float, float]:
            day = sec // 86400
            if distinct:
                value = _distinct_value(value)
            state = states.get(key)
            if state is not None and state[0] > day:  # a late event of a day no longer held: counted alone
                before: float = 0
                after: float = 1 if distinct else value
            else:
                if state is None or state[0] != day:
                    state = states[key] = [day, set() if distinct else 0]
                if distinct:
                    before = len(state[1])
                    state[1].add(value)
                    after = len(state[1])
                else:
                    before = state[1]
                    after = state[1] = state[1] + value
            if pending is not None:
                if distinct:
                    pending[(cid, key, sec, value)] = 1.0
                else:
                    row = (cid, key, sec, "")
                    pending[row] = pending.get(row, 0) + value
            return before, after

        def peek_day(key: str, sec: int) -> float:
            state = states.get(key)
            if state is None or state[0] != sec // 86400:
                return 0
            return len(state[1]) if distinct else state[1]

        return add_day, peek_day


def _later_sum(queue: deque[list[Any]], sec: int) -> tuple[Any, int]:
    """The sum of the held amounts after `sec`, added from the newest back (RedisCounters adds in the
    same order, so both give the same float), and the index where second `sec` belongs."""
    later: Any = 0
    index = len(queue)
    while index > 0 and queue[index - 1][0] > sec:
        index -= 1
        later += queue[index][1]
    return later, index


def _add_late_distinct(seen: dict[str, int], queue: deque[tuple[int, str]], sec: int,
                       value: str) -> tuple[int, int]:
    """Hold a late value at its own second; returns the window's distinct count before and after
    (the oldest end was already dropped to its window, so what is held up to `sec` is inside it)."""
    inside = set()
    index = 0
    present = False
    for index, (s, v) in enumerate(queue):
        if s > sec:
            break
        inside.add(v)
        present = present or (s == sec and v == value)
    before = len(inside)
    if not present:
        queue.insert(index, (sec, value))
        if seen.get(value, sec - 1) < sec:
            seen[value] = sec
    return before, before + (value not in inside)


class WindowCounters:
    """Every counter of the active rules set; `bind` switches rules versions without losing counts."""

    def __init__(self, store: StateStore | None = None, flush_interval: float = 1.0, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self._clock = clock
        self.status = FlushStatus()
        # Per counter, the newest second written or loaded that is not beyond the wall clock: the time
        # after which keys idle for long are pruned (`prune`).
        self._newest: dict[str, int] = {}
        self._counters: dict[str, _Counter] = {}
        self._pending: Pending = {}
        # Held while an event's updates are applied, and while the flusher takes the pending rows, so
        # no update falls between the flusher's copy and its clearing.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.adders: list[Adder] = []
        self._recent: OrderedDict[str, dict[int, tuple[float, float]] | None] = OrderedDict()
        self.peekers: list[Peeker] = []

    def bind(self, specs: list[CounterSpec]) -> None:
        """Make `specs` the active counters (index i of the compiled rules is specs[i]). A counter whose
        definition is unchanged keeps its state; a new one is loaded from the store."""
        adders, peekers = [], []
        for spec in specs:
            counter = self._counters.get(spec.cid)
            if counter is None:
                counter = self._counters[spec.cid] = _Counter(spec)
                self._load(counter)
            add, peek = counter.functions(self._pending if self.store is not None else None)
            adders.append(add)
            peekers.append(peek)
        self.adders, self.peekers = adders, peekers
        # Remembered answers are by counter position, which a new rules version changes.
        for event_id in self._recent:
            self._recent[event_id] = None

    def add_many(self, event_id: str, sec: int, updates: list[tuple[int, str, Any]]) -> dict[int, tuple[float, float]]:
        """Apply one event's counter updates: (counter index, entity key, amount or value) each.
        Returns (before, after) per counter index.

        An event id seen among the last RECENT_EVENTS is a redelivery: it adds nothing and gets the
        answers its first delivery got, so it is decided the same way."""
        recent = self._recent
        if event_id in recent:
            seen = recent[event_id]
            if seen is not None:
                return seen
            # Seen under an earlier rules version: add nothing, answer with the counters as they stand.
            current: dict[int, tuple[float, float]] = {}
            for index, key, _value in updates:
                value = self.peekers[index](key, sec)
                current[index] = (value, value)
            return current
        adders = self.adders
        with self._lock:
            results = {index: adders[index](key, sec, value) for index, key, value in updates}
        recent[event_id] = results
        if len(recent) > RECENT_EVENTS:
            recent.popitem(last=False)
        return results

    def _load(self, counter: _Counter) -> None:
        """Rebuild a counter from the store: every stored row, replayed by second, so each key holds
        exactly what it held before (no counter-wide cut-off: one key's future row cannot hide others')."""
        if self.store is None:
            return
        add, _ = counter.functions(None)
        cid = counter.spec.cid
        for _cid, key, sec, value, amount in self.store.load_counter_rows(cid, None):
            self._note_newest(cid, sec)
            if counter.spec.kind == "distinct":
                add(key, sec, value)
            else:  # stored as REAL: give whole counts back as ints, as before the restart
                add(key, sec, int(amount) if float(amount).is_integer() else amount)

    def _note_newest(self, cid: str, sec: int) -> None:
        """The counter's newest second, ignoring any beyond the wall clock and the allowed skew (no live
        event can be there; a replayed one dated in the future must not expire every other key)."""
        if sec <= self._clock() + DEFAULT_MAX_FUTURE_SKEW and sec > self._newest.get(cid, sec - 1):
            self._newest[cid] = sec

    def start(self) -> None:
        """Write the pending updates to the store every `flush_interval` seconds, in a background thread."""
        if self.store is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="vigil-counter-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """The flusher: it never stops before `close`. A failed write is kept for the next flush and
        shows in `flush_status` (/readyz, /metrics) until a write succeeds."""
        flushes = 0
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
                flushes += 1
                if flushes % PRUNE_EVERY == 0:  # else the stored rows would grow for ever
                    self.prune()
            except Exception:  # flush records store errors itself; anything else is a bug: log it, go on
                log.exception("counter flusher: unexpected error; it goes on")

    def flush(self) -> int:
        """Write the pending updates, summed by counter, key, second and value; returns the rows written.

        A row no store can hold (a second outside 64 bits, an amount that is not a finite number, text
        that is not valid Unicode) is set aside as a dead letter with its reason; the rest is written. If
        the store refuses the write, the rows go back to the pending ones and the next flush tries again."""
        if self.store is None:
            return 0
        with self._lock:
            # Empty the dict in place: the closures hold a reference to this very dict.
            pending = list(self._pending.items())
            self._pending.clear()
        rows: list[CounterRow] = []
        for (cid, key, sec, value), amount in pending:
            row, problem = _storable(cid, key, sec, value, amount)
            if problem is not None:
                self._set_aside((cid, key, sec, value, amount), problem)
                continue
            rows.append(row)
        if not rows:
            return 0
        try:
            self.store.write_counter_rows(rows)
        except Exception as error:  # noqa: BLE001 - whatever the store raises: keep the rows, say so, retry
            with self._lock:
                for cid, key, sec, value, amount in rows:
                    slot = (cid, key, sec, value)
                    self._pending[slot] = self._pending.get(slot, 0) + amount  # distinct: amount unused
            self.status.failures += 1
            self.status.last_error = f"{type(error).__name__}: {error}"
            self.status.waiting = len(self._pending)
            log.warning("counter flush failed (%s rows kept for the next try): %s", len(rows), self.status.last_error)
            return 0
        self.status.last_error = ""
        self.status.waiting = 0
        for row in rows:
            self._note_newest(row[0], row[2])
        return len(rows)

    def _set_aside(self, row: tuple[str, str, Any, str, Any], reason: str) -> None:
        self.status.set_aside += 1
        log.warning("counter row set aside: %s", reason)
        raw = orjson.dumps({"counter": row[0], "key": _printable(row[1]), "second": repr(row[2]),
                            "value": _printable(row[3]), "amount": repr(row[4])})
        try:
            self.store.add_dead_letter(DeadLetter(f"counter update not stored: {reason}", raw,  # type: ignore[union-attr]
                                                  "counters", self._clock()))
        except Exception as error:  # noqa: BLE001 - the count in flush_status still shows it
            log.warning("could not dead-letter a counter row: %s: %s", type(error).__name__, error)

    def flush_status(self) -> FlushStatus:
        return dataclasses.replace(self.status)

    def prune(self) -> None:
        """Drop stored rows no window can see any more: per key, those the window ending at the key's
        newest row cannot see; and those of keys idle for over two windows (the counter's newest second,
        see `_note_newest`, less two windows, or a window and the skew when that is longer)."""
        if self.store is None:
            return
        for counter in self._counters.values():
            cid = counter.spec.cid
            span = counter.window if counter.window is not None else 86400
            newest = self._newest.get(cid)
            before = newest - span - max(span, int(DEFAULT_MAX_FUTURE_SKEW)) if newest is not None else -(2**62)
            self.store.prune_counter_rows(cid, counter.window, before)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()


_INT64 = 2**63


def _storable(cid: str, key: str, sec: Any, value: str, amount: Any) -> tuple[CounterRow, str | None]:
    """The row as stores take it (amounts as floats), or why no store can hold it."""
    row: CounterRow = (cid, key, sec, value, 0.0)
    if type(sec) is not int or not -_INT64 <= sec < _INT64:
        return row, f"second {repr(sec)[:24]} is outside the 64-bit range (an event time far out of range)"
    try:
        number = float(amount)
    except (OverflowError, TypeError, ValueError):
        return row, f"amount {amount!r} is not a number a store can hold"
    if not math.isfinite(number):
        return row, f"amount {amount!r} is not a finite number"
    for name, text in (("key", key), ("value", value)):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return row, f"the {name} {_printable(text)!r} is not valid Unicode text (a lone surrogate)"
    return (cid, key, sec, value, number), None


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
