"""`vigil run --workers N`: the same decisions as one process, with rules shared out by label links."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from vigil.cli import main
from vigil.demo.generator import write_jsonl
from vigil.demo.run import shipped_rules
from vigil.dsl.loader import load_ruleset
from vigil.parallel import _label_keys, partition

RULES = """
entity user = event.actor.id
rule "a" when event is "report" then label user "suspect" for 1 day
rule "b" when user has label "suspect" then review
rule "c" when event is "post" then flag
rule "d" when event is "login" then flag
rule "e" when event is "signup" then label user "new" for 1 day
rule "f" when user has label "new" and event is "post" then flag
"""


def test_rules_linked_by_a_label_share_a_process() -> None:
    ruleset = load_ruleset("r.vigil", files={"r.vigil": RULES})
    shares = partition(ruleset, 2)
    assert sorted(i for share in shares for i in share) == list(range(6))
    index = {rule.name: i for i, rule in enumerate(ruleset.program.rules)}
    together = [set(share) for share in shares]
    assert any({index["a"], index["b"]} <= s for s in together)
    assert any({index["e"], index["f"]} <= s for s in together)
    assert len(shares) == 2 and abs(len(shares[0]) - len(shares[1])) <= 2


def test_label_keys_follow_definitions() -> None:
    text = RULES + '\ndefine flagged = user has label "x"\nrule "g" when flagged then flag\n'
    ruleset = load_ruleset("r.vigil", files={"r.vigil": text})
    assert _label_keys(ruleset.program.rules[-1], ruleset.program.defines) == {("user", "x")}


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    write_jsonl(path, 8000, seed=5)
    return path


def _decisions(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_two_workers_decide_exactly_as_one(tmp_path: Path, events: Path) -> None:
    runner = CliRunner()
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    for out, workers in ((one, "1"), (two, "2")):
        result = runner.invoke(main, ["run", shipped_rules(), "--events", str(events), "--out", str(out),
                                      "--workers", workers, "--db", str(tmp_path / f"state{workers}.sqlite")])
        assert result.exit_code == 0, result.output
    a, b = _decisions(one), _decisions(two)
    assert len(a) == len(b) == 8000
    assert sum(d["verdict"] != "allow" for d in a) > 100
    for x, y in zip(a, b):
        assert (x["event_id"], x["verdict"], sorted(x["rules"])) == (y["event_id"], y["verdict"], sorted(y["rules"]))  # type: ignore[type-var]
    assert (tmp_path / "state2.sqlite.part0").exists() and (tmp_path / "state2.sqlite.part1").exists()


def test_slow_rules_need_one_worker(tmp_path: Path, events: Path) -> None:
    rules = tmp_path / "slow.vigil"
    rules.write_text('rule "p" when event is "message" and policy "x" finds event.text violating then block\n')
    result = CliRunner().invoke(main, ["run", str(rules), "--events", str(events), "--workers", "2",
                                       "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2 and "one worker" in result.output
