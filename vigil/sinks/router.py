"""From a decision to outbox messages: each live output to the sinks its name is routed to, and the
decision itself to the sinks that publish decisions. The engine writes them with the decision's label
changes (vigil/engine.py), so what a decision sends is stored exactly when its effects are."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from vigil.effects import Decision, OutboxMessage, OutputEffect
from vigil.events import Event
from vigil.sinks.settings import CATCH_ALL


def idempotency_key(*parts: str) -> str:
    """A stable key for one message: the same parts (source, event id, rule, output, …) give the same key
    at every decision of the same event, so a receiver can drop what it has seen.

    >>> idempotency_key("api", "e1", "Scam link", "redact") == idempotency_key("api", "e1", "Scam link", "redact")
    True
    """
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


class Router:
    """An OutboxPlanner (vigil/engine.py): routes by output name, publishes decisions by sink."""

    def __init__(self, routes: Mapping[str, tuple[str, ...]], decision_sinks: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.routes = dict(routes)
        self.default = self.routes.pop(CATCH_ALL, ())
        self.decision_sinks = {name: mode for name, mode in (decision_sinks or {}).items() if mode != "none"}
        self.clock = clock
        self.plans_without_hits = "all" in self.decision_sinks.values()

    def sinks_for(self, output: str) -> tuple[str, ...]:
        return self.routes.get(output, self.default)

    def plan(self, event: Event, decision: Decision) -> list[OutboxMessage]:
        now = self.clock()
        messages: list[OutboxMessage] = []
        for hit in decision.live_hits:
            seen: dict[str, int] = {}
            for effect in hit.effects:
                if not isinstance(effect, OutputEffect):
                    continue
                sinks = self.sinks_for(effect.name)
                if not sinks:
                    continue
                # A rule may send one output twice (about two subjects): the second has its own key.
                nth = seen[effect.name] = seen.get(effect.name, 0) + 1
                parts = [event.source, event.id, hit.rule, effect.name] + ([str(nth)] if nth > 1 else [])
                key = idempotency_key(*parts)
                body = orjson.dumps(_output_body(key, event, decision, hit.rule, effect))
                messages += [OutboxMessage(sink, key, body, now) for sink in sinks]
        if self.decision_sinks:
            key = idempotency_key(event.source, event.id, "decision", str(decision.stage))
            body = b""
            for sink, mode in self.decision_sinks.items():
                if mode == "all" or decision.hits:
                    body = body or orjson.dumps({"type": "decision", "key": key, "decision": decision.to_json()})
                    messages.append(OutboxMessage(sink, key, body, now))
        return messages


def _output_body(key: str, event: Event, decision: Decision, rule: str, effect: OutputEffect) -> dict[str, Any]:
    subject = None if effect.subject_type is None else {"entity": effect.subject_type, "key": effect.subject_key}
    return {"type": "output", "key": key, "output": effect.name, "subject": subject, "params": effect.params,
            "rule": rule, "event": {"source": event.source, "id": event.id, "type": event.type, "time": event.time},
            "verdict": decision.verdict, "ruleset": decision.ruleset_version, "stage": decision.stage}
