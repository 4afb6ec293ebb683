"""`vigil worker` with a plugin's function: checked and decided at start, and again after a hot reload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from plugin_helpers import shouting_rules, use_example_plugin
from pydantic import SecretStr

from vigil.settings import Settings, StoreSettings, WorkerSettings
from vigil.workers.cli import run_worker

from .conftest import T0, add_events


def test_a_worker_decides_with_a_plugin_function(redis_client: Any, redis_url: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    use_example_plugin(monkeypatch, tmp_path)
    rules = shouting_rules(tmp_path)
    add_events(redis_client, "events", [orjson.dumps({"type": "post", "id": f"e{i}", "time": T0 + i,
                                                      "text": text}) for i, text in enumerate(["HEY", "hey"])])
    settings = Settings(store=StoreSettings(url=SecretStr("memory:"), redis=SecretStr(redis_url)),
                    worker=WorkerSettings(reload_interval=0.2))
    stats = run_worker(settings, rules=[str(rules)], stream_redis=redis_url, stream="events", bootstrap=None,
                       topic=None, group="g", consumer="w1", output=None, max_events=2, idle_exit=1.5)
    assert stats.decided == 2
    decisions = {k.decode(): orjson.loads(v)["verdict"]
                 for k, v in redis_client.hgetall("vigil:decisions:redis:events").items()}
    assert decisions == {"e0": "flag", "e1": "allow"}


def test_a_worker_reloads_rules_with_the_plugin_functions_it_started_with(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.engine import Engine
    from vigil.gate import Gate
    from vigil.plugins import load_functions
    from vigil.signals.providers import Signals
    from vigil.workers.loop import RulesWatcher

    use_example_plugin(monkeypatch, tmp_path)
    signals = Signals(functions=load_functions())
    gate = Gate(signals)
    rules = tmp_path / "main.vigil"
    rules.write_text('rule "Any" when event is "post" then flag\n')
    engine = Engine(gate.admit_paths([str(rules)]), signals=signals)
    watcher = RulesWatcher(engine, gate, source="directory", paths=[str(rules)], interval=0.0)
    rules.write_text('rule "Shouting" when event is "post" and shouting(event.text) > 0.8 then block\n'
                     'test "t" given "post" with text = "HEY" expect block\n')
    assert watcher.poll() and watcher.rejected == 0
    decision: Any = engine.process({"type": "post", "id": "1", "time": T0, "text": "HEY"})
    assert decision.verdict == "block"
    engine.close()
