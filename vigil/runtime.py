"""The composition root: one function builds what every front door runs from one `Settings`.

    settings = load_settings(flags, config=path)
    with build_runtime(settings, rules=load_ruleset(paths)) as runtime:
        runtime.engine.process(raw)

`build_runtime` opens the state backends (SQLite or PostgreSQL store; Redis counters and labels with
`store.redis`), the signals (classifiers, policy models, hash banks, media policy), builds the engine
and the second stage, and is where sinks (vigil.sinks, issue 12.3) and the record (issue 13) attach.
`vigil run`, `explain`, `serve`, `worker`, `test`, `eval`, `demo` and `dead-letters replay` all call it
(or `build_engine`, for the fresh in-memory engines of rules tests and evaluation), so no front door
lacks a capability another has. Nothing here is global: each call builds and owns its parts, and
`Runtime.close` closes them in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from vigil.dsl.loader import RuleSet
from vigil.effects import Decision
from vigil.engine import Engine
from vigil.settings import DeadLetterSettings, Settings, reveal, store_scheme
from vigil.signals.providers import Signals
from vigil.stages import SlowStage
from vigil.stores.base import CounterBackend, LabelBackend, StateStore
from vigil.stores.open import Backends, open_backends

if TYPE_CHECKING:
    from vigil.events import Event
    from vigil.sinks import Outputs

log = logging.getLogger("vigil.runtime")

IN_MEMORY = "memory:"  # the store of the one-shot front doors (run, explain, test, eval) unless store.url
RulesLoader = RuleSet | Callable[[Any, Signals], RuleSet]  # a rules set, or how to load one (store, signals)


def build_engine(ruleset: RuleSet, *, store: StateStore | None = None, signals: Signals | None = None,
                 counters: CounterBackend | None = None, labels: LabelBackend | None = None,
                 outputs: Outputs | None = None) -> Engine:
    """The one place an Engine is made. Without a store, state lives in memory (rules tests, evaluation);
    with `outputs`, the engine plans its outputs and published decisions into the store's outbox."""
    return Engine(ruleset, store, signals=signals, counters=counters, labels=labels,
                  outbox=outputs.router if outputs is not None else None)


def open_signals(settings: Settings, *, banks: bool = True) -> Signals:
    """The signals `settings.signals` describes. `banks=False` leaves the hash banks to the caller
    (`vigil serve` opens them itself, to share one matcher with its /v1/banks routes)."""
    from vigil.signals.providers import build_signals

    s = settings.signals
    signals = build_signals(classifiers_dir=s.classifiers, policies_dir=s.policies, endpoint=s.endpoint,
                            model=s.model, api_key=s.api_key, api_key_env=s.api_key_env, timeout_s=s.timeout,
                            answer_format=s.answer_format,
                            tokens_per_minute=s.tokens_per_minute, retry_queue=s.retry_queue,
                            banks_db=s.banks if banks else None, media_roots=s.media_roots,
                            default_banks=banks)
    if s.media_roots and signals.media_policy is None:
        from vigil.hashing.media import MediaPolicy

        signals.media_policy = MediaPolicy(file_roots=tuple(Path(r).resolve() for r in s.media_roots))
    return signals


def open_state(settings: Settings, default_store: str = IN_MEMORY) -> Backends:
    """The store (`store.url`, else `default_store`) and, with `store.redis`, shared counters and labels.
    An in-memory store is left to the engine, whose counters then keep no journal."""
    if (store_scheme(settings.store_url(default_store)) == "memory" and reveal(settings.store.redis) is None
            and settings.dead_letters == DeadLetterSettings()):
        return Backends(None)
    return open_backends(settings, default_store)


def build_sinks(settings: Settings, store: Any) -> Outputs | None:
    """Where outputs and decisions go, from `settings.sinks` and `settings.outputs` (vigil.sinks), over the
    outbox in `store`; None when neither is set."""
    if not settings.sinks and not settings.outputs:
        return None
    from vigil.sinks import build

    return build(settings.sinks, settings.outputs, store)


class Runtime:
    """What `build_runtime` made: `.engine`, `.store`, `.signals`, `.second_stage`, `.sinks`; `close()`
    (or `with`) closes them in order. Second-stage decisions go to every callback given to `subscribe`."""

    def __init__(self, settings: Settings, engine: Engine, backends: Backends, signals: Signals, *,
                 owns_signals: bool, owns_backends: bool = True, sinks: Outputs | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.backends = backends
        self.signals = signals
        self._owns_signals = owns_signals
        self._owns_backends = owns_backends
        self._listeners: list[Callable[[Decision], None]] = []
        ss = settings.second_stage
        self.second_stage = SlowStage(engine, self._second_stage_done, batch_size=ss.batch_size,
                                      max_queue=ss.max_queue)
        self.sinks = sinks
        if sinks is not None:
            sinks.start()  # delivers what an earlier process left in the outbox, then what this one writes
        self._closed = False

    @property
    def store(self) -> StateStore:
        return self.engine.store

    def subscribe(self, callback: Callable[[Decision], None]) -> None:
        """Call `callback` with each second-stage decision (from the stage's thread)."""
        self._listeners.append(callback)

    def _second_stage_done(self, decision: Decision) -> None:
        for callback in self._listeners:
            callback(decision)

    def decide_slow_now(self, event: Event, first: Decision) -> Decision:
        """The second stage of one pending decision, in the caller's thread (explain, tests, workers)."""
        return self.second_stage.run_batch([(event, first)])[0]

    def close(self) -> None:
        """Finish the second stage, flush counters, close the store, the Redis client and the signals."""
        if self._closed:
            return
        self._closed = True
        try:
            self.second_stage.close()
            if self.sinks is not None:
                self.sinks.close()  # delivers what it can within its time-out; the rest waits in the outbox
        finally:
            self.engine.close()  # flushes counters, closes the store
            if self._owns_backends:
                self.backends.close()
            if self._owns_signals:
                close_signals(self.signals)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def close_signals(signals: Signals) -> None:
    """Stop the media decoder processes and close the bank store, where the signals have them."""
    if signals.decoder is not None:
        signals.decoder.close()
    store = getattr(signals.matcher, "store", None)
    close = getattr(store, "close", None)
    if close is not None:
        close()


def build_runtime(settings: Settings, rules: RulesLoader, *, default_store: str = IN_MEMORY,
                  backends: Backends | None = None, signals: Signals | None = None,
                  durable_record: bool = False) -> Runtime:
    """The runtime `settings` describe, running `rules`: a RuleSet, or a function of the opened store and
    the signals that loads one (the worker's rules source and gate: the one call to replace for another
    way of choosing rules). Given `backends` or `signals` are used as they are and left to the caller to
    close; those built here are closed by `Runtime.close`. The record (`settings.record`, vigil.record) is
    attached to the engine, which closes it; `durable_record` is the front door's default for
    `record.durable` (serve and workers: a decision is recorded before it is answered)."""
    owns_backends = backends is None
    state = open_state(settings, default_store) if backends is None else backends
    owns_signals = signals is None
    try:
        used = open_signals(settings) if signals is None else signals
    except BaseException:
        if owns_backends:
            _close_state(state)
        raise
    sinks = None
    try:
        ruleset = rules if isinstance(rules, RuleSet) else rules(state.store, used)
        store = state.store
        if store is None and (settings.sinks or settings.outputs):
            from vigil.stores.memory import MemoryStore

            store = state.store = MemoryStore()  # the outbox needs a store, even one in memory
        sinks = build_sinks(settings, store)
        if sinks is not None:
            from vigil.sinks import output_names

            unrouted = sinks.unrouted(output_names(info.actions for info in ruleset.compiled.rules))
            if unrouted:  # a name misspelt in [outputs] would otherwise send nothing, silently
                log.warning("outputs no [outputs] line routes (they stay in decisions only): %s",
                            ", ".join(unrouted))
        engine = build_engine(ruleset, store=store, signals=used, counters=state.counters,
                              labels=state.labels, outputs=sinks)
        try:
            from vigil.record.open import attach_record, store_location

            # Beside the store the engine has (given backends included), else as the settings name it.
            attach_record(engine, settings.record, store_location(store) or settings.store_url(default_store),
                          durable=durable_record)
        except BaseException:
            engine.close()
            raise
    except BaseException:
        if owns_signals:
            close_signals(used)
        if owns_backends:
            _close_state(state)
        raise
    return Runtime(settings, engine, state, used, owns_signals=owns_signals, owns_backends=owns_backends,
                   sinks=sinks)


def _close_state(state: Backends) -> None:
    if state.store is not None:
        state.store.close()
    state.close()
