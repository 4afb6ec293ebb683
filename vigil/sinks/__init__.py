"""Sinks: where outputs and decisions go once the engine has decided (issue 12.3).

`build(sinks, outputs, store)` turns the settings' `[sinks.NAME]` and `[outputs]` tables into
`Outputs`: a router the engine plans outbox messages with (the engine's `outbox`, given by vigil.runtime), and a
dispatcher that delivers them (`start()` / `close()`, by whoever owns the runtime). Delivery is at
least once, through the outbox in the state store; docs/operations.md, "Sinks", says how to run it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from vigil.sinks.base import Delivery, Outcome, Sink, SinkError
from vigil.sinks.dispatch import KEEP_DELIVERED, Dispatcher, SinkStats
from vigil.sinks.router import Router, idempotency_key
from vigil.sinks.settings import BUILTIN_KINDS, SinkConfigError, SinkKind, SinkSettings, validate
from vigil.stores.base import OutboxStore

__all__ = ["BUILTIN_KINDS", "Delivery", "Dispatcher", "Outcome", "Outputs", "Router", "Sink", "SinkConfigError",
           "SinkError", "SinkKind", "SinkSettings", "SinkStats", "build", "idempotency_key", "output_names", "validate"]


class Outputs:
    """The sinks of one runtime: `router` for the engine (None when nothing is routed or published, so
    the engine writes no outbox at all), `dispatcher` delivering the outbox."""

    def __init__(self, router: Router | None, dispatcher: Dispatcher) -> None:
        self.router = router
        self.dispatcher = dispatcher

    def start(self) -> None:
        self.dispatcher.start()

    def close(self, timeout: float = 10.0) -> None:
        self.dispatcher.close(timeout)

    def stats(self) -> dict[str, SinkStats]:
        return self.dispatcher.stats()

    def unrouted(self, names: Iterable[str]) -> list[str]:
        """Of the output names rules use, those no route sends anywhere (they stay in decisions only):
        worth a warning at start, since a typo in `[outputs]` would otherwise drop them silently."""
        router = self.router
        return sorted({n for n in names if router is None or not router.sinks_for(n)})


def output_names(actions: Iterable[Iterable[Any]]) -> set[str]:
    """The output names among the actions of compiled rules (RuleInfo.actions)."""
    from vigil.dsl import ast

    return {a.name for rule in actions for a in rule if isinstance(a, ast.OutputAction)}


def build(sinks: Mapping[str, Any] | None, outputs: Mapping[str, Any] | None, store: OutboxStore, *,
          kinds: Mapping[str, SinkKind] = BUILTIN_KINDS, clock: Callable[[], float] = time.time,
          keep_delivered: float = KEEP_DELIVERED) -> Outputs:
    """Outputs from the raw settings tables, over `store` (the engine's state store: the outbox lives
    there). Raises SinkConfigError for settings that cannot be used, naming the key."""
    config = validate(sinks, outputs, kinds)
    built: dict[str, tuple[Sink, SinkSettings]] = {}
    try:
        for name, settings in config.sinks.items():
            built[name] = (kinds[settings.kind].build(settings, store), settings)
    except Exception:
        for sink, _settings in built.values():
            sink.close()
        raise
    decision_sinks = {name: s.decisions for name, s in config.sinks.items()}
    routed = bool(config.routes) or any(mode != "none" for mode in decision_sinks.values())
    router = Router(config.routes, decision_sinks, clock) if routed else None
    return Outputs(router, Dispatcher(store, built, clock=clock, keep_delivered=keep_delivered))
