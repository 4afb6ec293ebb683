"""What one running app holds: settings, stores, the rules manager, the engine and its intake.

Built by `create_app`, filled in by the lifespan (the engine exists only while the app runs), and
reached from routes through `service(request)`: one per app, never a module global.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from vigil.audit import AuditLog
from vigil.lifecycle.guard import GuardSettings
from vigil.lifecycle.states import RuleStates
from vigil.people.accounts import People
from vigil.service.access import Principals
from vigil.service.auth import TokenCache
from vigil.service.errors import ApiError
from vigil.service.limits import TokenBuckets
from vigil.service.metrics import Metrics
from vigil.service.reload import RulesManager
from vigil.settings import ServiceSettings, Settings
from vigil.stores.base import RulesStore, StateStore, TokenStore
from vigil.stores.open import Backends

if TYPE_CHECKING:
    from vigil.dsl.loader import RuleSet
    from vigil.engine import Engine
    from vigil.hashing.banks import BankStore
    from vigil.hashing.service import HashMatcher
    from vigil.runtime import Runtime
    from vigil.service.engine_threads import EngineThreads
    from vigil.service.ingest import Ingest
    from vigil.signals.providers import Signals

__all__ = ["Service", "ServiceSettings", "service"]


class Service:
    def __init__(self, settings: ServiceSettings, store: StateStore, rules_store: RulesStore,
                 token_store: TokenStore, signals: Signals | None = None, *, config: Settings | None = None,
                 backends: Backends | None = None) -> None:
        self.settings = settings
        # The whole settings (second stage, sinks) for vigil.runtime; `settings` is their service section.
        self.config = config if config is not None else Settings(service=settings)
        self.store = store
        # The store with the shared counters and labels (Redis) when configured: vigil.runtime.open_state.
        self.backends = backends if backends is not None else Backends(store)
        self.rules_store = rules_store
        self.token_store = token_store
        self.metrics = Metrics()
        self.tokens = TokenCache(token_store, settings.token_cache_seconds)
        # People, their sessions and the audit log, in the database that keeps the tokens (vigil.people).
        self.audit = AuditLog.over(token_store)
        self.people = People.over(token_store, self.audit)
        self.principals = Principals(self.people, settings.token_cache_seconds)
        self.buckets = TokenBuckets(settings.rate_limit, settings.rate_burst) if settings.rate_limit > 0 else None
        self.auth_failures = (TokenBuckets(settings.auth_failure_rate, settings.auth_failure_burst)
                              if settings.auth_failure_rate > 0 else None)
        self.rules = RulesManager(rules_store, settings.rules_dir, source=settings.rules_source,
                                  run_tests=settings.run_rule_tests,
                                  retry_interval=settings.reload_retry_interval,
                                  test_time_limit=settings.rule_tests_time_limit,
                                  off_process_bytes=settings.off_process_bytes,
                                  on_reload=lambda source, result: self.metrics.reloads.labels(source, result).inc())
        # Each rule's stage (draft, shadow, rollout, live, paused) beside the rules versions, audited.
        self.rule_states = RuleStates.over(rules_store, self.audit)
        self.rules.enable_lifecycle(self.rule_states, GuardSettings(
            settings.rule_guard, settings.rule_guard_share, settings.rule_guard_min_events,
            settings.rule_guard_seconds), on_trip=lambda trip: self.metrics.guard_paused.labels(trip.rule).inc())
        self.signals = signals  # classifiers and media policy for the engine; the lifespan adds the matcher
        self.engine: Engine | None = None
        self.threads: EngineThreads | None = None  # the engine threads, while the app runs
        self.runtime: Runtime | None = None
        self._ingest: Ingest | None = None
        self.bank_store: BankStore | None = None
        self.matcher: HashMatcher | None = None
        self.stopping = False
        # The start-up rules and signals, from app.prepare until the lifespan builds the engine on them.
        self.prepared: tuple[RuleSet, Signals | None] | None = None

    @property
    def ingest(self) -> Ingest:
        if self._ingest is None:
            raise ApiError(503, "not_ready", "the service is starting or stopping", "retry shortly")
        return self._ingest

    @property
    def banks(self) -> tuple[BankStore, HashMatcher]:
        """The bank store and the matcher the rules use; 503 when the service runs without banks."""
        if self.bank_store is None or self.matcher is None:
            if self.settings.banks is None:
                raise ApiError(503, "no_banks", "this service runs without hash banks",
                               "start it with `vigil serve --banks FILE` (env VIGIL_BANKS)")
            raise ApiError(503, "not_ready", "the service is starting or stopping", "retry shortly")
        return self.bank_store, self.matcher

    @property
    def running_engine(self) -> Engine:
        if self.engine is None:
            raise ApiError(503, "not_ready", "the service is starting or stopping", "retry shortly")
        return self.engine

    @property
    def engine_threads(self) -> EngineThreads:
        if self.threads is None:
            raise ApiError(503, "not_ready", "the service is starting or stopping", "retry shortly")
        return self.threads


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc
