"""`vigil rules …` on a SQLite store: stages listed, changed, promoted, paused and rolled back, each change
audited by the person at the keyboard; a rule or entity the active version lacks is refused with why."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from vigil.cli import main
from vigil.stores.sqlite import SqliteStore

RULES = ('entity user = event.actor.id\n'
         'rule "Burst" when event is "post" then review\n'
         'rule "Quiet" mode shadow when event is "post" and event.text contains "x" then flag\n')


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_rule_stages_from_the_command_line(tmp_path: Path) -> None:
    db = str(tmp_path / "vigil.sqlite")
    store = SqliteStore(db)
    stored = store.add_rules_version("v1", {"main.vigil": RULES}, ("main.vigil",), author="alice", message="", now=0)
    store.activate_rules_version(stored.seq)
    store.close()
    code, out = _run("rules", "stages", "--db", db)
    assert code == 0, out
    assert "Burst: live  [written: live]" in out and "Quiet: shadow  [written: shadow]" in out
    code, out = _run("rules", "pause", "Burst", "--reason", "noisy", "--as", "alice", "--db", db)
    assert code == 0 and "Burst: paused (change 1 by alice)" in out
    code, out = _run("rules", "promote", "Quiet", "--db", db)
    assert code == 1 and "--percent N --by ENTITY" in out
    code, out = _run("rules", "promote", "Quiet", "--percent", "10", "--by", "user", "--as", "bob", "--db", db)
    assert code == 0 and "Quiet: rollout 10% by user" in out
    code, out = _run("rules", "stage", "Quiet", "rollout", "--percent", "5", "--by", "account", "--db", db)
    assert code == 1 and "declared: user" in out
    code, out = _run("rules", "stage", "Nope", "live", "--db", db)
    assert code == 1 and "no rule 'Nope'" in out
    code, out = _run("rules", "rollback", "Burst", "--as", "alice", "--db", db)
    assert code == 0 and "Burst: as written" in out
    code, out = _run("rules", "history", "Burst", "--db", db)
    assert [line.split()[3] for line in out.splitlines()] == ["as", "paused"]
    code, out = _run("audit", "list", "--db", db)
    assert [line.split()[4] for line in out.splitlines()] == ["rules.stage", "rules.stage", "rules.stage_rollback"]
