"""Settings: vigil.toml, environment overrides, secrets that stay hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.config import DEFAULT_STORE, ConfigError, load_settings


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "vigil.toml"
    path.write_text('[store]\nurl = "postgresql://v:pw@db/v"\nredis = "redis://:pw2@r:6379/0"\n'
                    "[worker]\nmax_attempts = 7\n")
    settings = load_settings(path, env={"VIGIL_CLAIM_IDLE": "3.5"})
    assert settings.store.value == "postgresql://v:pw@db/v"
    assert settings.worker.max_attempts == 7 and settings.worker.claim_idle == 3.5
    assert "pw" not in repr(settings) and "pw2" not in str(settings.redis)
    settings = load_settings(path, env={"VIGIL_STORE": "other.sqlite", "VIGIL_REDIS": ""})
    assert settings.store.value == "other.sqlite" and settings.redis is not None


def test_defaults_and_shorthand() -> None:
    assert load_settings(env={}).store.value == DEFAULT_STORE
    settings = load_settings(env={"VIGIL_STORE": "redis://localhost:6379/1"})
    assert settings.shared and settings.store.value == DEFAULT_STORE


def test_mistakes_name_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "vigil.toml"
    path.write_text("[worker]\nbatchsize = 3\n")
    with pytest.raises(ConfigError, match="worker.batchsize"):
        load_settings(path, env={})
    with pytest.raises(ConfigError, match="must be a number"):
        load_settings(env={"VIGIL_BATCH": "many"})
    with pytest.raises(ConfigError, match="missing.toml"):
        load_settings(env={"VIGIL_CONFIG": str(tmp_path / "missing.toml")})
