"""`vigil outbox status|dead|requeue` over a store with waiting and given-up messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from vigil.cli import main
from vigil.effects import OutboxMessage
from vigil.stores.sqlite import SqliteStore


def test_status_dead_and_requeue(tmp_path: Path) -> None:
    db = str(tmp_path / "s.sqlite")
    store = SqliteStore(db)
    store.enqueue_outbox([OutboxMessage("hook", f"k{i}", orjson.dumps({"key": f"k{i}"}), 100.0) for i in range(3)])
    [row, *_] = store.claim_outbox("hook", 200.0, 1, 30.0)
    store.outbox_failed(row.id, 10, "POST http://x: HTTP 503", None)
    store.close()
    runner = CliRunner()
    status = runner.invoke(main, ["outbox", "status", "--db", db])
    assert status.exit_code == 0 and "hook: 2 waiting" in status.output and "1 given up" in status.output
    dead = runner.invoke(main, ["outbox", "dead", "--db", db])
    [line] = [orjson.loads(x) for x in dead.stdout_bytes.splitlines()]
    assert (line["sink"], line["key"], line["attempts"], line["error"]) == ("hook", "k0", 10, "POST http://x: HTTP 503")
    assert line["message"] == {"key": "k0"}
    requeued = runner.invoke(main, ["outbox", "requeue", "--db", db, "--sink", "hook"])
    assert requeued.exit_code == 0 and "1 message(s) to send again to hook" in requeued.output
    store = SqliteStore(db)
    assert store.outbox_status()["hook"].pending == 3 and store.outbox_dead() == []
    store.close()


def _given_up(db: str) -> None:
    store = SqliteStore(db)
    store.enqueue_outbox([OutboxMessage("hook", "k0", orjson.dumps({"key": "k0"}), 100.0)])
    [row] = store.claim_outbox("hook", 200.0, 1, 30.0)
    store.outbox_failed(row.id, 10, "HTTP 503", None)
    store.close()


def test_the_store_comes_from_the_settings_like_every_other_command(tmp_path: Path, monkeypatch: Any) -> None:
    """Without --db the outbox commands open the settings' store (VIGIL_STORE, vigil.toml), as
    `vigil dead-letters` and `vigil token` do, not the default file."""
    from_env, from_file = str(tmp_path / "env.sqlite"), str(tmp_path / "file.sqlite")
    _given_up(from_env)
    _given_up(from_file)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    monkeypatch.setenv("VIGIL_STORE", from_env)
    assert "hook: 0 waiting, 1 given up" in runner.invoke(main, ["outbox", "status"]).output
    assert runner.invoke(main, ["outbox", "requeue"]).output.startswith("1 message(s)")
    store = SqliteStore(from_env)
    assert store.outbox_status()["hook"].pending == 1
    store.close()
    monkeypatch.delenv("VIGIL_STORE")
    (tmp_path / "vigil.toml").write_text(f'[store]\nurl = "{from_file}"\n')
    [line] = runner.invoke(main, ["outbox", "dead"]).stdout_bytes.splitlines()
    assert orjson.loads(line)["key"] == "k0"
    assert not (tmp_path / "vigil-data").exists()  # the default store was never made
