"""Sinks in the runtime every front door builds: from vigil.toml's tables, with a warning for outputs no
route names, and one line for settings that cannot be used."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from vigil.cli import main
from vigil.dsl.loader import load_ruleset
from vigil.runtime import build_runtime
from vigil.settings import load_settings

from .conftest import RULES, scam_posts


def test_outputs_no_route_names_are_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "vigil.toml"
    config.write_text(f'[sinks.file]\nkind = "jsonl"\npath = "{tmp_path / "o.jsonl"}"\n\n[outputs]\nredcat = "file"\n')
    with caplog.at_level(logging.WARNING, logger="vigil.runtime"):
        runtime = build_runtime(load_settings(config=config, env={}),
                                load_ruleset("r.vigil", files={"r.vigil": RULES}))
    runtime.close()
    assert "outputs no [outputs] line routes (they stay in decisions only): redact, review" in caplog.text


def test_vigil_run_writes_outputs_to_a_file_sink(tmp_path: Path) -> None:
    rules = tmp_path / "r.vigil"
    rules.write_text(RULES)
    events = tmp_path / "e.jsonl"
    events.write_bytes(b"\n".join(scam_posts(5)) + b"\n")
    config = tmp_path / "vigil.toml"
    config.write_text(f'[sinks.file]\nkind = "jsonl"\npath = "{tmp_path / "o.jsonl"}"\n\n[outputs]\nredact = "file"\n')
    result = CliRunner().invoke(main, ["run", str(rules), "--events", str(events), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "o.jsonl").read_bytes().splitlines()) == 5  # delivered before it exits


def test_a_bad_sink_setting_is_one_line(tmp_path: Path) -> None:
    rules = tmp_path / "r.vigil"
    rules.write_text(RULES)
    config = tmp_path / "vigil.toml"
    config.write_text('[sinks.hook]\nkind = "webhook"\nurl = "https://x"\n')
    result = CliRunner().invoke(main, ["run", str(rules), "--events", "-", "--config", str(config)], input="")
    assert result.exit_code != 0
    assert "sinks.hook.secret: Field required" in result.output and "Traceback" not in result.output
