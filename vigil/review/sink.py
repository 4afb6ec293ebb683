"""The `queue` sink kind: outbox messages become review items.

```toml
[sinks.review]
kind = "queue"
queue = "spam"            # default: [review] default_queue … or the sink's name when that is unset
verdicts = ["review"]     # decisions with one of these verdicts open an item about their event

[outputs]
"spam-review" = "review"  # `output "spam-review" about user` opens an item about that user

[[sinks.review.routes]]   # optional, in order, first match wins; no match: `queue`
rule = "Possible CSAM"    # any of: output, rule (one that fired), verdict, subject (entity type)
queue = "child-safety"
```

An output about an entity opens (or adds to) the item for that entity; a decision published here
(`decisions = "hits"`, the default for this kind) whose verdict is listed opens one for its event. The
message's idempotency key is the evidence's key, so a redelivered message adds nothing. An output's
`priority` parameter (a number) sets the item's priority, which only ever rises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from vigil.review.core import EVENT_SUBJECT
from vigil.review.store import ReviewStore
from vigil.sinks.base import DELIVERED, Delivery, Outcome
from vigil.sinks.settings import QueueSinkSettings


class QueueSink:
    def __init__(self, store: ReviewStore, settings: QueueSinkSettings, clock: Callable[[], float]) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock

    def deliver(self, messages: Sequence[Delivery]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for message in messages:
            try:
                body = orjson.loads(message.body)
                hit = self._hit(body)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                # A message this sink cannot read will never be readable: let it go to the dead letters.
                outcomes.append(Outcome(False, f"not a message a review queue can take: {error}"))
                continue
            if hit is not None:
                subject_type, subject_key, priority, evidence = hit
                try:
                    self.store.add_hit(self.route(subject_type, evidence), subject_type, subject_key, message.key,
                                       evidence, priority, self.clock())
                except Exception as error:  # noqa: BLE001 - the database away: retried by the dispatcher
                    outcomes.append(Outcome(False, f"review store: {type(error).__name__}: {error}"))
                    break
            outcomes.append(DELIVERED)
        return outcomes

    def route(self, subject_type: str, evidence: dict[str, Any]) -> str:
        """The queue of a hit: the first routing rule that matches it (ordered), else the sink's queue."""
        for route in self.settings.routes:
            if ((route.output is None or route.output == evidence.get("output"))
                    and (route.rule is None or route.rule in evidence.get("rules", ()))
                    and (route.verdict is None or route.verdict == evidence.get("verdict"))
                    and (route.subject is None or route.subject == subject_type)):
                return route.queue
        return self.settings.queue

    def _hit(self, body: dict[str, Any]) -> tuple[str, str, float, dict[str, Any]] | None:
        if body.get("type") == "output":
            event = body["event"]
            subject = body.get("subject")
            if subject is not None:
                subject_type, subject_key = str(subject["entity"]), str(subject["key"])
            else:
                subject_type, subject_key = EVENT_SUBJECT, f"{event['source']}/{event['id']}"
            priority = body.get("params", {}).get("priority", self.settings.priority)
            if isinstance(priority, bool) or not isinstance(priority, (int, float)) or not math.isfinite(priority):
                priority = self.settings.priority
            evidence = {"event": event, "rules": [body["rule"]], "output": body["output"],
                        "params": body.get("params", {}), "verdict": body.get("verdict"),
                        "ruleset": body.get("ruleset")}
            return subject_type, subject_key, float(priority), evidence
        if body.get("type") == "decision":
            decision = body["decision"]
            if decision.get("verdict") not in self.settings.verdicts:
                return None
            event = {"source": decision.get("source", ""), "id": decision["event_id"], "type": decision["type"],
                     "time": decision["time"]}
            reasons = [{"rule": h["rule"], "features": h.get("features", {})}
                       for h in decision.get("explanation", []) if h.get("mode") == "live"]
            evidence = {"event": event, "rules": decision.get("rules", []), "reasons": reasons,
                        "verdict": decision["verdict"], "ruleset": decision.get("ruleset")}
            return EVENT_SUBJECT, f"{event['source']}/{event['id']}", self.settings.priority, evidence
        raise ValueError(f"unknown message type {body.get('type')!r}")

    def close(self) -> None:
        self.store.close()


def build_queue_sink(settings: QueueSinkSettings, store: Any, clock: Callable[[], float] | None = None) -> QueueSink:
    """The sink over the review tables in the state store's own database."""
    import time

    from vigil.review.store import ReviewStoreError
    from vigil.sinks.base import SinkError

    try:
        review_store = ReviewStore.over(store)
    except ReviewStoreError as error:
        raise SinkError(f"sink of kind queue: {error}") from None
    return QueueSink(review_store, settings, clock or time.time)
