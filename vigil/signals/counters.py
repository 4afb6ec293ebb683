"""Windowed counters per entity, kept in memory and written to a StateStore once a second.

Semantics (docs/language.md, "Counters"): time comes from the events, at one-second resolution.
A sliding window of W seconds at second `s` holds what was added at seconds s-W+1 … s. The calendar
window `today` holds what was added on the current UTC day. The value a rule sees includes the event
being decided. An event later than the newest one for a key counts in the newest second.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from vigil.dsl.compile import CounterSpec
from vigil.stores.base import StateStore

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
        Updates are also summed into `pending` (by counter, key, second and value) for the store."""
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
                before = len(seen)
                value = _distinct_value(value)
                last = seen.get(value)
                if last is None or last < sec:
                    seen[value] = sec
                    queue.append((sec, value))
                if pending is not None:
                    pending[(cid, key, sec, value)] = 1.0
                return before, len(seen)

            def peek_distinct(key: str, sec: int) -> float:
                state = states.get(key)
                if state is None:
                    return 0
                seen, queue = state
                limit = sec - window
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
            if queue and queue[-1][0] >= sec:
                queue[-1][1] += amount
            else:
                queue.append([sec, amount])
            state[0] = total + amount
            if pending is not None:
                row = (cid, key, sec, "")
                pending[row] = pending.get(row, 0) + amount
            return total, total + amount

        def peek(key: str, sec: int) -> float:
            state = states.get(key)
            if state is None:
                return 0
            limit = sec - window
            return state[0] - sum(amount for s, amount in state[1] if s <= limit)  # type: ignore[no-any-return]

        return add, peek

    def _day_functions(self, states: dict[str, list[Any]], cid: str,
                       pending: Pending | None) -> tuple[Adder, Peeker]:
        distinct = self.spec.kind == "distinct"

        def add_day(key: str, sec: int, value: Any) -> tuple[float, float]:
            day = sec // 86400
            state = states.get(key)
            if state is None or state[0] != day:
                state = states[key] = [day, set() if distinct else 0]
            if distinct:
                value = _distinct_value(value)
                before = len(state[1])
                state[1].add(value)
                after: float = len(state[1])
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


class WindowCounters:
    """Every counter of the active rules set; `bind` switches rules versions without losing counts."""

    def __init__(self, store: StateStore | None = None, flush_interval: float = 1.0) -> None:
        self.store = store
        self.flush_interval = flush_interval
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
        if self.store is None:
            return
        latest = self.store.latest_counter_sec(counter.spec.cid)
        if latest is None:
            return
        since = latest - counter.window if counter.window is not None else (latest // 86400) * 86400 - 1
        add, _ = counter.functions(None)
        for _cid, key, sec, value, amount in self.store.load_counter_rows(counter.spec.cid, since):
            if counter.spec.kind == "distinct":
                add(key, sec, value)
            else:  # stored as REAL: give whole counts back as ints, as before the restart
                add(key, sec, int(amount) if float(amount).is_integer() else amount)

    def start(self) -> None:
        """Write the pending updates to the store every `flush_interval` seconds, in a background thread."""
        if self.store is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="vigil-counter-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        flushes = 0
        while not self._stop.wait(self.flush_interval):
            self.flush()
            flushes += 1
            if flushes % PRUNE_EVERY == 0:  # else the stored rows would grow for ever
                self.prune()

    def flush(self) -> int:
        """Write the pending updates, summed by counter, key, second and value; returns the rows written."""
        if self.store is None:
            return 0
        with self._lock:
            # Empty the dict in place: the closures hold a reference to this very dict.
            pending = list(self._pending.items())
            self._pending.clear()
        rows = [(cid, key, sec, value, amount) for (cid, key, sec, value), amount in pending]
        if rows:
            self.store.write_counter_rows(rows)
        return len(rows)

    def prune(self) -> None:
        """Drop stored rows no window can see any more."""
        if self.store is None:
            return
        for counter in self._counters.values():
            latest = self.store.latest_counter_sec(counter.spec.cid)
            if latest is None:
                continue
            window = counter.window if counter.window is not None else 86400
            self.store.prune_counter_rows(counter.spec.cid, latest - window)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()
