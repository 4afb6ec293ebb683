"""Plugins from the `vigil` entry-point group: the example plugin end to end (`vigil check`, `vigil test`,
`vigil run` decide with its functions), and a clear error naming the plugin for each way one can fail.

Nothing is installed: each test writes the plugin's metadata (a `*.dist-info` directory, as pip would)
into a temporary directory and puts it on the path, in-process or in a subprocess's PYTHONPATH.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from plugin_helpers import (
    EXAMPLE,
    ROOT,
    RULES,
    dist_info,
    example_site,
    shouting_rules,
    standing_db,
    use_example_plugin,
)

from vigil.dsl.loader import load_ruleset
from vigil.dsl.testing import run_tests
from vigil.effects import Decision
from vigil.engine import Engine
from vigil.plugins import PluginError, load_functions


def plugin_module(site: Path, module: str, code: str, entry: str | None = None, name: str | None = None) -> None:
    """A one-file plugin `module` with its metadata in `site`."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    dist_info(site, f"vigil-{module}", "1.0", {name or module: entry or module})


def test_the_example_plugin_adds_its_functions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_example_plugin(monkeypatch, tmp_path)
    functions = load_functions()
    assert functions["shouting"].source == "example" and functions["shouting"].params == ("string",)
    assert functions["standing"].slow and functions["lower"].source == "vigil"
    with pytest.raises(Exception, match="unknown function `standing`"):
        load_ruleset([str(RULES)])  # without the plugin's functions the rules do not check
    monkeypatch.setenv("VIGIL_EXAMPLE_STANDING_DB", str(standing_db(tmp_path)))
    rules = load_ruleset([str(RULES)], functions=functions)
    results = run_tests(rules)
    assert [r.passed for r in results] == [True, True, True], [r.failures for r in results]
    engine = Engine(rules)
    loud = engine.process({"type": "post", "id": "1", "time": 0, "user": "u2", "text": "STOP SHOUTING"})
    # decided at once by the fast rule; the database is asked in the second stage
    assert isinstance(loud, Decision) and loud.verdict == "flag" and loud.pending
    engine.close()


def test_vigil_check_test_and_run_use_an_installed_plugin(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLE), str(example_site(tmp_path))]),
           "VIGIL_EXAMPLE_STANDING_DB": str(standing_db(tmp_path))}

    def vigil(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", "from vigil.cli import main; main()", *args], env=env,
                              capture_output=True, text=True, timeout=120, check=False)

    listed = vigil("functions")
    assert listed.returncode == 0, listed.stderr
    assert "shouting(string) → number  [example]  share of the letters in upper case, 0–1\n" in listed.stdout
    assert "standing(string) → string  [example, slow: second stage]" in listed.stdout
    assert "lower(string) → string  [vigil]  lower case\n" in listed.stdout
    checked = vigil("check", str(RULES))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: 2 rules")
    tested = vigil("test", str(RULES))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "3 passed, 0 failed" in tested.stdout
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in [
        {"type": "post", "id": "a", "time": 1, "user": "u1", "text": "hello"},
        {"type": "post", "id": "b", "time": 2, "user": "u2", "text": "LOUD AND CLEAR"},
        {"type": "post", "id": "c", "time": 3, "user": "u3", "text": "hello"},
    ]))
    ran = vigil("run", str(RULES), "--events", str(events))
    assert ran.returncode == 0, ran.stderr
    decisions = [orjson.loads(line) for line in ran.stdout.splitlines()]
    final = {d["event_id"]: d["verdict"] for d in decisions}  # a stage-2 decision follows its first one
    assert final == {"a": "block", "b": "flag", "c": "allow"}
    blocked = next(d for d in decisions if d["event_id"] == "a" and d["verdict"] == "block")
    assert blocked["stage"] == 2 and [e.get("name") for e in blocked["effects"]] == ["suspended-review"]
    # Without the plugin on the path the same rules are refused, naming the function.
    bare = subprocess.run([sys.executable, "-c", "from vigil.cli import main; main()", "check", str(RULES)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=120, check=False)
    assert bare.returncode == 1 and "unknown function `standing`" in bare.stderr


WHO = "plugin `{m}` (package vigil-{m} 1.0, entry point '{m}')"


@pytest.mark.parametrize(("code", "entry", "message"), [
    ("import no_such_module_here\n", None,
     WHO + " failed to load: ModuleNotFoundError: No module named 'no_such_module_here'"),
    ("X = 1\n", None, WHO + " has no `register_functions(functions)` hook"),
    ("def register_functions(functions):\n    functions.add('lower', ['string'], 'string', 'mine', call=str)\n",
     None, WHO + ": function `lower` is already registered by Vigil's built-ins"),
    ("def register_functions(functions):\n    functions.add('f', ['text'], 'number', 'doc', call=len)\n",
     None, WHO + ": function `f`: unknown type 'text'"),
    ("def register_functions(functions):\n    raise RuntimeError('no licence key')\n", None,
     WHO + " failed to register its functions: RuntimeError: no licence key"),
    ("def hook(functions):\n    functions.add('f2', ['string'], 'number', 'doc', call=len)\n", "{m}:hook", None),
])
def test_a_plugin_that_cannot_be_used_is_an_error_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str, entry: str | None, message: str | None,
        request: pytest.FixtureRequest) -> None:
    module = f"vigil_bad_{request.node.callspec.id.replace('-', '_')}"
    module = "".join(c if c.isalnum() or c == "_" else "_" for c in module)
    plugin_module(tmp_path, module, code, entry.format(m=module) if entry else None)
    monkeypatch.syspath_prepend(str(tmp_path))
    if message is None:  # `module:function` names the hook itself
        assert load_functions()["f2"].source == module
        return
    with pytest.raises(PluginError) as info:
        load_functions()
    assert str(info.value).startswith(message.format(m=module)), str(info.value)


def test_two_plugins_registering_one_name_is_an_error_naming_both(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    hook = "def register_functions(functions):\n    functions.add('risk', ['string'], 'number', 'd', call=len)\n"
    plugin_module(tmp_path, "vigil_risk_a", hook)
    plugin_module(tmp_path, "vigil_risk_b", hook)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as info:
        load_functions()
    assert "plugin `vigil_risk_b`" in str(info.value)
    assert str(info.value).endswith("function `risk` is already registered by plugin `vigil_risk_a`")


def test_vigil_check_reports_a_broken_plugin_by_name(tmp_path: Path) -> None:
    plugin_module(tmp_path, "vigil_broken", "raise ImportError('needs libfoo')\n")
    rules = tmp_path / "r.vigil"
    rules.write_text('rule "r" when lower(event.t) == "x" then flag\n')
    done = subprocess.run([sys.executable, "-c", "from vigil.cli import main; main()", "check", str(rules)],
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "Error: " + WHO.format(m="vigil_broken") + " failed to load: ImportError: needs libfoo" in done.stderr


@pytest.mark.parametrize("off_process_bytes", [0, 1], ids=["in-thread", "worker-process"])
def test_vigil_serve_checks_and_decides_with_a_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      off_process_bytes: int) -> None:
    # The signals carry the plugins' functions to the gate (start-up, uploads) and to the engine; a large
    # upload is checked in a spawned worker process, which gets them pickled (plugins' by reference).
    from starlette.testclient import TestClient

    from vigil.service import ServiceSettings, create_app
    from vigil.signals.providers import build_signals
    from vigil.stores.sqlite import SqliteStore

    use_example_plugin(monkeypatch, tmp_path)
    monkeypatch.setenv("VIGIL_EXAMPLE_STANDING_DB", str(standing_db(tmp_path)))
    signals = build_signals(classifiers_dir=str(tmp_path / "none"))
    settings = ServiceSettings(rules_dir=str(RULES), rules_source="store", auth=False,
                               off_process_bytes=off_process_bytes)
    with TestClient(create_app(settings, SqliteStore(tmp_path / "vigil.sqlite"), signals=signals),
                    base_url="http://localhost") as client:
        loud = client.post("/v1/events", json={"type": "post", "id": "p1", "time": 1, "user": "u2",
                                                "text": "STOP SHOUTING"}).json()
        assert loud["verdict"] == "flag" and loud["pending"] is True
        upload = client.post("/v1/rules", json={"files": {"main.vigil": (
            'rule "Shouted comment" when event is "comment" and shouting(event.text) > 0.5 then review\n'
            'test "t" given "comment" with text = "HEY" expect review\n')}})
        assert upload.status_code == 201, upload.text
        comment = client.post("/v1/events", json={"type": "comment", "id": "c1", "time": 2, "text": "HEY YOU"})
        assert comment.json()["verdict"] == "review"
        typo = client.post("/v1/rules", json={"files": {"main.vigil": (
            'rule "r" when shouting(event.text) > "high" then review\n')}})
        assert typo.status_code == 422 and "`>` needs a number, got a string" in typo.text


def test_vigil_eval_scores_rules_that_call_a_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from vigil.cli import main

    use_example_plugin(monkeypatch, tmp_path)
    rules = shouting_rules(tmp_path)
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "STOP IT NOW", "label": 1}\n{"text": "hello there", "label": 0}\n')
    result = CliRunner().invoke(main, ["eval", str(data), "-c", f"rules:{rules}", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "F1 1.000" in result.output
