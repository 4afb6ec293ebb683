"""Windowed counters per entity, kept in memory and written to a StateStore once a second.

Semantics (docs/language.md, "Counters"): time comes from the events, at one-second resolution.
A sliding window of W seconds at second `s` holds what was added at seconds s-W+1 … s. The calendar
window `today` holds what was added on the current UTC day. The value a rule sees includes the event
being decided. Each entity key holds what the window ending at its newest event can see; an event
older than that newest one (a late event) counts at its own second, over what is held.

The working set is bounded: an entity key's state is read from the store when an event first needs it
(its stored rows replayed in the order written, as a restart does) and, over a store, at most
`max_keys` (counter, key) states stay in memory: the least recently used go once their updates are
written. Keys idle for over two windows are dropped from memory and store alike (`prune`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from vigil.dsl.compile import CounterSpec
from vigil.effects import DeadLetter
from vigil.events import DEFAULT_MAX_FUTURE_SKEW
from vigil.signals.seen import MaybeStored
from vigil.stores.base import CounterRow, FlushStatus, StateStore, idle_until

log = logging.getLogger("vigil.counters")

Adder = Callable[[str, int, Any], tuple[float, float]]
# Updates not yet written, summed: (counter id, entity key, second, distinct value or "") -> amount.
Pending = dict[tuple[str, str, int, str], float]

# Stored rows that no window can see any more are deleted every this many flushes.
PRUNE_EVERY = 60

# How many recent event ids each process remembers to recognise a redelivered event.
RECENT_EVENTS = 100_000
Peeker = Callable[[str, int], float]

# (counter, entity key) states kept in memory over a store: docs/operations.md, "Memory".
DEFAULT_COUNTER_CACHE_KEYS = 250_000


class _Hooks(NamedTuple):
    """How a counter's closures reach the working set: `load(key)` reads a key not held from the store
    (None without one), `lru` orders the held (counter id, key) states by last use (None: no eviction),
    each with the flush generation `generation[0]` in which it last changed."""

    load: Callable[[str], list[Any] | None] | None = None
    lru: OrderedDict[tuple[str, str], int] | None = None
    generation: list[int] | None = None


_NO_HOOKS = _Hooks()


def _distinct_value(value: Any) -> str:
    return value if type(value) is str else str(value)


class _Counter:
    """The state of one counter definition across all entity keys."""

    __slots__ = ("spec", "states", "window")

    def __init__(self, spec: CounterSpec) -> None:
        self.spec = spec
        self.states: dict[str, list[Any]] = {}
        self.window = int(spec.window) if spec.window is not None else None

    def functions(self, pending: Pending | None, hooks: _Hooks = _NO_HOOKS, *,
                  states: dict[str, list[Any]] | None = None) -> tuple[Adder, Peeker]:
        """Closures specialised to this counter's kind and window: the hot path of every event.
        Updates are also summed into `pending` (by counter, key, second and value) for the store; a key
        not held is read through `hooks.load`, and every change is noted in `hooks.lru`. (`states`: other
        states to work on than the counter's own, to replay a key's stored rows.)

        Each key holds its additions sorted by second. Every event first drops, from the oldest end, what
        its own window no longer sees; an event at or after the key's newest second is the fast path, an
        earlier (late) one is held and counted at its own second."""
        states = self.states if states is None else states
        cid = self.spec.cid
        load, lru, generation = hooks
        if self.window is None:
            return self._day_functions(states, cid, pending, hooks)
        window = self.window
        if self.spec.kind == "distinct":

            def add_distinct(key: str, sec: int, value: Any) -> tuple[float, float]:
                state = states.get(key)
                if state is None:
                    state = load(key) if load is not None else None
                    if state is None:
                        state = [{}, deque()]
                    states[key] = state
                if lru is not None:
                    slot = (cid, key)
                    lru[slot] = generation[0]  # type: ignore[index]
                    lru.move_to_end(slot)
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
                if state is None and load is not None:
                    state = load(key)
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
                state = load(key) if load is not None else None
                if state is None:
                    state = [0, deque()]
                states[key] = state
            if lru is not None:
                slot = (cid, key)
                lru[slot] = generation[0]  # type: ignore[index]
                lru.move_to_end(slot)
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
            if state is None and load is not None:
                state = load(key)
            if state is None or not state[1]:
                return 0
            queue = state[1]
            limit = sec - window
            held = state[0] - sum(amount for s, amount in queue if s <= limit)
            return held - _later_sum(queue, sec)[0] if sec < queue[-1][0] else held  # type: ignore[no-any-return]

        return add, peek

    def _day_functions(self, states: dict[str, list[Any]], cid: str, pending: Pending | None,
                       hooks: _Hooks) -> tuple[Adder, Peeker]:
        distinct = self.spec.kind == "distinct"
        load, lru, generation = hooks

        def add_day(key: str, sec: int, value: Any) -> tuple[float, float]:
            day = sec // 86400
            if distinct:
                value = _distinct_value(value)
            state = states.get(key)
            if state is None and load is not None:
                state = load(key)
                if state is not None:
                    states[key] = state
            if lru is not None:
                slot = (cid, key)
                lru[slot] = generation[0]  # type: ignore[index]
                lru.move_to_end(slot)
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
            if state is None and load is not None:
                state = load(key)
            if state is None or state[0] != sec // 86400:
                return 0
            return len(state[1]) if distinct else state[1]

        return add_day, peek_day


def _newest_second(counter: _Counter, state: list[Any]) -> int | None:
    """The newest second a key's state holds (None: nothing held); for `today`, a second of its day."""
    if counter.window is None:
        return int(state[0]) * 86400
    queue = state[1]
    return int(queue[-1][0]) if queue else None


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
    """Every counter of the active rules set; `bind` switches rules versions without losing counts.

    Over a store, each entity key's state is read from it when first needed and at most `max_keys`
    (counter, key) states stay in memory (None: no limit); without a store everything stays in memory,
    since nothing could be read back."""

    def __init__(self, store: StateStore | None = None, flush_interval: float = 1.0, *,
                 clock: Callable[[], float] = time.time,
                 max_keys: int | None = DEFAULT_COUNTER_CACHE_KEYS) -> None:
        if max_keys is not None and max_keys < 1:
            raise ValueError(f"max_keys must be at least 1 (or None for no limit), got {max_keys}")
        self.store = store
        self.flush_interval = flush_interval
        self.max_keys = max_keys
        self._clock = clock
        self.status = FlushStatus()
        # Per counter, the newest second written or loaded that is not beyond the wall clock: the time
        # after which keys idle for long are pruned (`prune`).
        self._newest: dict[str, int] = {}
        self._counters: dict[str, _Counter] = {}
        # New counters of a version being activated, read from the store by `prepare` and not yet bound.
        self._prepared: dict[str, _Counter] = {}
        self._pending: Pending = {}
        # Held while an event's updates are applied, while a key is read from the store, and while the
        # flusher takes the pending rows or drops idle keys, so no update falls between the flusher's copy
        # and its clearing. Reentrant: a key read during an update takes it again.
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.adders: list[Adder] = []
        self._recent: OrderedDict[str, dict[int, tuple[float, float]] | None] = OrderedDict()
        self.peekers: list[Peeker] = []
        # The held states by last use, each with the flush generation of its last change. A state may
        # leave memory once that generation is written (`_durable`): its rows are all in the store then.
        self._lru: OrderedDict[tuple[str, str], int] | None = OrderedDict() if store is not None else None
        self._generation = [0]
        self._durable = 0
        # The (counter id, key) pairs the store may hold rows of that memory does not (those it held at
        # start, those that left memory since): a key not among them is new, and is not looked up.
        self._maybe_stored = MaybeStored()

    def prepare(self, specs: list[CounterSpec]) -> None:
        """Read from the store what a new counter among `specs` needs (its newest second and the keys it
        has rows of) before `bind`. Called without the engine's lock: over a large store this is the slow
        part of an activation, and events go on being decided meanwhile. A counter of the running version
        is not touched, so this can run while that version decides events."""
        for spec in specs:
            if spec.cid in self._counters or spec.cid in self._prepared:
                continue
            counter = _Counter(spec)
            if self.store is not None:
                newest = self.store.latest_counter_sec(spec.cid, not_after=self._clock() + DEFAULT_MAX_FUTURE_SKEW)
                if newest is not None:
                    self._note_newest(spec.cid, newest)
                for key in self.store.counter_keys(spec.cid):  # keys only (about a byte each), no rows
                    self._maybe_stored.add((spec.cid, key))
            self._prepared[spec.cid] = counter

    def bind(self, specs: list[CounterSpec]) -> None:
        """Make `specs` the active counters (index i of the compiled rules is specs[i]). A counter whose
        definition is unchanged keeps its state; a new one reads each key from the store when needed.
        Fast when `prepare(specs)` ran first (the engine holds its lock here); reads the store otherwise."""
        self.prepare(specs)
        adders, peekers = [], []
        for spec in specs:
            counter = self._counters.get(spec.cid)
            if counter is None:
                counter = self._counters[spec.cid] = self._prepared.pop(spec.cid)
            if self.store is None:
                add, peek = counter.functions(None)
            else:
                add, peek = counter.functions(self._pending, _Hooks(self._loader(counter), self._lru, self._generation))
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
            lru = self._lru
            if lru is not None and self.max_keys is not None and len(lru) > self.max_keys:
                self._evict(lru, self.max_keys)
        recent[event_id] = results
        if len(recent) > RECENT_EVENTS:
            recent.popitem(last=False)
        return results

    def _evict(self, lru: OrderedDict[tuple[str, str], int], limit: int) -> None:
        """Drop the least recently used states beyond `limit` whose rows are all written; one changed
        since the last flush stays until the flush after it (the set is over the limit until then)."""
        durable = self._durable
        counters = self._counters
        maybe_stored = self._maybe_stored
        while len(lru) > limit:
            slot, generation = lru.popitem(last=False)
            if generation >= durable:
                lru[slot] = generation
                lru.move_to_end(slot, last=False)
                return
            counters[slot[0]].states.pop(slot[1], None)
            maybe_stored.add(slot)

    def held_keys(self) -> int:
        """How many (counter, entity key) states the working set holds now."""
        return sum(len(counter.states) for counter in self._counters.values())

    def _loader(self, counter: _Counter) -> Callable[[str], list[Any] | None]:
        """Read one key of `counter` from the store: its rows replayed in the order written, so it holds
        exactly what it held before it left memory (or before a restart). None if nothing is stored."""
        store, states, lru, lock = self.store, counter.states, self._lru, self._lock
        cid, distinct = counter.spec.cid, counter.spec.kind == "distinct"
        maybe_stored = self._maybe_stored
        assert store is not None

        def load(key: str) -> list[Any] | None:
            with lock:
                state = states.get(key)  # read meanwhile by another thread
                if state is not None:
                    return state
                if (cid, key) not in maybe_stored:
                    return None  # a key the store has never had: nothing to read
                rows = store.load_counter_key(cid, key)
                if not rows:
                    return None
                replayed: dict[str, list[Any]] = {}
                add, _ = counter.functions(None, states=replayed)
                for _cid, _key, sec, value, amount in rows:
                    if distinct:
                        add(key, sec, value)
                    else:  # stored as REAL: give whole counts back as ints, as before it was written
                        add(key, sec, int(amount) if float(amount).is_integer() else amount)
                state = replayed.get(key)
                if state is not None:
                    states[key] = state
                    if lru is not None:
                        lru[(cid, key)] = -1  # as stored: free to leave again
                return state

        return load

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
            taken = self._generation[0]  # every change made so far is in `pending`
            self._generation[0] += 1
        rows: list[CounterRow] = []
        for (cid, key, sec, value), amount in pending:
            row, problem = _storable(cid, key, sec, value, amount)
            if problem is not None:
                self._set_aside((cid, key, sec, value, amount), problem)
                continue
            rows.append(row)
        if not rows:
            self._durable = taken + 1
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
        self._durable = taken + 1  # the states changed up to `taken` may leave memory now
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
        newest row cannot see; and every row of keys idle for over two windows (whose newest second, or
        for `today` the end of its day, is at or before the counter's newest second, see `_note_newest`,
        less two windows, or a window and the skew when that is longer). Those keys leave memory too
        (once their rows are written), so that what memory holds is what the store would give back."""
        if self.store is None:
            return
        for counter in list(self._counters.values()):
            cid = counter.spec.cid
            span = counter.window if counter.window is not None else 86400
            newest = self._newest.get(cid)
            before = newest - span - max(span, int(DEFAULT_MAX_FUTURE_SKEW)) if newest is not None else -(2**62)
            self.store.prune_counter_rows(cid, counter.window, before)
            self._drop_idle(counter, before)

    def _drop_idle(self, counter: _Counter, before: int) -> None:
        lru, cid = self._lru, counter.spec.cid
        with self._lock:
            durable = self._durable
            idle = [key for key, state in counter.states.items()
                    if idle_until(_newest_second(counter, state), counter.window) <= before
                    and (lru is None or lru.get((cid, key), -1) < durable)]
            for key in idle:
                self._maybe_stored.add((cid, key))  # its rows were pruned: a look-up finds none, or a late one
                del counter.states[key]
                if lru is not None:
                    lru.pop((cid, key), None)

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
