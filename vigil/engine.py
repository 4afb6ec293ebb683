"""The engine: one compiled rules set, the state it reads and writes, and a decision per event."""

from __future__ import annotations

import contextlib
import threading
import time as wall
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from vigil.dsl import ast, runtime
from vigil.dsl.builtins import BUILTIN_SOURCE, Function, Functions
from vigil.dsl.compile import CompiledRules, function_local
from vigil.dsl.loader import RuleSet
from vigil.effects import (
    MAX_PARAM_BYTES,
    VERDICT_RANK,
    DeadLetter,
    Decision,
    Effect,
    LabelEffect,
    OutboxMessage,
    OutputEffect,
    RuleHit,
    explained_value,
    param_value,
)
from vigil.events import Event, EventError, parse_event
from vigil.signals.counters import DEFAULT_COUNTER_CACHE_KEYS, WindowCounters
from vigil.signals.labels import DEFAULT_LABEL_CACHE_ENTITIES, RULE, Labels
from vigil.signals.providers import Signals
from vigil.stores.base import CounterBackend, LabelBackend, LabelRecord, StateStore
from vigil.stores.memory import MemoryStore

T = TypeVar("T")


@dataclass(slots=True)
class Stats:
    """Running totals for summaries and metrics."""

    events: int = 0
    dead_letters: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: {v: 0 for v in VERDICT_RANK})
    rule_hits: dict[str, int] = field(default_factory=dict)
    shadow_hits: dict[str, int] = field(default_factory=dict)


def in_rollout(rule: str, key: str, percent: float) -> bool:
    """Stable assignment of an entity to a rule's canary: the same entity is always in or out."""
    return zlib.crc32(f"{rule}\0{key}".encode()) % 10000 < percent * 100


class OutboxPlanner(Protocol):
    """The messages a decision sends to sinks (its outputs, routed; the decision itself, when published),
    written to the outbox with the decision's label changes."""

    # Whether a decision where no rule fired can send anything (decisions published "all").
    plans_without_hits: bool

    def plan(self, event: Event, decision: Decision) -> list[OutboxMessage]: ...


class DecisionLog(Protocol):
    """Where every decision of both stages goes with its event (vigil.record.writer.Recorder)."""

    def record_decision(self, event: Event, decision: Decision) -> None: ...

    def close(self) -> None: ...


class Engine:
    """Decides events with the active rules set. Built with its store; tests build their own.

    >>> from vigil.dsl.loader import load_ruleset
    >>> rules = load_ruleset("r.vigil", files={"r.vigil": 'rule "Any post" when event is "post" then flag'})
    >>> Engine(rules).process(b'{"type": "post", "id": "1", "time": 0}').verdict
    'flag'
    """

    def __init__(self, ruleset: RuleSet, store: StateStore | None = None, *, flush_interval: float = 1.0,
                 on_dead_letter: Callable[[DeadLetter], None] | None = None,
                 signals: Signals | None = None, counters: CounterBackend | None = None,
                 labels: LabelBackend | None = None, outbox: OutboxPlanner | None = None,
                 max_param_bytes: int = MAX_PARAM_BYTES,
                 max_counter_keys: int | None = DEFAULT_COUNTER_CACHE_KEYS,
                 max_label_entities: int | None = DEFAULT_LABEL_CACHE_ENTITIES) -> None:
        self.store: StateStore = store if store is not None else MemoryStore()
        self.signals = signals if signals is not None else Signals()
        # Counters and labels live beside the store unless shared backends are given (vigil/stores/redis_*).
        # Without a store, state lives in memory only: counters need no journal for it to replay.
        # The max_* limits bound the working set (docs/operations.md, "Memory"); None: no limit.
        self.counters: CounterBackend = counters if counters is not None else WindowCounters(
            store, flush_interval, max_keys=max_counter_keys)
        self.labels: LabelBackend = labels if labels is not None else Labels(self.store,
                                                                             max_entities=max_label_entities)
        # Where outputs and published decisions go (vigil.sinks builds it from the settings); None: nowhere,
        # they stay in the decisions.
        self.outbox = outbox
        # The record (issue 13): every decision with its event; None: not kept. Set by the runtime.
        self.recorder: DecisionLog | None = None
        self.max_param_bytes = max_param_bytes
        self.stats = Stats()
        self.on_dead_letter = on_dead_letter
        self._lock = threading.Lock()
        # Per engine thread: whether it holds the lock, and the deadline of the event it decides.
        self._local = threading.local()
        # Entered around each wait for a slow signal: a pool of engine threads lets another of its threads
        # take work meanwhile (vigil/service/engine_threads.py).
        self.waiting: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext
        self._functions: dict[Function, Callable[..., Any]] = {}
        self.activate(ruleset)
        self.counters.start()

    # ---- rules versions ----
    def activate(self, ruleset: RuleSet) -> None:
        """Switch to another rules set atomically: an event is decided wholly by one version."""
        compiled = ruleset.compiled
        # Everything that can fail happens before the running version or a counter is touched: the
        # loader compiled the code; running it only defines the functions, in a namespace of their own.
        code = ruleset.code or compile(compiled.source, f"<rules {ruleset.version}>", "exec")
        namespace = self._namespace(compiled, ruleset.program.functions)
        exec(code, namespace)  # noqa: S102 - generated from checked rules; literals emitted with repr
        # A new counter's keys are read from the store before the lock is taken: events go on meanwhile.
        self.counters.prepare(compiled.counters)
        with self._lock:
            self.counters.bind(compiled.counters)
            # The functions read their counters from the namespace when called, so binding comes last.
            for index, peek in enumerate(self.counters.peekers):
                namespace[f"_peek_{index}"] = peek
            self.ruleset = ruleset
            self._rules = compiled.rules
            self._dispatch: dict[str, Callable[[Event], list[Any]]] = namespace["DISPATCH"]
            self._default: Callable[[Event], list[Any]] = namespace["decide_other"]
            self._slow_dispatch: dict[str, Callable[..., list[Any]]] = namespace.get("SLOW_DISPATCH", {})
            self._slow_default: Callable[..., list[Any]] | None = namespace.get("slow_other")
            self._slow_types = compiled.slow_types

    def _function(self, function: Function) -> Callable[..., Any]:
        """A function's callable for this engine: made once per engine and function, not per rules version
        (a plugin's `bind` may open a connection)."""
        made = self._functions.get(function)
        if made is None:
            made = self._functions[function] = function.make_callable(self.signals)
        return made

    def _namespace(self, compiled: CompiledRules, functions: Functions) -> dict[str, Any]:
        ns: dict[str, Any] = {
            "__builtins__": {"len": len, "int": int, "float": float, "type": type, "dict": dict, "str": str,
                             "bool": bool, "list": list},
            "_U": runtime.UNSET,
            "_get": runtime.get,
            "_as_number": runtime.as_number,
            "_as_string": runtime.as_string,
            "_as_bool": runtime.as_bool,
            "_as_list": runtime.as_list,
            "_as_string_or_list": runtime.as_string_or_list,
            "_as_string_or_number": runtime.as_string_or_number,
            "_entity_key": runtime.entity_key,
            "_text_op": runtime.text_op,
            "_contains": runtime.contains,
            "_contains_normalized": runtime.contains_normalized,
            "_arith": runtime.arith,
            "_has_label": self.labels.has,
            "_has_manual_label": self.labels.has_manual,
            "_classifier_score": self._slow_signal(self.signals.classifier_score),
            "_classifier_label": self._slow_signal(self.signals.classifier_label),
            "_bank_match": self._slow_signal(self.signals.bank_match),
        }
        # The registered functions the rules call, from the registry they were checked against.
        for name in compiled.functions:
            function = functions[name]
            made = self._function(function)
            # Vigil's own functions over the signals (a model, media decoding) and slow ones (called from the
            # second stage's one thread only) run without the engine's lock; a plugin's first-stage
            # function keeps it, since it need not be safe to call from several threads at once.
            if function.slow or (function.bind is not None and function.source == BUILTIN_SOURCE):
                made = self._slow_signal(made)
            ns[function_local(name)] = made
        ns["_add_many"] = self.counters.add_many
        ns["_NO_RESULTS"] = {}
        ns.update(compiled.constants)
        return ns

    def _slow_signal(self, signal: Callable[..., T]) -> Callable[..., T | None]:
        """A signal that may take long (model inference, media decoding, a bank's first load) is called
        without the engine's lock, so that other engine threads decide their events meanwhile; once the
        event's deadline has passed it answers unknown without being asked. The event keeps the rules
        version it started with (decide passes it on), whatever is activated meanwhile."""
        lock, local = self._lock, self._local

        def call(*args: Any) -> T | None:
            deadline: float | None = getattr(local, "deadline", None)
            if deadline is not None and wall.monotonic() >= deadline:
                return None
            if not getattr(local, "holding", False):
                return signal(*args)
            with self.waiting():
                lock.release()
                local.holding = False
                try:
                    return signal(*args)
                finally:
                    lock.acquire()
                    local.holding = True

        return call

    def _hold(self, deadline: float | None = None) -> _Holding:
        return _Holding(self._lock, self._local, deadline)

    def with_labels(self, function: Callable[[LabelBackend], T]) -> T:
        """`function(labels)` under the engine's lock: a person's label change (the labels API) is serialised
        with the decisions' own, so that no decision, of either stage, decides a label change before it
        and commits one after it."""
        with self._hold():
            return function(self.labels)

    def counter_values(self, entity_type: str, key: str, at: float) -> list[tuple[str, float]]:
        """The value at `at` of every counter of the running rules kept per `entity_type`, for `key`:
        (the counter as written in the rules, value), without counting anything."""
        with self._hold():
            specs = self.ruleset.compiled.counters
            return [(spec.text, self.counters.peekers[index](key, int(at)))
                    for index, spec in enumerate(specs) if spec.entity == entity_type]

    @property
    def version(self) -> str:
        return self.ruleset.version

    # ---- deciding ----
    def process(self, raw: bytes | str | dict[str, Any], source: str = "") -> Decision | DeadLetter:
        """Parse and decide one event. Bad input never raises: it becomes a dead letter."""
        try:
            event = parse_event(raw)
            return self.decide(event)
        except (EventError, runtime.FieldTypeError) as error:
            return self.dead_letter(raw, str(error), source)
        except Exception as error:  # noqa: BLE001 - a bug must cost one event, never the stream: keep it to replay
            return self.dead_letter(raw, f"internal error: {type(error).__name__}: {error}", source)

    def dead_letter(self, raw: bytes | str | dict[str, Any], reason: str, source: str = "") -> DeadLetter:
        if isinstance(raw, dict):
            import orjson

            data = orjson.dumps(raw)
        else:
            data = raw.encode() if isinstance(raw, str) else raw
        letter = DeadLetter(reason, data, source, wall.time())
        self.store.add_dead_letter(letter)
        self.stats.dead_letters += 1
        if self.on_dead_letter is not None:
            self.on_dead_letter(letter)
        return letter

    def decide(self, event: Event, *, deadline: float | None = None) -> Decision:
        """Decide a parsed event and apply its live effects. Raises FieldTypeError on a wrongly typed field,
        before any state changes (compiled rules read their fields first). Slow signals asked after
        `deadline` (time.monotonic()) answer unknown."""
        with self._hold(deadline):
            rules, ruleset = self._rules, self.ruleset  # the version that decides, even if another activates
            hits = self._dispatch.get(event.type, self._default)(event)
            pending = bool(self._slow_types) and self.slow_pending(event)
            if hits or (self.outbox is not None and self.outbox.plans_without_hits):
                decision = self._decision(event, hits, pending=pending, rules=rules, ruleset=ruleset)
            else:
                decision = Decision(event.id, event.type, event.time, "allow", ruleset_version=ruleset.version,
                                    pending=pending, source=event.source)
            self.stats.events += 1  # under the lock: engine threads decide side by side
            self.stats.verdicts[decision.verdict] += 1
        if self.recorder is not None:
            self.recorder.record_decision(event, decision)  # outside the lock: it may wait for the commit
        return decision

    # ---- the second stage: rules that need a slow signal ----
    def slow_pending(self, event: Event) -> bool:
        """Whether the event has slow rules to run in the second stage."""
        etype: str | None = event.type if event.type in self._dispatch else None
        return etype in self._slow_types

    def probe_slow(self, event: Event, policy: Callable[[str, str], bool | None]) -> list[Any]:
        """Evaluate the slow rules for `event`, reading policy answers through `policy`, without
        changing any state. The second stage calls this to learn which answers it needs."""
        function = self._slow_dispatch.get(event.type, self._slow_default)
        if function is None:
            return []
        with self._hold():
            return function(event, policy)

    def decide_slow(self, event: Event, policy: Callable[[str, str], bool | None], first: Decision) -> Decision:
        """The second-stage decision for an event: slow rules' hits with their effects applied, and the
        verdict upgraded from the first stage's when a slow rule gives a stronger one."""
        with self._hold():
            rules, ruleset = self._rules, self.ruleset
            function = self._slow_dispatch.get(event.type, self._slow_default)
            hits = function(event, policy) if function is not None else []
            # The second stage's label changes are its own: a shared label store that remembers which
            # events it applied must not take them for a redelivery of the first stage's.
            decision = self._decision(event, hits, effects_id=f"{event.key}#2", stage=2, floor=first.verdict,
                                      rules=rules, ruleset=ruleset)
        if self.recorder is not None:
            self.recorder.record_decision(event, decision)
        return decision

    def _decision(self, event: Event, raw_hits: list[tuple[int, dict[str, Any], tuple[Any, ...], tuple[Any, ...]]],
                  effects_id: str | None = None, *, pending: bool = False, stage: int = 1,
                  floor: str = "allow", rules: list[Any] | None = None, ruleset: RuleSet | None = None) -> Decision:
        rules = rules if rules is not None else self._rules
        version = (ruleset if ruleset is not None else self.ruleset).version
        verdict = floor
        hits: list[RuleHit] = []
        live_effects: list[Effect] = []
        records: list[LabelRecord] = []
        asked: dict[tuple[str, str, str], list[tuple[LabelEffect, str]]] = {}  # label → (effect, rule) asking
        for index, features, keys, params in raw_hits:
            info = rules[index]
            keyed = dict(zip(info.entities, keys))
            mode = info.mode
            if mode == "rollout":
                key = keyed.get(info.rollout_entity or "")
                mode = "live" if key is not None and in_rollout(info.name, key, info.rollout_percent) else "shadow"
            effects = self._effects(info.actions, keyed, event.time, params)
            hits.append(RuleHit(info.name, mode, info.severity, info.verdict, effects,
                                {k: explained_value(v) for k, v in features.items() if v is not runtime.UNSET}))
            counts = self.stats.rule_hits if mode == "live" else self.stats.shadow_hits
            counts[info.name] = counts.get(info.name, 0) + 1
            if mode != "live":
                continue  # shadow: recorded, never applied, invisible to other rules
            if info.verdict is not None and VERDICT_RANK[info.verdict] > VERDICT_RANK[verdict]:
                verdict = info.verdict
            for effect in effects:
                live_effects.append(effect)
                if isinstance(effect, LabelEffect):
                    asked.setdefault((effect.entity_type, effect.key, effect.label), []).append((effect, info.name))
        # Effects apply after every rule has seen the same state, so rule order never matters.
        for (etype, key, label), wanted in asked.items():
            effect, actor = _strongest_label_effect(wanted)
            record = self.labels.change(etype, key, label, present=not effect.remove, now=event.time, source=RULE,
                                        actor=actor, expires_at=effect.expires_at)
            if record is not None:
                records.append(record)

        def decided(stored: list[LabelRecord]) -> Decision:
            # The decision lists the label changes the store took, as it holds them: none that a person's
            # change refused or that were so already, each once.
            applied = {(r.entity_type, r.key, r.label): r for r in stored}
            reported: list[Effect] = []
            for effect in live_effects:
                if isinstance(effect, LabelEffect):
                    record = applied.pop((effect.entity_type, effect.key, effect.label), None)
                    if record is None:
                        continue
                    effect = LabelEffect(record.entity_type, record.key, record.label, not record.present,
                                         record.expires_at)
                reported.append(effect)
            return Decision(event.id, event.type, event.time, verdict, tuple(reported), tuple(hits),
                            version, stage=stage, pending=pending, source=event.source)

        commit_id = effects_id or event.key
        if self.outbox is None:
            return decided(self.labels.commit(records, commit_id))
        if isinstance(self.labels, Labels) and self.labels.store is self.store:
            # Labels in this store: its messages commit in the same transaction as the label changes, so a
            # crash between the decision and the delivery loses neither. The in-process labels store every
            # change they are given, so the decision is known before the commit.
            decision = decided(records)
            self.labels.commit(records, commit_id, outbox=self.outbox.plan(event, decision))
            return decision
        # Shared labels (Redis) commit apart from this store: the messages follow at once, in its own
        # transaction; a redelivered event plans the same messages, which the outbox takes once.
        decision = decided(self.labels.commit(records, commit_id))
        messages = self.outbox.plan(event, decision)
        if messages:
            self.store.commit_effects([], messages)
        return decision

    def _effects(self, actions: tuple[ast.Action, ...], keys: dict[str, Any], now: float,
                 params: tuple[Any, ...]) -> tuple[Effect, ...]:
        out: list[Effect] = []
        values = iter(params)
        for action in actions:
            if isinstance(action, ast.LabelAction):
                key = keys.get(action.entity)
                if key is not None:
                    expires = now + action.expires_after.seconds if action.expires_after is not None else None
                    out.append(LabelEffect(action.entity, key, action.label, False, expires))
            elif isinstance(action, ast.UnlabelAction):
                key = keys.get(action.entity)
                if key is not None:
                    out.append(LabelEffect(action.entity, key, action.label, True))
            elif isinstance(action, ast.OutputAction):
                named = {}
                for name, _expr in action.params:
                    value = next(values)
                    named[name] = param_value(None if value is runtime.UNSET else value, self.max_param_bytes)
                subject = action.subject
                out.append(OutputEffect(action.name, subject, keys.get(subject) if subject else None, named))
        return tuple(out)

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()  # writes what is queued
        self.counters.close()
        self.store.close()


class _Holding:
    """The engine's lock, held by this thread for one engine call (a slow signal lets go of it for a
    while: Engine._slow_signal), with that call's deadline."""

    __slots__ = ("deadline", "local", "lock")

    def __init__(self, lock: threading.Lock, local: threading.local, deadline: float | None) -> None:
        self.lock, self.local, self.deadline = lock, local, deadline

    def __enter__(self) -> None:
        self.lock.acquire()
        self.local.holding, self.local.deadline = True, self.deadline

    def __exit__(self, *exc: object) -> None:
        self.local.holding, self.local.deadline = False, None
        self.lock.release()


def _strongest_label_effect(wanted: list[tuple[LabelEffect, str]]) -> tuple[LabelEffect, str]:
    """Of several rules changing one label on one event: adding outranks removing, and the longest
    expiry (none is longest) wins; ties go to the first rule, so that rule order never matters."""
    def strength(item: tuple[LabelEffect, str]) -> tuple[bool, float]:
        effect = item[0]
        return (not effect.remove, float("inf") if effect.expires_at is None else effect.expires_at)

    return max(wanted, key=strength)
