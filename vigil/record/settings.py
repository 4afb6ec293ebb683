"""The `record` table of the settings (vigil.toml `[record]`, env `VIGIL_RECORD__…`): where the log
goes, how it is written, kept and redacted. docs/operations.md, "The record", documents every key."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator


class RecordSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # None: on when the state store is durable (a SQLite file or PostgreSQL), off in memory.
    enabled: bool | None = None
    # Where: a SQLite path or sqlite:/// URL, or postgresql://… . Default: `record.sqlite` beside a SQLite
    # state store; the state store's own database for PostgreSQL.
    url: SecretStr | None = None
    # Written in batches of at most `batch_size`, at least every `flush_interval` seconds.
    batch_size: int = Field(2000, ge=1)
    flush_interval: float = Field(0.2, gt=0)
    # Decisions waiting to be written; a full queue makes deciding wait (nothing is dropped).
    max_queue: int = Field(100_000, ge=1)
    # Whether a decision is written before it is answered (vigil serve, workers: a restart loses no answered
    # decision). None: the front door chooses (serve and workers yes, run no: it writes at exit).
    durable: bool | None = None
    # How long a durable decision waits for its write before it is answered anyway (counted as late).
    durable_timeout: float = Field(10.0, gt=0)
    # Retention, enforced every `prune_interval` seconds: events recorded more than `retention_days` ago
    # and the oldest beyond `max_events` are forgotten. 0 or None: no limit of that kind. `max_events` counts
    # stored events, not bytes (docs/operations.md, "The record", says how to size the disk from it).
    retention_days: float | None = Field(30.0, ge=0)
    max_events: int | None = Field(10_000_000, ge=0)
    prune_interval: float = Field(60.0, gt=0)
    # Per field of the event (a dotted path, "user.email"): "drop" it or keep only a keyed "hash" of it
    # (HMAC-SHA256 with `hash_key`), before anything is stored.
    redact: dict[str, Literal["drop", "hash"]] = Field(default_factory=dict)
    hash_key: SecretStr | None = None
    # Media are stored as their size and SHA-256 only: the fields named here always, and any other string
    # of at least `media_min_bytes` that is base64 or a data: URL.
    media_fields: tuple[str, ...] = ()
    media_min_bytes: int = Field(4096, ge=16)
    # Entity keys indexed beside the rules' own `entity` declarations: name → dotted field ("email": "user.email").
    entity_fields: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _hash_needs_key(self) -> RecordSettings:
        if "hash" in self.redact.values() and (self.hash_key is None or not self.hash_key.get_secret_value()):
            hashed = sorted(path for path, how in self.redact.items() if how == "hash")
            raise ValueError(f"record.redact hashes {', '.join(hashed)}: set record.hash_key (a secret; env "
                             "VIGIL_RECORD__HASH_KEY) so that the hashes cannot be reversed by guessing values")
        return self


def record_settings(raw: dict[str, Any] | None) -> RecordSettings:
    """The record's settings from the raw `record` table; ValueError says which key is wrong and why."""
    try:
        return RecordSettings.model_validate(raw or {})
    except ValidationError as error:
        problems = "; ".join(f"record.{'.'.join(str(p) for p in e['loc']) or '(table)'}: {e['msg']}"
                             for e in error.errors())
        raise ValueError(f"invalid record settings: {problems}") from None

