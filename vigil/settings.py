"""Settings: one model for every front door, from four sources in order of precedence:

    command-line flags  >  environment (VIGIL_SECTION__KEY, and the short names below)  >  vigil.toml  >  defaults

`load_settings` reads them when a front door starts (never at import) and returns a frozen `Settings`,
which `vigil.runtime.build_runtime` turns into the running parts. The file is `--config`, else the path
in `VIGIL_CONFIG`, else `./vigil.toml` when it exists. A key no section knows is an error naming the file
or the variable. Secrets (URLs with passwords, API keys) are pydantic `SecretStr`: their repr is
`SecretStr('**********')`; `redact(url)` shows a URL with only its password hidden, for logs.

```toml
[store]
url = "postgresql://vigil:secret@db.internal/vigil"   # VIGIL_STORE
redis = "redis://cache.internal:6379/0"               # VIGIL_REDIS: counters and labels shared
[signals]
classifiers = "vigil-data/classifiers"
endpoint = "http://127.0.0.1:8000/v1"                 # VIGIL_MODEL_ENDPOINT
[service]
port = 8470
[sinks.review]                                        # read by vigil.sinks
kind = "webhook"
```

Every key, its variable, flag and default: docs/operations.md ("Settings reference").
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from pydantic_settings.sources.utils import parse_env_vars

from vigil.stores.base import DeadLetterLimits

if TYPE_CHECKING:
    from vigil.analysis.search import SearchLimits

ENV_PREFIX = "VIGIL_"
CONFIG_ENV = "VIGIL_CONFIG"
DEFAULT_CONFIG = "vigil.toml"
DEFAULT_STORE = "vigil-data/vigil.sqlite"  # where a long-running front door keeps state without store.url

# The short variable names documented before nested ones existed; each stands for one key.
SHORT_ENV: dict[str, tuple[str, str]] = {
    "VIGIL_STORE": ("store", "url"),
    "VIGIL_REDIS": ("store", "redis"),
    "VIGIL_REDIS_PREFIX": ("store", "prefix"),
    "VIGIL_MAX_ATTEMPTS": ("worker", "max_attempts"),
    "VIGIL_CLAIM_IDLE": ("worker", "claim_idle"),
    "VIGIL_BATCH": ("worker", "batch"),
    "VIGIL_RELOAD_INTERVAL": ("worker", "reload_interval"),
    "VIGIL_MAX_EVENT_SKEW": ("worker", "max_event_skew"),
    "VIGIL_MODEL_ENDPOINT": ("signals", "endpoint"),
    "VIGIL_BANKS": ("signals", "banks"),
    "VIGIL_RULES_SOURCE": ("service", "rules_source"),
    "VIGIL_DEAD_LETTER_MAX_RAW": ("dead_letters", "max_raw"),
    "VIGIL_DEAD_LETTER_MAX_COUNT": ("dead_letters", "max_count"),
    "VIGIL_DEAD_LETTER_RETENTION_DAYS": ("dead_letters", "retention_days"),
}

STORE_SCHEMES = ("sqlite", "postgresql", "postgres", "memory", "redis", "rediss", "unix")


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the file or variable and what to write."""


def redact(url: str) -> str:
    """A URL with its password replaced by ***, for logs.

    >>> redact("redis://:hunter2@localhost:6379/0")
    'redis://:***@localhost:6379/0'
    >>> redact("vigil-data/vigil.sqlite")
    'vigil-data/vigil.sqlite'
    """
    parts = urlsplit(url) if "://" in url else None
    if parts is None or parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def reveal(secret: SecretStr | None) -> str | None:
    """The value of an optional secret; call only where it is used."""
    return secret.get_secret_value() if secret is not None else None


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSettings(Section):
    """Where state lives. `url`: a SQLite path or `sqlite:///PATH`, `postgresql://…`, or `memory:`; unset,
    `vigil run`, `explain`, `test` and `eval` keep state in memory and the long-running front doors use
    vigil-data/vigil.sqlite. `redis`: counters and labels there, shared by every process."""

    url: SecretStr | None = None
    redis: SecretStr | None = None
    prefix: str = "vigil"

    @field_validator("url", mode="after")
    @classmethod
    def _known_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            store_scheme(value.get_secret_value())
        return value

    @field_validator("redis", mode="after")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and store_scheme(value.get_secret_value()) not in ("redis", "rediss", "unix"):
            raise ValueError("store.redis is a redis://HOST:PORT/DB URL")
        return value


def store_scheme(url: str) -> str:
    """What kind of store a URL names: sqlite (a path too), postgresql, memory or redis; a scheme Vigil
    does not know is an error (never a file named after the URL).

    >>> store_scheme("postgresql://u@h/db"), store_scheme("data/v.sqlite"), store_scheme("memory:")
    ('postgresql', 'sqlite', 'memory')
    """
    if url in ("memory", "memory:"):
        return "memory"
    if "://" not in url:
        return "sqlite"
    scheme = url.split("://", 1)[0].lower()
    if scheme not in STORE_SCHEMES:
        raise ValueError(f"unknown store URL scheme {scheme!r} in {redact(url)!r}: use a SQLite path, "
                         "sqlite:///PATH, postgresql://USER@HOST/DB or memory:")
    return "postgresql" if scheme == "postgres" else scheme


class WorkerSettings(Section):
    max_attempts: int = Field(default=5, ge=1)  # deliveries of one message before it goes to the dead-letter stream
    claim_idle: float = Field(default=30.0, gt=0)  # seconds a message stays pending with a silent worker
    batch: int = Field(default=100, ge=1)  # messages read at once
    reload_interval: float = Field(default=2.0, gt=0)  # seconds between checks for new rules
    max_event_skew: float = Field(default=300.0, ge=0)  # seconds an event may be dated ahead of the clock


class ServiceSettings(Section):
    """How `vigil serve` runs. Limits are per request; `rate_limit` is events a second per token."""

    host: str = "127.0.0.1"
    port: int = 8470
    # Names requests may give in Host beyond those of `host` (guard.served_names); "*" allows any.
    allowed_hosts: tuple[str, ...] = ()
    rules_dir: str | None = None
    # Where the running rules come from (vigil/rules_source.py): "directory" (rules_dir; the API refuses
    # uploads), "store" (the API manages versions; rules_dir only seeds an empty store), or "auto".
    rules_source: Literal["auto", "directory", "store"] = "auto"
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
    header_timeout: float = 10.0  # seconds a request's headers may take (408 and close)
    body_timeout: float = 30.0  # seconds a request's body may take after its headers (408 and close)
    max_connections: int = 1000  # open connections at most (more: 503 and close)
    # Seconds an event's time may be ahead of this server's clock; later ones are refused (422, dead letter).
    max_event_skew: float = 300.0
    queue_size: int = 10_000
    # Engine work runs in this many threads, off the event loop (engine_threads.py); an event not
    # decided within `event_deadline` seconds gets 503 (not started: nothing applied) or 504 (still
    # being decided; its slow signals answer unknown from then on).
    engine_threads: int = Field(default=8, ge=1)
    event_deadline: float = Field(default=5.0, gt=0)
    # Events waiting for a policy model in the service's second stage; more: 503 with Retry-After (the
    # service's own bound, in place of second_stage.max_queue, under which `vigil run` waits instead).
    second_stage_queue: int = Field(default=10_000, ge=1)
    recent_decisions: int = 10_000
    reload_interval: float = 1.0
    reload_retry_interval: float = 30.0  # a rules directory that failed to load is tried again this often
    # Rules versions at least this large (bytes of text) are checked and compiled in a worker process,
    # so that traffic does not wait for the GIL meanwhile; 0 keeps every load in a thread.
    off_process_bytes: int = 256 << 10
    run_rule_tests: bool = True  # run the rules' own tests before activating a version
    rule_tests_time_limit: float = 60.0  # seconds those tests may run in all (the checker bounds their events)
    token_cache_seconds: float = 5.0
    # The rules guard (vigil/lifecycle/guard.py): a rule that has just been activated, changed or promoted
    # to live or a rollout and fires on more than `rule_guard_share` of the events decided within its first
    # `rule_guard_seconds`, once at least `rule_guard_min_events` were, is paused and flagged.
    rule_guard: bool = True
    rule_guard_share: float = Field(default=0.05, gt=0, le=1)
    rule_guard_min_events: int = Field(default=200, ge=1)
    rule_guard_seconds: float = Field(default=600.0, gt=0)
    # Console sessions (POST /v1/session): how long one lasts, and whether its cookie is marked Secure
    # ("auto": when the request came over https, as a TLS-terminating proxy tells uvicorn; "always").
    session_seconds: float = Field(default=12 * 3600.0, gt=0)
    session_cookie_secure: Literal["auto", "always"] = "auto"
    # The hash banks the service opens (None: none; the bank and hash routes answer 503). `vigil serve`
    # sets it from signals.banks, else banks.sqlite beside the store. Rules that match banks and the
    # /v1/banks routes share one matcher, which rereads a bank at most this often.
    banks: str | None = None
    bank_refresh_interval: float = 1.0
    # Process-wide garbage collector and thread switch tuning for a long-running server (app.tune_gc,
    # app.tune_threads); off for apps built in tests, on for `vigil serve`.
    tune_gc: bool = False
    log_level: str = "info"


class SignalSettings(Section):
    """Classifiers, policy models and hash banks the rules may call."""

    classifiers: str | None = None  # directory of trained classifiers (None: vigil-data/classifiers)
    policies: str | None = None  # directory of policy files (NAME.md)
    banks: str | None = None  # SQLite file or postgresql:// URL of hash banks (None: vigil-data/banks.sqlite if present)
    media_roots: tuple[str, ...] = ()  # directories events may name media files in
    endpoint: str | None = None  # OpenAI-compatible base URL of the policy model
    model: str = "gpt-oss-safeguard-20b"
    api_key: SecretStr | None = None  # the endpoint's key (better: VIGIL_SIGNALS__API_KEY than the file)
    api_key_env: str | None = None  # or the name of a variable holding it
    timeout: float = Field(default=10.0, gt=0)  # seconds one model request may take
    # Constrain the model's answer to Vigil's JSON schema: "free" (ask nothing), "json_schema" (OpenAI's
    # structured outputs: vLLM, Ollama, hosted APIs) or "json_object" (llama.cpp's form).
    answer_format: Literal["free", "json_schema", "json_object"] = "free"
    tokens_per_minute: int | None = None  # budget of model tokens a minute (None: unbounded)
    retry_queue: str | None = None  # SQLite file keeping model requests that failed, retried later


class DeadLetterSettings(Section):
    """How much of each dead letter the store keeps, and for how long (vigil.stores.base.DeadLetterLimits)."""

    max_raw: int = Field(default=DeadLetterLimits().max_raw_bytes, ge=0)  # bytes of the raw body kept
    max_count: int = Field(default=DeadLetterLimits().max_letters, ge=1)  # letters kept; the oldest go first
    retention_days: float = Field(default=DeadLetterLimits().retention_seconds / 86400, gt=0)

    def limits(self) -> DeadLetterLimits:
        """The store's limits; a small cap is trimmed more often, so it is passed by at most 1% (or one
        letter) between trims."""
        return DeadLetterLimits(max_raw_bytes=self.max_raw, max_letters=self.max_count,
                                retention_seconds=self.retention_days * 86400,
                                trim_every=max(1, min(DeadLetterLimits().trim_every, self.max_count // 100)))


class SecondStageSettings(Section):
    """Rules that wait for a policy model run after the first decision, in batches."""

    batch_size: int = Field(default=32, ge=1)  # events whose model requests are sent together
    max_queue: int = Field(default=100_000, ge=1)  # events waiting for the second stage at most


class SearchSettings(Section):
    """What one search of the record may cost (vigil.analysis.search.SearchLimits; docs/record.md, "Limits")."""

    max_rows: int = Field(default=1000, ge=1)  # events in one page, at most
    max_scanned: int = Field(default=200_000, ge=1)  # stored events one search reads after the indexed filters
    time_budget: float = Field(default=10.0, gt=0)  # seconds one search may run
    max_top: int = Field(default=100, ge=1)  # values `top` may list
    read_batch: int = Field(default=1000, ge=1)  # stored events read from the record at once
    aggregate_batch: int = Field(default=5000, ge=1)  # … by `top` and counts (no decisions read)

    def limits(self) -> SearchLimits:
        from vigil.analysis.search import SearchLimits

        return SearchLimits(max_rows=self.max_rows, max_scanned=self.max_scanned, time_budget=self.time_budget,
                            max_top=self.max_top, read_batch=self.read_batch,
                            aggregate_batch=self.aggregate_batch)


class Settings(BaseSettings):
    """Everything a front door needs to build the runtime. `sinks`, `outputs`, `record`, `review` and
    `queues` are carried as given and validated by the modules that use them (vigil.sinks, the record,
    vigil.review)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid",
                                      frozen=True, env_ignore_empty=True, case_sensitive=False)

    store: StoreSettings = StoreSettings()
    worker: WorkerSettings = WorkerSettings()
    service: ServiceSettings = ServiceSettings()
    signals: SignalSettings = SignalSettings()
    second_stage: SecondStageSettings = SecondStageSettings()
    dead_letters: DeadLetterSettings = DeadLetterSettings()
    search: SearchSettings = SearchSettings()
    # Raw tables, validated where they are used; kept out of the repr, since a sink's table holds its secret.
    sinks: dict[str, dict[str, Any]] = Field(default_factory=dict, repr=False)
    outputs: dict[str, Any] = {}  # output name → a sink name or a list of them
    record: dict[str, Any] = Field(default_factory=dict, repr=False)
    review: dict[str, Any] = {}  # [review] and [queues.NAME]: validated by vigil.review (docs/review.md)
    queues: dict[str, dict[str, Any]] = {}

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `Settings(...)` is exactly its arguments over the defaults: only `load_settings` reads the
        # environment and the file, so a test or a library caller is never surprised by either.
        return (init_settings,)

    def store_url(self, default: str = DEFAULT_STORE) -> str:
        """The durable store's URL, or `default` (the front door's) when none is set."""
        return reveal(self.store.url) or default

    def with_flags(self, flags: Mapping[str, Any]) -> Settings:
        """These settings with command-line values (`{"store.url": …}`; None: not given) on top."""
        given = _unflatten(flags)
        return _validate(deep_update(self.model_dump(), given), [Layer("command line", given, "flag")])


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping, without the short names."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = {k: v for k, v in environ.items() if k.upper() not in SHORT_ENV}
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class Layer:
    """One source's values and how to name where a key came from in an error."""

    def __init__(self, name: str, data: dict[str, Any], kind: str) -> None:
        self.name, self.data, self.kind = name, data, kind

    def has(self, loc: tuple[str | int, ...]) -> bool:
        value: Any = self.data
        for part in loc:
            if not isinstance(value, dict) or part not in value:
                return False
            value = value[part]
        return True

    def where(self, loc: tuple[str | int, ...]) -> str:
        dotted = ".".join(str(p) for p in loc)
        if self.kind == "env":
            short = [name for name, key in SHORT_ENV.items() if key == tuple(loc[:2])]
            if short and short[0] in self.name.split(","):
                return f"environment variable {short[0]} ({dotted})"
            return f"environment variable {ENV_PREFIX}{'__'.join(str(p) for p in loc).upper()}"
        if self.kind == "flag":
            return f"command line ({dotted})"
        return f"{self.name}: {dotted}"


def config_path(config: str | Path | None, env: Mapping[str, str]) -> Path | None:
    """The settings file: `--config`, else $VIGIL_CONFIG, else ./vigil.toml when it exists."""
    if config is not None:
        return Path(config)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return Path(DEFAULT_CONFIG) if Path(DEFAULT_CONFIG).is_file() else None


def load_settings(flags: Mapping[str, Any] | None = None, *, config: str | Path | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the file, then the environment, then `flags` (dotted keys; None values are flags
    not given). Raises ConfigError naming the file or variable of a bad or unknown key.

    >>> load_settings({"service.port": 9000}, env={"VIGIL_REDIS": "redis://localhost:6379/0"}).service.port
    9000
    """
    env = os.environ if env is None else env
    layers: list[Layer] = []
    path = config_path(config, env)
    if path is not None:
        try:
            layers.append(Layer(str(path), tomllib.loads(path.read_text("utf-8")), "file"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"settings file {path}: {error}") from None
    short: dict[str, Any] = {}
    given = [name for name in SHORT_ENV if env.get(name)]
    for name in given:
        section, key = SHORT_ENV[name]
        short.setdefault(section, {})[key] = env[name]
    layers.append(Layer(",".join(given), _shorthand(short), "env"))
    _check_sections(env)
    try:
        nested = _Environment(env)()
    except SettingsError as error:  # a value that is not valid JSON where a table is expected
        raise ConfigError(f"environment: {error}") from None
    layers.append(Layer("environment", nested, "env"))
    layers.append(Layer("command line", _unflatten(flags or {}), "flag"))
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_update(merged, layer.data)
    return _validate(merged, layers)


def deep_update(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`base` with `update` laid over it, section by section."""
    out = dict(base)
    for key, value in update.items():
        out[key] = deep_update(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _shorthand(values: dict[str, Any]) -> dict[str, Any]:
    """`VIGIL_STORE=redis://…` alone: Redis counters and labels, the default store for the rest."""
    store = values.get("store", {})
    url = store.get("url")
    if isinstance(url, str) and url.startswith(("redis://", "rediss://", "unix://")):
        store.setdefault("redis", url)
        del store["url"]
    return values


def _check_sections(env: Mapping[str, str]) -> None:
    known = set(Settings.model_fields)
    for name in env:
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and "__" in upper:
            section = upper[len(ENV_PREFIX):].split("__", 1)[0].lower()
            if section not in known:
                raise ConfigError(f"environment variable {name}: no settings section {section!r} "
                                  f"(sections: {', '.join(sorted(known))})")


def _unflatten(flags: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dotted, value in flags.items():
        if value is None:
            continue
        *sections, key = dotted.split(".")
        target = out
        for section in sections:
            target = target.setdefault(section, {})
        target[key] = value
    return out


def _validate(merged: dict[str, Any], layers: list[Layer]) -> Settings:
    try:
        return Settings.model_validate(merged)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            loc = tuple(item["loc"])
            layer = next((la for la in reversed(layers) if la.has(loc)), None)
            where = layer.where(loc) if layer is not None else ".".join(str(p) for p in loc)
            message = item["msg"]
            if item["type"] == "extra_forbidden":
                message = "unknown setting" + _known(loc[:-1])
            elif message.startswith("Value error, "):
                message = message.removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
        raise ConfigError("; ".join(problems)) from None


def _known(section: tuple[str | int, ...]) -> str:
    model: Any = Settings
    for part in section:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return ""
        model = field.annotation
    return f" (known: {', '.join(model.model_fields)})"
