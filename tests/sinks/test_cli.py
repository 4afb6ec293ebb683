"""`vigil outbox status|dead|requeue` over a store with waiting and given-up messages."""

from __future__ import annotations

from pathlib import Path

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
