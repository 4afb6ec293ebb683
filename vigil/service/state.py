"""What one running app holds: settings, stores, the rules manager, the engine and its intake.

Built by `create_app`, filled in by the lifespan (the engine exists only while the app runs), and
reached from routes through `service(request)`: one per app, never a module global.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

from vigil.service.auth import TokenCache
from vigil.service.errors import ApiError
from vigil.service.limits import TokenBuckets
from vigil.service.metrics import Metrics
from vigil.service.reload import RulesManager
from vigil.stores.base import RulesStore, StateStore, TokenStore

if TYPE_CHECKING:
    from vigil.dsl.loader import RuleSet
    from vigil.engine import Engine
    from vigil.hashing.banks import BankStore
    from vigil.hashing.service import HashMatcher
    from vigil.service.engine_threads import EngineThreads
    from vigil.service.ingest import Ingest
    from vigil.signals.providers import Signals


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """How the service runs. Limits are per request; `rate_limit` is requests a second per token."""

    host: str = "127.0.0.1"
    port: int = 8470
    # Names requests may give in Host beyond those of `host` (guard.served_names); "*" allows any.
    allowed_hosts: tuple[str, ...] = ()
    rules_dir: str | None = None
    # Where the running rules come from (vigil/rules_source.py): "directory" (rules_dir; the API refuses
    # uploads), "store" (the API manages versions; rules_dir only seeds an empty store), or "auto".
    rules_source: str = "auto"
    auth: bool = True
    max_body_bytes: int = 1 << 20  # one event (the engine's own limit for an event is 1 MiB too)
    max_batch_bytes: int = 4 << 20
    max_batch: int = 1000
    max_depth: int = 64  # objects and arrays nested in one event (vigil.events.MAX_EVENT_DEPTH)
    max_rules_bytes: int = 8 << 20
    rate_limit: float = 0.0  # events (a request costs 1, a batch its events) a second per token; 0: no limit
    rate_burst: int = 100
    # Failed authentications a second per client address, with this burst; over it, 429 (0: no limit).
    auth_failure_rate: float = 1.0
    auth_failure_burst: int = 20
    # /metrics without a token (for a scraper on a private network); by default it needs the read scope.
    public_metrics: bool = False
    # Seconds an event's time may be ahead of this server's clock; later ones are refused (422, dead letter).
    max_event_skew: float = 300.0
    queue_size: int = 10_000
    # Engine work runs in this many threads, off the event loop (engine_threads.py); an event not
    # decided within `event_deadline` seconds gets 503 (not started: nothing applied) or 504 (still
    # being decided; its slow signals answer unknown from then on).
    engine_threads: int = 8
    event_deadline: float = 5.0
    second_stage_queue: int = 10_000  # events waiting for a policy model; more: 503 with Retry-After
    recent_decisions: int = 10_000
    reload_interval: float = 1.0
    reload_retry_interval: float = 30.0  # a rules directory that failed to load is tried again this often
    # Rules versions at least this large (bytes of text) are checked and compiled in a worker process,
    # so that traffic does not wait for the GIL meanwhile; 0 keeps every load in a thread.
    off_process_bytes: int = 256 << 10
    run_rule_tests: bool = True  # run the rules' own tests before activating a version
    rule_tests_time_limit: float = 60.0  # seconds those tests may run in all (the checker bounds their events)
    token_cache_seconds: float = 5.0
    # SQLite file of hash banks (None: no banks; the bank and hash routes answer 503). Rules that match
    # banks and the /v1/banks routes share one matcher, which rereads a bank at most this often.
    banks: str | None = None
    bank_refresh_interval: float = 1.0
    # Process-wide garbage collector tuning for a long-running server (see app.tune_gc); off for apps
    # built in tests, on for `vigil serve`.
    tune_gc: bool = False


class Service:
    def __init__(self, settings: ServiceSettings, store: StateStore, rules_store: RulesStore,
                 token_store: TokenStore, signals: Signals | None = None) -> None:
        self.settings = settings
        self.store = store
        self.rules_store = rules_store
        self.token_store = token_store
        self.metrics = Metrics()
        self.tokens = TokenCache(token_store, settings.token_cache_seconds)
        self.buckets = TokenBuckets(settings.rate_limit, settings.rate_burst) if settings.rate_limit > 0 else None
        self.auth_failures = (TokenBuckets(settings.auth_failure_rate, settings.auth_failure_burst)
                              if settings.auth_failure_rate > 0 else None)
        self.rules = RulesManager(rules_store, settings.rules_dir, source=settings.rules_source,
                                  run_tests=settings.run_rule_tests,
                                  retry_interval=settings.reload_retry_interval,
                                  test_time_limit=settings.rule_tests_time_limit,
                                  off_process_bytes=settings.off_process_bytes,
                                  on_reload=lambda source, result: self.metrics.reloads.labels(source, result).inc())
        self.signals = signals  # classifiers and media policy for the engine; the lifespan adds the matcher
        self.engine: Engine | None = None
        self.threads: EngineThreads | None = None  # the engine threads, while the app runs
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
