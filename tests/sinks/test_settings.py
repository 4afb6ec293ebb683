"""`[sinks.NAME]` and `[outputs]` validated with errors that name the key and say what to write."""

from __future__ import annotations

from typing import Any

import pytest

from vigil.sinks import SinkConfigError, build, validate
from vigil.sinks.settings import CATCH_ALL, JsonlSettings, SinkKind, SinkSettings
from vigil.stores.memory import MemoryStore

HOOK = {"kind": "webhook", "url": "https://example.org/hook", "secret": "s"}


@pytest.mark.parametrize(("sinks", "outputs", "message"), [
    ({"hook": {"url": "x"}}, {}, "sinks.hook.kind: missing; one of jsonl, kafka, queue, redis_stream, webhook"),
    ({"hook": {"kind": "smtp"}}, {}, "sinks.hook.kind: unknown kind 'smtp'; one of"),
    ({"hook": {"kind": "webhook", "url": "https://x"}}, {}, "sinks.hook.secret: Field required"),
    ({"hook": {**HOOK, "url": "ftp://x"}}, {}, "sinks.hook.url: must be an http:// or https:// URL"),
    ({"hook": {**HOOK, "secret": ""}}, {}, "sinks.hook.secret: must not be empty"),
    ({"hook": {**HOOK, "retries": 3}}, {}, "sinks.hook.retries: unknown setting"),
    ({"hook": {**HOOK, "max_attempts": 0}}, {}, "sinks.hook.max_attempts: Input should be greater than or equal to 1"),
    ({"hook": {**HOOK, "decisions": "some"}}, {}, "sinks.hook.decisions: Input should be 'none', 'all' or 'hits'"),
    ({"s": {"kind": "redis_stream", "url": "redis://h"}}, {}, "sinks.s.stream: Field required"),
    ({"hook": "webhook"}, {}, "sinks.hook: must be a table"),
    ({"hook": HOOK}, {"redact": "hoook"}, "outputs.redact: no sink named 'hoook' (sinks: hook)"),
    ({}, {"redact": "hook"}, "outputs.redact: no sink named 'hook' (sinks: none: add a [sinks.NAME] table)"),
    ({"hook": HOOK}, {"redact": 3}, 'outputs.redact: must be a sink\'s name or a list of them, e.g. "redact" = "hook"'),
    ({"hook": HOOK}, {"redact": []}, "outputs.redact: must be a sink's name or a list of them"),
])
def test_bad_settings_name_the_key(sinks: dict[str, Any], outputs: dict[str, Any], message: str) -> None:
    with pytest.raises(SinkConfigError) as caught:
        validate(sinks, outputs)
    assert str(caught.value).startswith(message), str(caught.value)


def test_good_settings() -> None:
    config = validate({"hook": HOOK, "file": {"kind": "jsonl", "path": "o.jsonl", "max_attempts": 3}},
                      {"redact": ["hook", "file", "hook"], CATCH_ALL: "file"})
    assert config.routes == {"redact": ("hook", "file"), CATCH_ALL: ("file",)}
    assert config.sinks["file"].max_attempts == 3 and config.sinks["hook"].max_attempts == 10
    assert "s'" not in repr(config.sinks["hook"])  # the secret is hidden


def test_another_kind_plugs_into_the_same_router() -> None:
    # How the review queues (issue 14) join: a settings model and a factory, routed like any sink.
    class QueueSettings(SinkSettings):
        queue: str

    delivered: list[str] = []

    class QueueSink:
        def __init__(self, settings: QueueSettings, store: Any) -> None:
            self.queue = settings.queue

        def deliver(self, messages: Any) -> Any:
            from vigil.sinks.base import DELIVERED

            delivered.extend(f"{self.queue}:{m.key}" for m in messages)
            return [DELIVERED] * len(messages)

        def close(self) -> None:
            pass

    kinds = {"queue": SinkKind(QueueSettings, QueueSink), "jsonl": SinkKind(JsonlSettings, lambda s, st: None)}
    store = MemoryStore()
    outputs = build({"spam": {"kind": "queue", "queue": "spam-review"}}, {"spam-review": "spam"}, store, kinds=kinds)
    assert outputs.router is not None and outputs.router.sinks_for("spam-review") == ("spam",)
    from vigil.effects import OutboxMessage

    store.enqueue_outbox([OutboxMessage("spam", "k1", b"{}", 0.0)])
    outputs.dispatcher.run_once("spam")
    assert delivered == ["spam-review:k1"]
