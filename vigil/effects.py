"""Verdicts, effects and decisions: what the engine concludes about one event, and why."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import orjson

# The ordered set of verdicts: the strongest one any rule gives wins.
VERDICTS = ("allow", "flag", "review", "block")
VERDICT_RANK = {v: i for i, v in enumerate(VERDICTS)}


def strongest(a: str, b: str) -> str:
    return a if VERDICT_RANK[a] >= VERDICT_RANK[b] else b


@dataclass(frozen=True, slots=True)
class LabelEffect:
    """Add (or, with remove=True, remove) `label` on the entity `entity_type`:`key`."""

    entity_type: str
    key: str
    label: str
    remove: bool = False
    expires_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "unlabel" if self.remove else "label", "entity": self.entity_type,
                               "key": self.key, "label": self.label}
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at
        return out


@dataclass(frozen=True, slots=True)
class OutputEffect:
    """A message to the named output (routed by the settings to sinks: a webhook, a stream, a topic, a
    file, a review queue), about the entity `subject_type`:`subject_key`, with parameters as JSON values."""

    name: str
    subject_type: str | None = None
    subject_key: str | None = None
    params: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "output", "name": self.name}
        if self.subject_type is not None:
            out["subject"] = {"entity": self.subject_type, "key": self.subject_key}
        if self.params:
            out["params"] = self.params
        return out


# An output parameter is sent to receivers as JSON; one whose JSON is larger than this (a whole text, an
# image) is sent as a summary (its type, size, SHA-256 and a prefix), so that one event cannot make a
# message of any size. The engine's `max_param_bytes` changes it.
MAX_PARAM_BYTES = 16 << 10


def param_value(value: Any, max_bytes: int = MAX_PARAM_BYTES) -> Any:
    """`value` (what a rule's expression gave) as the JSON value an output carries, within `max_bytes`.

    >>> param_value(["a", 1, None]), param_value(float("nan"))
    (['a', 1, None], None)
    >>> param_value("x" * 100, max_bytes=50)["summarized"]
    'string'
    """
    plain = _jsonable(value)
    data = orjson.dumps(plain)
    if len(data) <= max_bytes:
        return plain
    text = plain if isinstance(plain, str) else data.decode()
    return {"summarized": "string" if isinstance(plain, str) else type(plain).__name__, "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "prefix": text[:EXPLAINED_PREFIX_CHARS]}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


Effect = LabelEffect | OutputEffect


# Explanations show the values rules used; a value larger than this (a base64 image, a long text, a
# long list) is shown as a summary: its type, size, SHA-256 and a prefix, so a decision never echoes a
# whole payload (a 4.6 KB JPEG made a 6.9 KB decision).
MAX_EXPLAINED_CHARS = 1024
EXPLAINED_PREFIX_CHARS = 64
MAX_EXPLAINED_ITEMS = 20


def explained_value(value: Any) -> Any:
    """`value` as an explanation shows it: JSON, with every large part summarised.

    >>> explained_value("x" * 2000)["summarized"], explained_value("x" * 2000)["chars"]
    ('string', 2000)
    >>> explained_value([1, "a", None])
    [1, 'a', None]
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        if len(value) <= MAX_EXPLAINED_CHARS:
            return value
        data = value.encode("utf-8", "surrogatepass")
        return {"summarized": "string", "chars": len(value), "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(), "prefix": value[:EXPLAINED_PREFIX_CHARS]}
    if isinstance(value, (bytes, bytearray)):
        return {"summarized": "bytes", "bytes": len(value), "sha256": hashlib.sha256(value).hexdigest(),
                "prefix": bytes(value[:EXPLAINED_PREFIX_CHARS // 2]).hex()}
    if isinstance(value, (list, tuple)):
        items = [explained_value(v) for v in value[:MAX_EXPLAINED_ITEMS]]
        if len(value) <= MAX_EXPLAINED_ITEMS:
            return items
        return {"summarized": "list", "items": len(value), "first": items}
    if isinstance(value, dict):
        shown = {str(k): explained_value(v) for k, v in list(value.items())[:MAX_EXPLAINED_ITEMS]}
        if len(value) <= MAX_EXPLAINED_ITEMS:
            return shown
        return {"summarized": "object", "keys": len(value), "first": shown}
    return explained_value(str(value))


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule that fired on an event, with the feature values it used."""

    rule: str
    mode: str  # "live" or "shadow" (a rollout rule resolves to one of these per entity)
    severity: str
    verdict: str | None
    effects: tuple[Effect, ...]
    features: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "mode": self.mode, "severity": self.severity, "verdict": self.verdict,
                "effects": [e.to_json() for e in self.effects], "features": self.features}


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's answer for one event: verdict, applied effects, and every rule that fired."""

    event_id: str
    event_type: str
    time: float
    verdict: str
    effects: tuple[Effect, ...] = ()
    hits: tuple[RuleHit, ...] = ()
    ruleset_version: str = ""
    # Stage 1 is decided with the event; stage 2 follows when slow rules (policy models) have run.
    stage: int = 1
    # True on a stage-1 decision whose event has slow rules still to run.
    pending: bool = False
    # The event's source (Event.source): ids are per source, so (source, event_id) names the event.
    source: str = ""

    @property
    def live_hits(self) -> tuple[RuleHit, ...]:
        return tuple(h for h in self.hits if h.mode == "live")

    @property
    def shadow_hits(self) -> tuple[RuleHit, ...]:
        return tuple(h for h in self.hits if h.mode == "shadow")

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.event_type,
            "time": self.time,
            "verdict": self.verdict,
            "effects": [e.to_json() for e in self.effects],
            "rules": [h.rule for h in self.live_hits],
            "shadow_rules": [h.rule for h in self.shadow_hits],
            "explanation": [h.to_json() for h in self.hits],
            "ruleset": self.ruleset_version,
            "stage": self.stage,
            "pending": self.pending,
            **({"source": self.source} if self.source else {}),
        }


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message for one sink, kept in the state store's outbox until the sink has taken it. `key` is
    the message's idempotency key, the same at every delivery of it, so a receiver can drop duplicates."""

    sink: str
    key: str
    body: bytes  # JSON, as sent
    created_at: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event that could not be decided, kept with the reason and its raw bytes."""

    reason: str
    raw: bytes
    source: str = ""
    time: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)  # `replayed`: when, by whom, into which event
    id: int | None = field(default=None, compare=False)  # the store's handle, once stored (not part of its value)
