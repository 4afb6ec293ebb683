"""Prometheus metrics, in a registry of the app's own (never the process-wide default one).

Engine totals (events, decisions by verdict, rule hits, dead letters) are read from `Engine.stats` at
scrape time, so deciding an event costs nothing extra; request latency, decision latency and queue lag
are histograms observed by the routes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from vigil.engine import Engine
    from vigil.sinks import SinkStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5)


class EngineCollector(Collector):
    """Reads the engine's running totals, and the service's gauges, when Prometheus scrapes."""

    def __init__(self, engine: Callable[[], Engine | None], queue_depth: Callable[[], int],
                 rules_seq: Callable[[], int | None]) -> None:
        self.engine = engine
        self.queue_depth = queue_depth
        self.rules_seq = rules_seq

    def collect(self) -> Iterator[Metric]:
        engine = self.engine()
        if engine is not None:
            stats = engine.stats
            yield CounterMetricFamily("vigil_events", "Events decided.", value=stats.events)
            verdicts = CounterMetricFamily("vigil_decisions", "Decisions by verdict.", labels=["verdict"])
            for verdict, count in list(stats.verdicts.items()):
                verdicts.add_metric([verdict], count)
            yield verdicts
            hits = CounterMetricFamily("vigil_rule_hits", "Rules that fired, live or shadow.", labels=["rule", "mode"])
            for rule, count in list(stats.rule_hits.items()):
                hits.add_metric([rule, "live"], count)
            for rule, count in list(stats.shadow_hits.items()):
                hits.add_metric([rule, "shadow"], count)
            yield hits
            yield CounterMetricFamily("vigil_dead_letters", "Events that could not be decided.",
                                      value=stats.dead_letters)
            flushing = engine.counters.flush_status()
            yield CounterMetricFamily("vigil_counter_flush_failures", "Counter flushes the store refused (retried).",
                                      value=flushing.failures)
            yield CounterMetricFamily("vigil_counter_rows_set_aside",
                                      "Counter updates no store can hold, dead-lettered with the reason.",
                                      value=flushing.set_aside)
            yield GaugeMetricFamily("vigil_counter_flush_failing", "1 while the latest counter flush failed.",
                                    value=1 if flushing.last_error else 0)
            info = GaugeMetricFamily("vigil_rules_info", "The active rules version.", labels=["version", "seq"])
            seq = self.rules_seq()
            info.add_metric([engine.version, "" if seq is None else str(seq)], 1)
            yield info
        yield GaugeMetricFamily("vigil_queue_depth", "Events accepted asynchronously, not yet decided.",
                                value=self.queue_depth())


class SinksCollector(Collector):
    """Per sink (vigil.sinks): deliveries, retries and give-ups counted by the dispatcher, and the outbox
    now (waiting, dead, the age of the oldest waiting message), read when Prometheus scrapes."""

    def __init__(self, stats: Callable[[], Mapping[str, SinkStats]]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        families = [
            (CounterMetricFamily, "vigil_sink_delivered", "Messages a sink took.", "delivered"),
            (CounterMetricFamily, "vigil_sink_retried", "Failed delivery attempts that will be retried.", "retried"),
            (CounterMetricFamily, "vigil_sink_failed", "Messages given up after max_attempts (dead letters).",
             "failed"),
            (GaugeMetricFamily, "vigil_sink_pending", "Messages waiting in the outbox.", "pending"),
            (GaugeMetricFamily, "vigil_sink_dead", "Messages given up, kept in the outbox.", "dead"),
            (GaugeMetricFamily, "vigil_sink_lag_seconds", "Age of the oldest message waiting.", "lag"),
        ]
        for family, name, text, attribute in families:
            metric = family(name, text, labels=["sink"])
            for sink, values in stats.items():
                metric.add_metric([sink], getattr(values, attribute))
            yield metric


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Histogram("vigil_http_request_duration_seconds", "HTTP request latency.",
                                  ["route", "method", "status"], registry=self.registry, buckets=LATENCY_BUCKETS)
        self.decide = Histogram("vigil_decision_duration_seconds", "Time in the engine per event.",
                                registry=self.registry, buckets=LATENCY_BUCKETS)
        self.queue_lag = Histogram("vigil_queue_lag_seconds", "From asynchronous accept to decision.",
                                   registry=self.registry, buckets=LATENCY_BUCKETS)
        self.rejected = Counter("vigil_http_rejected", "Requests refused, by error code.", ["code"],
                                registry=self.registry)
        self.reloads = Counter("vigil_rules_reloads", "Rules activations and rejections, by source and result.",
                               ["source", "result"], registry=self.registry)
        self.guard_paused = Counter("vigil_rules_guard_paused", "Rules the guard paused for firing on too many "
                                    "events just after they changed, by rule.", ["rule"], registry=self.registry)
        self.second_stage_refused = Counter(
            "vigil_second_stage_refused", "Events refused (503) because the second stage's queue was full.",
            registry=self.registry)
        self.second_stage_depth = Gauge("vigil_second_stage_depth", "Events waiting for the second stage.",
                                        registry=self.registry)
        self.deadline_exceeded = Counter(
            "vigil_event_deadline_exceeded", "Events past their deadline: not_started (503, not decided) or "
            "still_running (504, decided later).", ["result"], registry=self.registry)

    def attach(self, collector: Collector) -> None:
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI: times every request and counts it by route template (not raw path), method and status."""

    def __init__(self, app: Callable[..., object], metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, object], receive: Callable[..., object],
                       send: Callable[..., object]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # type: ignore[misc]
            return
        import time

        started = time.perf_counter()
        status = 500

        async def send_status(message: dict[str, object]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])  # type: ignore[call-overload]
            await send(message)  # type: ignore[misc]

        try:
            await self.app(scope, receive, send_status)  # type: ignore[misc]
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(template, scope.get("method", ""), str(status)).observe(
                time.perf_counter() - started)
