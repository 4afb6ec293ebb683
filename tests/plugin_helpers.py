"""The example plugin (tests/plugins/vigil_plugin_example) made visible without installing it: its
metadata written as pip would, into a directory the test puts on the path."""

from __future__ import annotations

import sqlite3
import tomllib
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent / "plugins" / "vigil_plugin_example"
RULES = EXAMPLE / "rules"
ROOT = Path(__file__).resolve().parent.parent


def dist_info(site: Path, name: str, version: str, entry_points: dict[str, str]) -> None:
    """The metadata pip writes for an installed package: enough for importlib.metadata to list its
    entry points in the `vigil` group."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[vigil]\n{lines}")


def example_site(tmp_path: Path) -> Path:
    """The example plugin's metadata, from its own pyproject.toml."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    site = tmp_path / "site"
    dist_info(site, project["name"], project["version"], project["entry-points"]["vigil"])
    return site


def use_example_plugin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The example plugin importable and listed in the `vigil` entry-point group, for this test only."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(example_site(tmp_path)))


def shouting_rules(tmp_path: Path) -> Path:
    """A rules directory whose one rule flags posts that the example plugin's `shouting` scores above 0.8."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.vigil").write_text('rule "Shouting" when event is "post" and shouting(event.text) > 0.8 '
                                      'then flag\n')
    return rules


def standing_db(tmp_path: Path) -> Path:
    path = tmp_path / "standing.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id TEXT PRIMARY KEY, standing TEXT)")
        db.executemany("INSERT INTO users VALUES (?, ?)", [("u1", "suspended"), ("u2", "good")])
    return path


