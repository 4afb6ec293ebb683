"""`vigil search` and `vigil backtest` over the demo's traffic in the record."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
from click.testing import CliRunner

from analysis.stored import EXAMPLES
from vigil.cli import main

RANGE = ["--since", "2026-11-01T00:00:00Z", "--until", "2026-11-03T00:00:00Z"]
STUFFING = "Credential stuffing: many accounts from one IP"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_search_pages_and_tops_in_the_rules_language(demo_record_path: Path) -> None:
    code, out, err = run("search", "--record", str(demo_record_path), *RANGE, "--rules", EXAMPLES, "--json",
                         "--limit", "3", f'rule "{STUFFING}" fired and event.success == false')
    assert code == 0, err
    page = orjson.loads(out)
    assert len(page["events"]) == 3 and page["cursor"] and page["filters"]["rules"] == [STUFFING]
    assert all(STUFFING in e["rules"] for e in page["events"])
    times = [e["time"] for e in page["events"]]
    assert times == sorted(times, reverse=True)
    code, out, err = run("search", "--record", str(demo_record_path), *RANGE, "--json", "--after", page["cursor"],
                         "--limit", "3", f'rule "{STUFFING}" fired')  # the name is known from the record
    assert code == 0, err
    assert orjson.loads(out)["events"][0]["time"] <= times[-1]
    code, out, err = run("search", "--record", str(demo_record_path), *RANGE, "--json", "top", "event.ip",
                         "where", f'rule "{STUFFING}" fired')
    assert code == 0, err
    top = orjson.loads(out)["top"]
    assert top and top[0]["count"] >= top[-1]["count"]
    code, out, err = run("search", "--record", str(demo_record_path), *RANGE, "--by", "hour", "verdict is block")
    assert code == 0, err
    assert "2026-11-02T00:00:00Z" in out


def test_a_query_with_errors_gets_the_checkers_diagnostics(demo_record_path: Path) -> None:
    code, _out, err = run("search", "--record", str(demo_record_path), *RANGE, 'verdict is blok')
    assert code == 1 and "query:1:12: error: unexpected `blok`" in err and "^" in err
    code, _out, err = run("search", "--record", str(demo_record_path), *RANGE, 'rule "Known stufing IP" fired')
    assert code == 1 and "the record holds no hit of a rule by that name" in err
    code, _out, err = run("search", "--record", str(demo_record_path), *RANGE, "--rules", EXAMPLES,
                          'rule "Known stufing IP" fired')
    assert code == 1 and "did you mean `Known stuffing IP`" in err


def test_backtest_of_an_edited_example_rule_writes_json_and_html(tmp_path: Path, demo_record_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(EXAMPLES, rules)
    accounts = rules / "accounts.vigil"
    accounts.write_text(accounts.read_text().replace("accounts_tried_from_ip > 20", "accounts_tried_from_ip > 10"))
    out_json, out_html = tmp_path / "report.json", tmp_path / "report.html"
    code, out, err = run("backtest", str(rules), "--record", str(demo_record_path), *RANGE, "--current", EXAMPLES,
                         "--truth", "truth.attack", "--json", str(out_json), "--html", str(out_html))
    assert code == 0, err
    assert f'rules changed: "{STUFFING}"' in out and "gained" in out
    doc = orjson.loads(out_json.read_bytes())
    change = next(c for c in doc["per_rule"] if c["rule"] == STUFFING)
    assert change["gained"] > 0 and change["examples"]["gained"]
    page = out_html.read_text()
    assert STUFFING in page and change["examples"]["gained"][0]["event_id"] in page
    assert "<script" not in page and "<link" not in page and "http" not in page  # self-contained


def test_backtest_says_when_a_range_is_empty_and_shows_a_candidates_errors(tmp_path: Path,
                                                                          demo_record_path: Path) -> None:
    code, _out, err = run("backtest", EXAMPLES, "--record", str(demo_record_path), "--since", "2001-01-01T00:00:00Z",
                          "--until", "2001-01-02T00:00:00Z")
    assert code == 1 and "holds no events between 2001-01-01T00:00:00Z" in err
    bad = tmp_path / "bad.vigil"
    bad.write_text('rule "x" when event.a > then block\n')
    code, _out, err = run("backtest", str(bad), "--record", str(demo_record_path), *RANGE)
    assert code == 1 and "bad.vigil:1:" in err
