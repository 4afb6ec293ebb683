"""`vigil worker`: decide events from a Redis stream or a Kafka topic, with hot reload of the rules."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from typing import Any

import click

from vigil.cli import settings_from, signal_options
from vigil.dsl.testing import TEST_TIME_LIMIT
from vigil.stores.cli import dead_letter_flags, dead_letter_options

log = logging.getLogger("vigil.workers")


@click.command("worker")
@click.option("--stream", "stream_url", help="Redis stream to consume: redis://host:port/db/STREAM.")
@click.option("--kafka", "bootstrap", help="Kafka bootstrap servers, host:port[,host:port].")
@click.option("--topic", help="Kafka topic to consume (with --kafka).")
@click.option("--group", default="vigil", show_default=True, help="Consumer group shared by the workers.")
@click.option("--consumer", default=None, help="This worker's name in the group (default: host-pid).")
@click.option("--rules", "rules", multiple=True, type=click.Path(exists=True),
              help="Rules files or directories: run and watched when the rules source is `directory`; with "
                   "`store`, one directory seeds a store that has no active version.")
@click.option("--rules-source", type=click.Choice(["auto", "directory", "store"]), default="auto",
              envvar="VIGIL_RULES_SOURCE", show_default=True,
              help="Where the running rules come from: the --rules files, or the store's active version. auto: "
                   "the files when given, unless the store's active version was put there through the API.")
@click.option("--rule-tests-time-limit", default=TEST_TIME_LIMIT, show_default=True,
              help="Seconds a rules version's own tests may run before the version is refused.")
@click.option("--output", default=None, help="Stream (Redis) or topic (Kafka) to publish decisions to.")
@click.option("--source", "event_source", default=None,
              help="Name of the events' source: ids are unique per source (counters' redelivery marks, "
                   "label changes, decisions). Default: redis:STREAM or kafka:TOPIC.")
@click.option("--db", default=None,
              help="Durable store URL (store.url, env VIGIL_STORE; default vigil-data/vigil.sqlite).")
@click.option("--redis", "redis_url", default=None,
              help="Redis URL for shared counters and labels (default with --stream: the stream's Redis).")
@click.option("--max-events", type=int, default=None, help="Exit after this many events (tests, benchmarks).")
@click.option("--idle-exit", type=float, default=None, help="Exit after this many seconds without events.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@dead_letter_options
@signal_options
def worker_command(stream_url: str | None, bootstrap: str | None, topic: str | None, group: str,
                   consumer: str | None, rules: tuple[str, ...], rules_source: str, rule_tests_time_limit: float,
                   output: str | None, event_source: str | None,
                   db: str | None, redis_url: str | None, max_events: int | None, idle_exit: float | None,
                   log_level: str, **options: Any) -> None:
    """Consume events from a Redis stream (--stream) or a Kafka topic (--kafka, --topic) in a consumer
    group; decide each with the rules, classifiers, banks and policy models (second stage included);
    write decisions; acknowledge. Several workers share one stream."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if (stream_url is None) == (bootstrap is None):
        raise click.UsageError("give either --stream redis://…/STREAM or --kafka HOST:PORT --topic T")
    if bootstrap is not None and not topic:
        raise click.UsageError("--kafka needs --topic")
    if rules_source == "directory" and not rules:
        raise click.UsageError("--rules-source directory needs --rules PATH")
    letters = dead_letter_flags(options)  # before the signal options are read: they share **kwargs
    settings = settings_from(options, {"store.url": db, "store.redis": redis_url, **letters})
    stream_redis, stream = (None, None)
    if stream_url is not None:
        from vigil.workers.redis_streams import split_stream_url

        try:
            stream_redis, stream = split_stream_url(stream_url)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--stream") from None
    if settings.store.redis is None and stream_redis is not None:
        settings = settings.with_flags({"store.redis": stream_redis})
    consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
    if log_level != "debug":
        logging.getLogger("vigil.workers.librdkafka").setLevel(logging.CRITICAL)
    try:
        stats = run_worker(settings, rules=list(rules), stream_redis=stream_redis, stream=stream,
                           bootstrap=bootstrap, topic=topic, group=group, consumer=consumer, output=output,
                           max_events=max_events, idle_exit=idle_exit, event_source=event_source,
                           rules_source=rules_source, rule_tests_time_limit=rule_tests_time_limit)
    except Exception as error:
        message = unreachable_message(error)
        if message is None:
            raise
        raise click.ClickException(message) from None
    click.echo(f"worker {consumer}: {stats.decided} decided, {stats.dead} dead-lettered, {stats.failures} "
               f"failures, {stats.reloads} reloads", err=True)


def unreachable_message(error: BaseException) -> str | None:
    """One line saying which broker or store did not answer and what to do; None for any other error."""
    from vigil.workers.kafka import BrokerUnreachable

    if isinstance(error, BrokerUnreachable):
        return str(error)
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:
        return None
    if isinstance(error, (RedisConnectionError, RedisTimeoutError)):
        return (f"cannot reach Redis ({error}): start it, or give --stream (or --redis) the right "
                "redis://HOST:PORT URL")
    return None


def run_worker(settings: Any, *, rules: list[str], stream_redis: str | None, stream: str | None,
               bootstrap: str | None, topic: str | None, group: str, consumer: str, output: str | None,
               max_events: int | None = None, idle_exit: float | None = None,
               stop: threading.Event | None = None, event_source: str | None = None, rules_source: str = "auto",
               rule_tests_time_limit: float = TEST_TIME_LIMIT, signals: Any = None) -> Any:
    """Build the runtime from settings (vigil.runtime: the store within the dead-letter limits, Redis
    counters and labels, signals with the installed plugins' functions, the second stage, sinks), the
    source and the broker outputs; run until stopped, then drain and close. `signals` (classifiers,
    policy models, banks), when given, replace the settings' and go both to the engine and to the gate
    its rules pass."""
    from vigil.audit import AuditLog
    from vigil.gate import Gate, RulesRejected
    from vigil.lifecycle.states import RuleStates
    from vigil.plugins import PluginError
    from vigil.runtime import build_runtime
    from vigil.settings import DEFAULT_STORE
    from vigil.stores.open import redis_client
    from vigil.workers.loop import RulesWatcher, Sink, Source, Worker

    started: dict[str, Any] = {}

    def initial_rules(store: Any, engine_signals: Any) -> Any:
        """The rules to start on, through the gate with the engine's signals (the runtime's rules hook)."""
        rules_store = store if hasattr(store, "active_rules_version") else None
        gate = Gate(engine_signals, time_limit=rule_tests_time_limit)
        if rules_store is not None:  # each rule in the stage a rules manager gave it (vigil/lifecycle)
            started["audit"] = AuditLog.over(rules_store)
            started["states"] = RuleStates.over(rules_store, started["audit"])
            gate = gate.with_states(started["states"])
        written, started["mode"] = starting_rules(rules, rules_source, rules_store, gate)
        started.update(gate=gate, rules_store=rules_store, written=written)
        return gate.running(written)

    try:
        runtime = build_runtime(settings, initial_rules, default_store=DEFAULT_STORE, signals=signals,
                                durable_record=True)  # an acknowledged message is in the record
    except RulesRejected as error:
        raise click.ClickException(f"rules refused, so the worker did not start: {error}") from None
    except (ValueError, PluginError) as error:  # a store URL or sinks settings that cannot be used, a plugin
        raise click.ClickException(str(error)) from None
    engine, backends = runtime.engine, runtime.backends
    watcher = RulesWatcher(engine, started["gate"], source=started["mode"], paths=rules,
                           store=started["rules_store"], interval=settings.worker.reload_interval,
                           written=started["written"])
    w = settings.worker
    source: Source
    sinks: list[Sink] = []
    stream_client = None
    if stream is not None and stream_redis is not None:
        from vigil.workers.redis_streams import RedisDecisionTable, RedisOutputStream, RedisStreamSource

        stream_client = redis_client(stream_redis)
        source = RedisStreamSource(stream_client, stream, group, consumer, claim_idle=w.claim_idle,
                                   max_attempts=w.max_attempts, batch=w.batch)
        if output:
            sinks.append(RedisOutputStream(stream_client, output))
    else:
        from vigil.workers.kafka import KafkaOutput, KafkaSource

        assert bootstrap is not None and topic is not None
        source = KafkaSource(bootstrap, topic, group, batch=w.batch)
        if output:
            sinks.append(KafkaOutput(bootstrap, output))
    if backends.redis is not None:
        from vigil.workers.redis_streams import RedisDecisionTable

        sinks.insert(0, RedisDecisionTable(backends.redis, f"{settings.store.prefix}:decisions"))
    stop = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    worker = Worker(engine, source, sinks, watcher=watcher, max_attempts=w.max_attempts,
                    max_event_skew=w.max_event_skew, event_source=event_source, second_stage=runtime.second_stage)
    try:
        return worker.run(stop, max_events=max_events, idle_exit=idle_exit)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        source.close()
        for opened in (started.get("states"), started.get("audit")):
            if opened is not None:
                opened.close()
        runtime.close()  # the second stage, counters flushed, the store, the Redis client, the signals
        if stream_client is not None:
            stream_client.close()


def starting_rules(rules: list[str], requested: str, rules_store: Any, gate: Any) -> tuple[Any, Any]:
    """The rules a worker starts on, through the gate, and the source it follows from then on
    (vigil/rules_source.py). Raises RulesRejected, or click.UsageError when there are none to run."""
    from pathlib import Path

    from vigil.rules_source import resolve_source, seed_store

    if requested == "store" and rules_store is None:
        raise click.UsageError("--rules-source store needs a store that keeps rules versions (--db)")
    resolved = resolve_source(requested, ", ".join(rules) or None, rules_store)
    log.debug("rules: %s", resolved.reason)  # the worker's first lines are for what went wrong, if anything
    if resolved.source == "directory":
        return gate.admit_paths(rules), "directory"
    active = rules_store.active_rules_version() if rules_store is not None else None
    if active is None:
        if not rules:
            raise click.UsageError("no --rules, and the store has no active rules version")
        if len(rules) != 1 or not Path(rules[0]).is_dir():
            raise click.UsageError("seeding the store (--rules-source store) takes one rules directory")
        stored, ruleset = seed_store(rules_store, Path(rules[0]), gate)
        log.info("the store had no active rules version: seeded version %s from %s", stored.seq, rules[0])
        return ruleset, "store"
    if rules:
        log.warning("following the store's active version %s (by %r): --rules %s not loaded", active.seq,
                    active.author, ", ".join(rules))
    return gate.admit(active.files, active.entry), "store"
