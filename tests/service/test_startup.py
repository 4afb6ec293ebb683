"""Starting the service: the start-up gate runs the rules' tests with the engine's own signals (hash banks
included), and a refusal is one clear message, with nothing claimed to be serving."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from vigil.cli import main
from vigil.hashing.banks import NewEntry
from vigil.hashing.hashers import SignalType, simhash_text
from vigil.hashing.sqlite import SqliteBankStore

from .helpers import Running, event, write_rules

SPAM = "buy cheap pills now at the best price"
BANKED = f"""\
rule "Known spam text"
  when event is "post" and event.text matches bank "spam-text"
  then block

test "known spam is blocked"
  given "post" with text = "{SPAM}"
  expect block
"""


def _bank(path: Path) -> None:
    store = SqliteBankStore(path)
    try:
        store.create_bank("spam-text", SignalType.TEXT_SIMHASH)
        store.add_entries("spam-text", [NewEntry(simhash_text(SPAM), "test")])
    finally:
        store.close()


def test_the_start_up_gate_sees_the_banks(make_service: Callable[..., Running], rules_dir: Path,
                                          tmp_path: Path) -> None:
    banks = tmp_path / "banks.sqlite"
    _bank(banks)
    write_rules(rules_dir, BANKED)
    running = make_service(banks=str(banks))  # refused before: the tests ran without the banks
    assert running.get("/v1/rules").json()["seq"] == 1
    assert running.post_event(event("post", text=SPAM)).json()["verdict"] == "block"


def test_vigil_test_and_vigil_serve_agree_on_banked_rules(rules_dir: Path, tmp_path: Path) -> None:
    banks = tmp_path / "banks.sqlite"
    _bank(banks)
    write_rules(rules_dir, BANKED)
    tested = CliRunner().invoke(main, ["test", str(rules_dir), "--banks", str(banks)])
    assert tested.exit_code == 0, tested.output
    # serve with a rules file that also fails: the refusal names the failing test, in one message
    (rules_dir / "more.vigil").write_text('rule "Flag all" when event is "post" then flag\n'
                                          'test "wrong"\n  given "post" with text = "hi"\n  expect block\n')
    refused = CliRunner().invoke(main, ["serve", "--rules", str(rules_dir), "--banks", str(banks),
                                        "--db", "memory", "--no-auth"])
    assert refused.exit_code == 1
    first, *rest = refused.output.strip().splitlines()
    assert first == f"Error: rules in {rules_dir} refused, so the service did not start: 1 of the rules' 2 tests failed"
    assert [line for line in rest if "'wrong'" in line], refused.output
    assert "known spam" not in refused.output  # the banked test passed at start-up too
    assert "keeps serving" not in refused.output and "Traceback" not in refused.output
