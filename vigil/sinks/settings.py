"""The `[sinks.NAME]` and `[outputs]` tables of the settings, validated.

```toml
[sinks.moderation]
kind = "webhook"                      # webhook | redis_stream | kafka | jsonl | queue (docs/review.md)
url = "https://moderation.internal/vigil"
secret = "…"                          # signs each body (X-Vigil-Signature: sha256=HMAC-SHA256)
decisions = "hits"                    # also publish decisions here: "all", "hits" (a rule fired), "none"

[sinks.audit]
kind = "jsonl"
path = "vigil-data/outputs.jsonl"

[outputs]
redact = "moderation"                 # output name → a sink, or a list of sinks
"spam-review" = ["moderation", "audit"]
"*" = "audit"                         # every output no other line names
```

Every sink takes the delivery settings of `Delivery` (attempts, back-off, batch, lease). A sink kind is
a settings model and a factory (`SinkKind`): `vigil.sinks.build` takes more kinds than the built-in
ones, as the review queues will be.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from vigil.sinks.base import Sink

CATCH_ALL = "*"


class SinkConfigError(ValueError):
    """Settings of sinks or outputs that cannot be used; the message names the key and what to write."""


class SinkSettings(BaseModel):
    """What every sink kind has: how its messages are delivered, and whether decisions go there too."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    max_attempts: int = Field(10, ge=1, description="attempts before a message goes to the dead letters")
    backoff: float = Field(1.0, gt=0, description="seconds before the first retry; doubled at each retry")
    backoff_max: float = Field(300.0, gt=0, description="the longest wait between two attempts, in seconds")
    batch: int = Field(100, ge=1, le=10_000, description="messages taken from the outbox at once")
    lease: float = Field(30.0, gt=0, description="seconds a claimed batch stays hidden from other dispatchers")
    poll: float = Field(0.5, gt=0, description="seconds between looks at the outbox when it is empty")
    decisions: Literal["none", "all", "hits"] = "none"


class WebhookSettings(SinkSettings):
    kind: Literal["webhook"]
    url: str
    secret: SecretStr
    timeout: float = Field(10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url

    @field_validator("secret")
    @classmethod
    def _not_empty(cls, secret: SecretStr) -> SecretStr:
        if not secret.get_secret_value():
            raise ValueError("must not be empty: receivers check each body's signature with it")
        return secret


class RedisStreamSettings(SinkSettings):
    kind: Literal["redis_stream"]
    url: SecretStr
    stream: str = Field(min_length=1)
    maxlen: int = Field(1_000_000, ge=1)
    timeout: float = Field(10.0, gt=0)


class KafkaSettings(SinkSettings):
    kind: Literal["kafka"]
    bootstrap: str = Field(min_length=1)
    topic: str = Field(min_length=1)
    timeout: float = Field(10.0, gt=0)
    config: dict[str, str | int | float | bool] = Field(default_factory=dict)


class JsonlSettings(SinkSettings):
    kind: Literal["jsonl"]
    path: str = Field(min_length=1)
    fsync: bool = True


class QueueRoute(BaseModel):
    """One routing rule of a queue sink: a hit that matches every key given goes to `queue`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: str = Field(min_length=1)
    output: str | None = None  # the output's name
    rule: str | None = None  # a rule that fired
    verdict: str | None = None
    subject: str | None = None  # the subject's entity type ("event" for a review verdict's item)


class QueueSinkSettings(SinkSettings):
    """A review queue (vigil/review/sink.py): outputs routed here, and published decisions with one of
    `verdicts`, open review items in the first of `routes` that matches, else in `queue`."""

    kind: Literal["queue"]
    queue: str = Field("default", min_length=1)
    routes: list[QueueRoute] = Field(default_factory=list)
    priority: float = 0.0
    verdicts: list[str] = Field(default_factory=lambda: ["review"])
    decisions: Literal["none", "all", "hits"] = "hits"


@dataclass(frozen=True, slots=True)
class SinkKind:
    """A kind of sink: its settings model and how to build one from them (and the state store, for a
    sink that lives in it)."""

    settings: type[SinkSettings]
    build: Callable[[Any, Any], Sink]


def _webhook(s: WebhookSettings, store: Any) -> Sink:
    from vigil.sinks.webhook import WebhookSink

    return WebhookSink(s.url, s.secret.get_secret_value(), timeout=s.timeout, headers=s.headers)


def _redis_stream(s: RedisStreamSettings, store: Any) -> Sink:
    from vigil.sinks.redis_stream import RedisStreamSink

    return RedisStreamSink(s.url.get_secret_value(), s.stream, maxlen=s.maxlen, timeout=s.timeout)


def _kafka(s: KafkaSettings, store: Any) -> Sink:
    from vigil.sinks.kafka import KafkaSink

    return KafkaSink(s.bootstrap, s.topic, timeout=s.timeout, config=dict(s.config))


def _jsonl(s: JsonlSettings, store: Any) -> Sink:
    from vigil.sinks.jsonl import JsonlSink

    return JsonlSink(s.path, fsync=s.fsync)


def _queue(s: QueueSinkSettings, store: Any) -> Sink:
    from vigil.review.sink import build_queue_sink

    return build_queue_sink(s, store)


BUILTIN_KINDS: dict[str, SinkKind] = {
    "queue": SinkKind(QueueSinkSettings, _queue),
    "webhook": SinkKind(WebhookSettings, _webhook),
    "redis_stream": SinkKind(RedisStreamSettings, _redis_stream),
    "kafka": SinkKind(KafkaSettings, _kafka),
    "jsonl": SinkKind(JsonlSettings, _jsonl),
}


@dataclass(frozen=True, slots=True)
class SinksConfig:
    """Validated sinks and routes: output name → the sinks it goes to (CATCH_ALL for the rest)."""

    sinks: dict[str, SinkSettings]
    routes: dict[str, tuple[str, ...]]


def validate(sinks: Mapping[str, Any] | None, outputs: Mapping[str, Any] | None,
             kinds: Mapping[str, SinkKind] = BUILTIN_KINDS) -> SinksConfig:
    """Check the raw `[sinks.*]` and `[outputs]` tables; raises SinkConfigError naming the first bad key.

    >>> validate({"file": {"kind": "jsonl", "path": "out.jsonl"}}, {"redact": "file"}).routes
    {'redact': ('file',)}
    >>> validate({"file": {"kind": "jsonl"}}, {})
    Traceback (most recent call last):
    ...
    vigil.sinks.settings.SinkConfigError: sinks.file.path: Field required
    """
    parsed: dict[str, SinkSettings] = {}
    for name, table in (sinks or {}).items():
        if not isinstance(table, Mapping):
            raise SinkConfigError(f"sinks.{name}: must be a table ([sinks.{name}] with kind = …)")
        kind = table.get("kind")
        if not isinstance(kind, str) or kind not in kinds:
            raise SinkConfigError(f"sinks.{name}.kind: " + ("missing" if kind is None else f"unknown kind {kind!r}")
                                  + f"; one of {', '.join(sorted(kinds))}")
        try:
            parsed[name] = kinds[kind].settings.model_validate(dict(table))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            message = "unknown setting" if first["type"] == "extra_forbidden" else first["msg"]
            raise SinkConfigError(f"sinks.{name}.{where}: {message}".removeprefix("Value error, ")
                                  .replace(": Value error, ", ": ")) from None
    routes: dict[str, tuple[str, ...]] = {}
    for output, target in (outputs or {}).items():
        names = (target,) if isinstance(target, str) else tuple(target) if isinstance(target, list) else None
        if names is None or not names or not all(isinstance(n, str) for n in names):
            raise SinkConfigError(f"outputs.{output}: must be a sink's name or a list of them, e.g. "
                                  f'"{output}" = "{next(iter(parsed), "my-sink")}"')
        for sink in names:
            if sink not in parsed:
                known = ", ".join(sorted(parsed)) or "none: add a [sinks.NAME] table"
                raise SinkConfigError(f"outputs.{output}: no sink named {sink!r} (sinks: {known})")
        routes[output] = tuple(dict.fromkeys(names))
    return SinksConfig(parsed, routes)
