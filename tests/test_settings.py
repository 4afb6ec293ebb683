"""Settings (vigil/settings.py): flags > environment > vigil.toml > defaults, the documented short variable
names, errors that name the file or variable, secrets that stay hidden, store URLs that must be known."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

import vigil.settings
from vigil.cli import main
from vigil.settings import ConfigError, Settings, load_settings
from vigil.stores.open import open_store

TOML = """
[store]
url = "postgresql://v:pw-file@db/v"
redis = "redis://:pw2@r:6379/0"
[worker]
max_attempts = 7
claim_idle = 1.5
[service]
port = 9000
max_batch = 10
[signals]
model = "from-file"
[second_stage]
batch_size = 4
[sinks.review]
kind = "webhook"
url = "http://127.0.0.1:9/hook"
[outputs.spam-review]
sink = "review"
[record]
keep_days = 30
"""


@pytest.fixture
def toml(tmp_path: Path) -> Path:
    path = tmp_path / "vigil.toml"
    path.write_text(TOML)
    return path


def test_each_source_overrides_the_one_below(toml: Path) -> None:
    only_file = load_settings(config=toml, env={})
    assert only_file.worker.max_attempts == 7 and only_file.service.port == 9000
    assert only_file.signals.model == "from-file" and only_file.second_stage.batch_size == 4
    assert only_file.worker.batch == 100  # default
    env = {"VIGIL_SERVICE__PORT": "9100", "VIGIL_WORKER__MAX_ATTEMPTS": "8", "VIGIL_CLAIM_IDLE": "3.5"}
    with_env = load_settings(config=toml, env=env)
    assert with_env.service.port == 9100 and with_env.worker.max_attempts == 8 and with_env.worker.claim_idle == 3.5
    assert with_env.service.max_batch == 10  # from the file still
    with_flags = load_settings({"service.port": 9200, "worker.max_attempts": None}, config=toml, env=env)
    assert with_flags.service.port == 9200 and with_flags.worker.max_attempts == 8  # None: flag not given


def test_raw_tables_are_carried_as_given(toml: Path) -> None:
    settings = load_settings(config=toml, env={})
    assert settings.sinks == {"review": {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}}
    assert settings.outputs == {"spam-review": {"sink": "review"}}
    assert settings.record == {"keep_days": 30}


def test_the_file_comes_from_vigil_config_or_the_working_directory(toml: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(env={"VIGIL_CONFIG": str(toml)}).service.port == 9000
    monkeypatch.chdir(tmp_path)
    assert load_settings(env={}).service.port == 9000
    monkeypatch.chdir(tmp_path.parent)
    assert load_settings(env={}).service.port == 8470


def test_the_documented_short_names_still_work() -> None:
    settings = load_settings(env={"VIGIL_STORE": "other.sqlite", "VIGIL_REDIS": "redis://r:1/0",
                                  "VIGIL_REDIS_PREFIX": "p", "VIGIL_BATCH": "5", "VIGIL_MAX_EVENT_SKEW": "9",
                                  "VIGIL_MODEL_ENDPOINT": "http://m/v1", "VIGIL_BANKS": "b.sqlite"})
    assert settings.store_url() == "other.sqlite" and settings.store.prefix == "p"
    assert settings.store.redis is not None and settings.store.redis.get_secret_value() == "redis://r:1/0"
    assert settings.worker.batch == 5 and settings.worker.max_event_skew == 9.0
    assert settings.signals.endpoint == "http://m/v1" and settings.signals.banks == "b.sqlite"
    # Redis alone in VIGIL_STORE: shared counters and labels, the default store for the rest.
    shorthand = load_settings(env={"VIGIL_STORE": "redis://localhost:6379/1"})
    assert shorthand.store.url is None and shorthand.store.redis is not None
    # An empty variable is not set.
    assert load_settings(env={"VIGIL_STORE": ""}).store.url is None


def test_secrets_never_show(toml: Path) -> None:
    settings = load_settings(config=toml, env={"VIGIL_SIGNALS__API_KEY": "sk-hidden"})
    shown = repr(settings) + str(settings)
    for secret in ("pw-file", "pw2", "sk-hidden"):
        assert secret not in shown
    assert settings.signals.api_key == SecretStr("sk-hidden")
    assert vigil.settings.redact("postgresql://v:pw-file@db/v") == "postgresql://v:***@db/v"


@pytest.mark.parametrize(("env", "file_text", "message"), [
    ({}, "[worker]\nbatchsize = 3\n", r"vigil.toml: worker.batchsize: unknown setting \(known: max_attempts"),
    ({}, "[stor]\nurl = 'x'\n", r"vigil.toml: stor: unknown setting"),
    ({}, "[worker]\nbatch = 'many'\n", r"vigil.toml: worker.batch: .*integer"),
    ({}, "[worker\n", r"settings file .*vigil.toml"),
    ({"VIGIL_STORE__FOO": "1"}, None, r"environment variable VIGIL_STORE__FOO: unknown setting"),
    ({"VIGIL_STOR__URL": "x"}, None, r"environment variable VIGIL_STOR__URL: no settings section 'stor'"),
    ({"VIGIL_BATCH": "many"}, None, r"environment variable VIGIL_BATCH \(worker.batch\)"),
    ({"VIGIL_STORE": "mysql://u@h/db"}, None, r"VIGIL_STORE \(store.url\): unknown store URL scheme 'mysql'"),
    ({"VIGIL_REDIS": "http://h"}, None, r"VIGIL_REDIS \(store.redis\)"),
])
def test_mistakes_name_the_file_or_variable(tmp_path: Path, env: dict[str, str], file_text: str | None,
                                            message: str) -> None:
    path = None
    if file_text is not None:
        path = tmp_path / "vigil.toml"
        path.write_text(file_text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config=path, env=env)


def test_a_missing_settings_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.toml"):
        load_settings(env={"VIGIL_CONFIG": str(tmp_path / "missing.toml")})


def test_a_flag_with_an_unknown_url_scheme_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"command line \(store.url\): unknown store URL scheme 'foo'"):
        load_settings({"store.url": "foo://x"}, env={})


def test_settings_built_in_code_read_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_SERVICE__PORT", "1")
    monkeypatch.setenv("VIGIL_STORE", "postgresql://u@h/db")
    assert Settings().service.port == 8470 and Settings().store.url is None


@pytest.mark.parametrize("url", ["postgresql://u@127.0.0.1:1/db", "mysql://u@h/db", "http://h/x"])
def test_no_url_ever_becomes_a_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """`vigil run --db postgresql://u@h/db` created ./postgresql:/u@h/db as a SQLite file (issue 12)."""
    monkeypatch.chdir(tmp_path)
    from vigil.stores.sqlite import open_store as open_sqlite

    with pytest.raises(ValueError, match="not a SQLite store"):
        open_sqlite(url)
    if not url.startswith("postgresql"):
        with pytest.raises(ValueError, match="unknown store URL scheme"):
            open_store(url)
    assert list(tmp_path.iterdir()) == []


def test_vigil_run_refuses_an_unknown_scheme_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.vigil").write_text('rule "Any" when event is "post" then flag\n')
    (tmp_path / "e.jsonl").write_text('{"type": "post", "id": "1", "time": 0}\n')
    result = CliRunner().invoke(main, ["run", "r.vigil", "--events", "e.jsonl", "--db", "mysql://u@h/db"])
    assert result.exit_code == 1
    assert "unknown store URL scheme 'mysql'" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.jsonl", "r.vigil"]


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(vigil.settings)
    assert tried > 0 and failures == 0


def test_every_setting_is_in_the_reference_with_its_variable_and_default() -> None:
    from pydantic import BaseModel

    from vigil.settings import ENV_PREFIX, SHORT_ENV

    text = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    reference = text[text.index("### Settings reference"):]
    rows = {line.split("|")[1].strip().strip("`"): line for line in reference.splitlines() if line.startswith("| `")}
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            assert f"[{section}]" in rows, section
            continue
        for key, sub in model.model_fields.items():
            row = rows.get(f"{section}.{key}")
            assert row is not None, f"{section}.{key} is not in docs/operations.md's settings reference"
            assert f"{ENV_PREFIX}{section.upper()}__{key.upper()}" in row
            default = sub.get_default(call_default_factory=True)
            assert (f"`{default}`" in row) or default in (None, ()), (section, key, row)
    for name, (section, key) in SHORT_ENV.items():
        assert name in rows[f"{section}.{key}"], name


def test_search_limits_are_settings_with_the_documented_defaults() -> None:
    from vigil.analysis.search import SearchLimits

    assert Settings().search.limits() == SearchLimits()
    settings = load_settings(env={"VIGIL_SEARCH__MAX_SCANNED": "500", "VIGIL_SEARCH__TIME_BUDGET": "2.5"})
    assert settings.search.limits() == SearchLimits(max_scanned=500, time_budget=2.5)
