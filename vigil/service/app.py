"""`create_app`: the ASGI app over one runtime. No globals: the app holds its Service, the lifespan
builds the runtime (vigil.runtime: engine, second stage, sinks) when the app starts and closes it (and
the stores) when it stops.

    store = SqliteStore("vigil.sqlite")
    app = create_app(ServiceSettings(rules_dir="rules"), store)
    uvicorn.run(app, host="127.0.0.1", port=8470)

`vigil serve` passes the whole Settings (`config`) and the store with its Redis counters and labels
(`backends`, from vigil.runtime.open_state), so that several instances over one Redis decide alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from vigil import console
from vigil.dsl.loader import RuleSet
from vigil.review import Review, ReviewSettings, ReviewStore, settings_of
from vigil.review.child_safety import Reports
from vigil.review.quality import Quality
from vigil.runtime import Runtime, build_runtime
from vigil.service import events, health, labels, lifecycle, people, record, review, rules, search
from vigil.service.auth import AuthMiddleware
from vigil.service.engine_threads import EngineThreads
from vigil.service.errors import ApiError, api_error_handler, http_error_handler, internal_error_handler
from vigil.service.guard import RequestGuard, served_names
from vigil.service.ingest import Ingest
from vigil.service.metrics import EngineCollector, MetricsMiddleware, SinksCollector
from vigil.service.reload import RulesRejected
from vigil.service.state import Service, ServiceSettings
from vigil.settings import Settings
from vigil.signals.providers import Signals
from vigil.stores.base import RulesStore, StateStore, TokenStore
from vigil.stores.open import Backends

log = logging.getLogger("vigil.service")

__all__ = ["RulesRejected", "ServiceSettings", "create_app", "prepare"]


def create_app(settings: ServiceSettings, store: StateStore, *, rules_store: RulesStore | None = None,
               token_store: TokenStore | None = None, signals: Signals | None = None,
               config: Settings | None = None, backends: Backends | None = None,
               review_settings: ReviewSettings | None = None) -> Starlette:
    """The service over `store` (state: counters, labels, dead letters), which also keeps rules versions
    and tokens unless other stores are given. The app owns the stores: it closes them when it stops.
    `signals` (classifiers, media policy) go to the engine; with `settings.banks` the lifespan opens the
    bank store and gives its matcher both to the engine and to the /v1/banks routes. `backends` (whose
    store is `store`) adds shared Redis counters and labels; `config` the rest of the settings. The review
    queues' routes (/v1/review/…) serve the items in the store's database when `review_settings` are
    given or `config` has review queues (vigil.review.settings_of)."""
    svc = Service(settings, store, rules_store if rules_store is not None else store,  # type: ignore[arg-type]
                  token_store if token_store is not None else store, signals,  # type: ignore[arg-type]
                  config=config, backends=backends)
    if review_settings is None:
        review_settings = settings_of(svc.config)  # ReviewConfigError: refuse to build, naming the key

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ruleset, engine_signals = await anyio.to_thread.run_sync(prepare, app)  # RulesRejected: refuse to start
        svc.prepared = None
        # The service bounds its own second stage (503 when full) where `vigil run` waits.
        config = svc.config.model_copy(update={"second_stage": svc.config.second_stage.model_copy(
            update={"max_queue": settings.second_stage_queue})})
        runtime = build_runtime(config, ruleset, backends=svc.backends, signals=engine_signals or Signals(),
                                durable_record=True)  # an answered decision is in the record
        engine = runtime.engine
        threads = EngineThreads(settings.engine_threads)  # every engine call, off the event loop
        engine.waiting = threads.waiting  # a slow signal's wait lets another engine thread go on
        svc.runtime, svc.engine, svc.threads = runtime, engine, threads
        svc.rules.bind(engine)
        ingest = Ingest(engine, svc.metrics, queue_size=settings.queue_size, recent=settings.recent_decisions,
                        max_depth=settings.max_depth,
                        max_event_skew=settings.max_event_skew, threads=threads,
                        event_deadline=settings.event_deadline, slow=runtime.second_stage)
        runtime.subscribe(ingest.second_stage_done)
        ingest.start()
        svc._ingest = ingest
        poller = asyncio.get_running_loop().create_task(svc.rules.run(settings.reload_interval),
                                                        name="vigil-rules-reload")
        sweeper = None
        if review_settings is not None:
            queues = review_settings
            app.state.review = await anyio.to_thread.run_sync(lambda: Review(ReviewStore.over(svc.store), queues))
            app.state.review.quality = await anyio.to_thread.run_sync(
                lambda: Quality.over(svc.store, app.state.review.store))  # golden items, second reviews
            app.state.review.reports = await anyio.to_thread.run_sync(Reports, svc.store)  # child-safety reports
            await review.resume_decisions(svc, app.state.review)  # those a stopped process left half done
            sweeper = asyncio.get_running_loop().create_task(review.sweep_forever(app.state.review),
                                                             name="vigil-review-deadlines")
        if settings.tune_gc:
            tune_gc()
            tune_threads()
        log.info("serving rules version %s", svc.rules.active.seq if svc.rules.active else "(none)")
        try:
            yield
        finally:
            svc.stopping = True
            for task in (poller, sweeper):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if getattr(app.state, "review", None) is not None:
                app.state.review.close()
                app.state.review = None
            await ingest.stop()  # decide every event already accepted
            svc._ingest = None
            svc.engine = svc.runtime = None
            svc.threads = None
            svc.matcher = None
            await anyio.to_thread.run_sync(threads.close)
            await anyio.to_thread.run_sync(_close, runtime, svc)

    svc.metrics.attach(SinksCollector(
        lambda: svc.runtime.sinks.stats() if svc.runtime is not None and svc.runtime.sinks is not None else {}))
    svc.metrics.attach(EngineCollector(lambda: svc.engine,
                                       lambda: svc._ingest.queue.qsize() if svc._ingest is not None else 0,
                                       lambda: svc.rules.active.seq if svc.rules.active is not None else None))
    app = Starlette(
        routes=[*events.routes, *labels.routes, *record.routes, *rules.routes, *lifecycle.routes, *search.routes,
                *review.routes, *people.routes, *_bank_routes(), *health.routes, *console.routes()],
        middleware=[Middleware(MetricsMiddleware, metrics=svc.metrics),
                    Middleware(RequestGuard, names=served_names(settings.host, settings.allowed_hosts),
                               form_paths=(console.CONSOLE_PATH + "/",)),
                    Middleware(AuthMiddleware, tokens=svc.tokens if settings.auth else None,
                               buckets=svc.buckets, failures=svc.auth_failures,
                               open_paths=(people.SESSION_PATH, *(("/metrics",) if settings.public_metrics else ())),
                               principals=svc.principals if settings.auth else None,
                               on_reject=lambda code: svc.metrics.rejected.labels(code).inc())],
        exception_handlers={ApiError: api_error_handler, HTTPException: http_error_handler,
                            Exception: internal_error_handler},
        lifespan=lifespan,
    )
    app.state.service = svc
    app.state.review = None  # the lifespan opens it when review queues are configured
    svc.metrics.attach(review.ReviewCollector(lambda: app.state.review))
    return app


def prepare(app: Starlette) -> tuple[RuleSet, Signals | None]:
    """What the app starts with: the banks opened and the start-up gate passed, with the same signals the
    engine will have (so the rules' tests see the banks). `vigil serve` calls it before the server
    starts, so that a refusal is one message and not a failed lifespan; the lifespan calls it otherwise.
    Raises RulesRejected (with the banks closed again)."""
    svc: Service = app.state.service
    if svc.prepared is None:
        signals = svc.signals
        if svc.settings.banks is not None:
            signals = _open_banks(svc, svc.settings.banks)
        svc.rules.gate = svc.rules.gate.with_signals(signals)  # the gate tests with the engine's signals
        try:
            svc.prepared = (svc.rules.initial(), signals)
        except BaseException:
            if svc.bank_store is not None:
                svc.bank_store.close()
                svc.bank_store = svc.matcher = None
            raise
    return svc.prepared


def tune_gc() -> None:
    """Keep the cyclic garbage collector from pausing requests. The engine's state (counter windows,
    labels) is millions of long-lived objects, and a full collection walks all of them: tens to hundreds
    of milliseconds, often enough to own the p99. Objects alive after startup are frozen (never
    scanned again), and the young generation is collected less often. Memory freed by reference
    counting, which is nearly all of it, is unaffected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


SWITCH_INTERVAL = 0.001  # seconds a busy thread keeps the interpreter lock when another wants it


def tune_threads() -> None:
    """An event passes from the event loop to an engine thread and back: each hop waits for the
    interpreter lock, which a busy thread (a rules version's tests or activation, a large unpickle)
    keeps for the switch interval, 5 ms by default. At 1 ms an event's p99 during a 100,000-item
    activation went from 10x to 3x that without one (bench/activation_bench.py)."""
    sys.setswitchinterval(SWITCH_INTERVAL)


def _bank_routes() -> Sequence[BaseRoute]:
    """/v1/hash and /v1/banks…, where the hashing extra is installed."""
    try:
        from vigil.service import banks
    except ImportError as error:
        log.info("no hash or bank routes: %s (pip install 'vigil[hashing]')", error)
        return []
    return banks.routes


def _open_banks(svc: Service, path: str) -> Signals:
    """Open the bank store and its matcher, and the engine's signals with that same matcher, so that a
    bank changed through the API changes what rules match."""
    from vigil.hashing.decoder import MediaDecoder
    from vigil.hashing.limits import MediaLimits
    from vigil.hashing.media import MediaPolicy
    from vigil.hashing.open import open_bank_store
    from vigil.hashing.service import HashMatcher

    given = svc.signals or Signals()
    # Media is decoded in processes under the limits (rules and routes share them); the app closes a
    # decoder it made itself.
    decoder = given.decoder if given.decoder is not None else MediaDecoder(MediaLimits.from_env())
    svc.bank_store = open_bank_store(path)
    svc.matcher = HashMatcher(svc.bank_store, refresh_interval=svc.settings.bank_refresh_interval, decoder=decoder)
    return Signals(classifiers=given.classifiers, matcher=svc.matcher,
                   media_policy=given.media_policy or MediaPolicy(), decoder=decoder, functions=given.functions)


def _close(runtime: Runtime, svc: Service) -> None:
    svc.rules.close()  # the worker process of large rules loads, if one started
    engine = runtime.engine
    runtime.close()  # the second stage, then the engine: flushes counters, closes the state store
    svc.backends.close()  # the Redis client of shared counters and labels, if any
    if svc.bank_store is not None:
        svc.bank_store.close()
        svc.bank_store = None
        given = svc.signals.decoder if svc.signals is not None else None
        if engine.signals.decoder is not None and engine.signals.decoder is not given:
            engine.signals.decoder.close()
    svc.people.close()
    svc.rule_states.close()
    svc.audit.close()
    closed = {id(svc.store)}
    for other in (svc.rules_store, svc.token_store):
        if id(other) not in closed:
            closed.add(id(other))
            close: Any = getattr(other, "close", None)
            if close is not None:
                close()
