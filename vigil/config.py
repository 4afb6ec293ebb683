"""Settings: read from a `vigil.toml` file, then overridden by environment variables. Nothing is read at
import time; `load_settings` is called by a front door (the CLI, a worker's main) and its result passed on.

```toml
[store]
url = "postgresql://vigil:secret@db.internal/vigil"   # durable state (env VIGIL_STORE)
redis = "redis://cache.internal:6379/0"               # counters and labels shared by workers (env VIGIL_REDIS)
prefix = "vigil"                                      # Redis key prefix (env VIGIL_REDIS_PREFIX)

[worker]
max_attempts = 5          # deliveries of one message before it goes to the dead-letter stream
claim_idle = 30.0         # seconds a message stays pending with a silent worker before another claims it
batch = 100               # messages read at once
reload_interval = 2.0     # seconds between checks for a new rules version
max_event_skew = 300.0    # seconds an event may be dated ahead of the wall clock; later ones are dead letters
```

The file is `./vigil.toml` if present, or the path in `VIGIL_CONFIG`. URLs may carry passwords: they are
held as `Secret`, whose repr hides them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEFAULT_STORE = "vigil-data/vigil.sqlite"


@dataclass(frozen=True, slots=True)
class Secret:
    """A value that must not reach logs: `repr` and `str` hide it; `.value` gives it.

    >>> Secret("postgresql://u:pw@h/db")
    Secret('postgresql://u:***@h/db')
    """

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Secret({redact(self.value)!r})"

    def __str__(self) -> str:
        return redact(self.value)

    def __bool__(self) -> bool:
        return bool(self.value)


def redact(url: str) -> str:
    """A URL with its password replaced by ***; anything else that is not a URL shown as ***.

    >>> redact("redis://:hunter2@localhost:6379/0")
    'redis://:***@localhost:6379/0'
    >>> redact("vigil-data/vigil.sqlite")
    'vigil-data/vigil.sqlite'
    """
    if "://" not in url:
        return url if "@" not in url and ":" not in url else "***"
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    max_attempts: int = 5
    claim_idle: float = 30.0
    batch: int = 100
    reload_interval: float = 2.0
    max_event_skew: float = 300.0  # seconds an event's time may be ahead of the wall clock


@dataclass(frozen=True, slots=True)
class Settings:
    """Where state lives. `store`: SQLite path or `sqlite:///` URL, or `postgresql://` URL. `redis`: when
    set, counters and labels live there, shared by every worker (the store keeps the rest)."""

    store: Secret = field(default_factory=lambda: Secret(DEFAULT_STORE))
    redis: Secret | None = None
    redis_prefix: str = "vigil"
    worker: WorkerSettings = field(default_factory=WorkerSettings)

    @property
    def shared(self) -> bool:
        return self.redis is not None


ENV = {
    "VIGIL_STORE": "store.url",
    "VIGIL_REDIS": "store.redis",
    "VIGIL_REDIS_PREFIX": "store.prefix",
    "VIGIL_MAX_ATTEMPTS": "worker.max_attempts",
    "VIGIL_CLAIM_IDLE": "worker.claim_idle",
    "VIGIL_BATCH": "worker.batch",
    "VIGIL_RELOAD_INTERVAL": "worker.reload_interval",
    "VIGIL_MAX_EVENT_SKEW": "worker.max_event_skew",
}


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the file or variable."""


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `path` (or `VIGIL_CONFIG`, or ./vigil.toml when it exists), then the environment.

    >>> load_settings(env={"VIGIL_STORE": "redis://localhost:6379/0"}).redis
    Secret('redis://localhost:6379/0')
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    chosen = path if path is not None else env.get("VIGIL_CONFIG")
    if chosen is None and Path("vigil.toml").is_file():
        chosen = "vigil.toml"
    if chosen is not None:
        try:
            data = tomllib.loads(Path(chosen).read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"{chosen}: {error}") from None
    store = dict(data.get("store", {}))
    worker = dict(data.get("worker", {}))
    for name, dotted in ENV.items():
        if name in env and env[name] != "":
            section, key = dotted.split(".")
            (store if section == "store" else worker)[key] = env[name]
    unknown = set(store) - {"url", "redis", "prefix"}
    if unknown:
        raise ConfigError(f"unknown setting store.{min(unknown)}")
    url = str(store.get("url", DEFAULT_STORE))
    redis = store.get("redis")
    if url.startswith(("redis://", "rediss://", "unix://")):  # one URL: Redis shared state, SQLite for the rest
        redis, url = url, DEFAULT_STORE
    names = {f.name: f.type for f in fields(WorkerSettings)}
    worker_values: dict[str, Any] = {}
    for key, value in worker.items():
        if key not in names:
            raise ConfigError(f"unknown setting worker.{key}")
        try:
            worker_values[key] = int(value) if names[key] == "int" else float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"worker.{key} must be a number, got {value!r}") from None
    return Settings(Secret(url), Secret(str(redis)) if redis else None, str(store.get("prefix", "vigil")),
                    replace(WorkerSettings(), **worker_values))
