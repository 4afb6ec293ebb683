"""The issue's check: `vigil demo`, then a backtest of an edited example rule over the demo's stored traffic
shows the hits gained and lost, with examples, and a search finds what a rule caught."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import orjson
from click.testing import CliRunner
from rich.console import Console

from analysis.stored import EXAMPLES
from vigil.cli import main
from vigil.demo.run import run_demo

STUFFING = "Credential stuffing: many accounts from one IP"
BURST = "Posting burst from a new account"


def test_a_backtest_over_the_demos_stored_traffic(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run_demo(10_000, 7, out_dir=out, console=Console(file=io.StringIO()))
    assert (out / "record.sqlite").exists()
    rules = tmp_path / "rules"
    shutil.copytree(EXAMPLES, rules)
    for name, old, new in (("accounts.vigil", "accounts_tried_from_ip > 20", "accounts_tried_from_ip > 10"),
                           ("spam.vigil", "posts_last_10m > 20", "posts_last_10m > 30")):
        path = rules / name
        path.write_text(path.read_text().replace(old, new))
    report = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["backtest", str(rules), "--db", str(out / "state.sqlite"), "--since", "3650d",
                                       "--current", EXAMPLES, "--truth", "truth.attack", "--json", str(report)])
    assert result.exit_code == 0, result.stderr
    doc = orjson.loads(report.read_bytes())
    assert doc["events"]["replayed"] == 10_000 and sorted(doc["rules"]["changed"]) == sorted([STUFFING, BURST])
    changes = {c["rule"]: c for c in doc["per_rule"]}
    assert changes[STUFFING]["gained"] > 0 and changes[STUFFING]["examples"]["gained"]
    assert changes[BURST]["lost"] > 0 and changes[BURST]["examples"]["lost"]
    assert f'"{STUFFING}": +{changes[STUFFING]["gained"]:,} gained' in result.stdout
    found = CliRunner().invoke(main, ["search", "--db", str(out / "state.sqlite"), "--since", "3650d", "--json",
                                      f'rule "{BURST}" fired'])
    assert found.exit_code == 0, found.stderr
    assert len(orjson.loads(found.stdout)["events"]) == 50
