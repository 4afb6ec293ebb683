"""Every front door has every capability (docs/operations.md, "Front doors"): each cell of that table is a
case here, run through the door itself with one vigil.toml: a trained classifier, a hash bank, a policy
model (the loopback fake of the chat-completions protocol), Redis counters and labels (a real
redis-server), a PostgreSQL store (a real server), and the rules' own tests as a gate. The last test
runs one event set through `vigil run`, `vigil serve` and `vigil worker` and compares the decisions."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from backends.servers import Server, fresh_database, postgres_server, redis_server
from classifiers.fake_openai import FakeOpenAI, Reply
from classifiers.training_text import HAM, SPAM
from click.testing import CliRunner

from vigil.cli import main
from vigil.settings import load_settings

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
BAD_TEXT = "this exact chain letter was reported a thousand times already, forward it to ten friends"

RULES = """
entity user = event.actor.id
define posts = count of "post" by user in the last 1 hour

rule "Spammy by classifier" when event is "post" and classifier "spam" on event.text > 0.6 then review
rule "Known bad text" when event is "post" and event.text matches bank "chain-letters" within 3 then block
rule "Harassment by policy"
  when event is "post" and policy "harassment" finds event.text violating
  then block, label user "harasser" for 1 day
rule "Busy" when event is "post" and posts > 2 then flag, label user "busy" for 1 day
"""

GATE_TESTS = """
test "a calm post is blocked"
  given "post" from user "t1" with text = "the weather is lovely today"
  expect block
"""

POLICY = "# Harassment\n\n## Instructions\nAnswer 1 if the text insults a person, else 0.\n"

# What each event must get, whatever the front door: (final verdict, the rules fired in both stages).
EXPECTED = {
    "spam": ("review", ["Spammy by classifier"]),
    "bank": ("block", ["Known bad text"]),
    "insult": ("block", ["Harassment by policy"]),
    "busy-1": ("allow", []),
    "busy-2": ("allow", []),
    "busy-3": ("flag", ["Busy"]),
}
# The cell of the table each event proves, and the rule it proves it with.
PROVES = {"classifiers": "spam", "banks": "bank", "policies": "insult"}


def events() -> list[dict[str, Any]]:
    texts = {"spam": ("u1", "cheap followers, click here"), "bank": ("u2", BAD_TEXT),
             "insult": ("u3", "you idiot"), "busy-1": ("u4", "hello"), "busy-2": ("u4", "hello again"),
             "busy-3": ("u4", "and again")}
    return [{"type": "post", "id": event_id, "time": T0 + i, "actor": {"id": user}, "text": text}
            for i, (event_id, (user, text)) in enumerate(texts.items())]


def summary(decisions: list[dict[str, Any]]) -> dict[str, tuple[str, list[str]]]:
    """Per event id: the last verdict given (the second stage's, when there is one) and every rule fired."""
    out: dict[str, tuple[str, list[str]]] = {}
    for decision in decisions:
        verdict, rules = out.get(decision["event_id"], ("allow", []))
        out[decision["event_id"]] = (decision["verdict"], sorted({*rules, *decision["rules"]}))
        del verdict
    return out


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with postgres_server(Path(tmp_path_factory.mktemp("pg"))) as server:
        yield server


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="module")
def model() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    server.script = lambda body: Reply(content="1" if "idiot" in str(body["messages"][-1]) else "0")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def signals_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained classifier, a hash bank and a policy: the signals every front door is configured with."""
    from vigil.classifiers.local import train
    from vigil.hashing.banks import NewEntry
    from vigil.hashing.hashers import SignalType, simhash_text
    from vigil.hashing.open import open_bank_store

    root = tmp_path_factory.mktemp("signals")
    train("spam", SPAM + HAM, ["spam"] * len(SPAM) + ["ham"] * len(HAM), featurizer="tfidf-char",
          positive_label="spam", cv_folds=3).save(root / "classifiers")
    banks = open_bank_store(str(root / "banks.sqlite"))
    banks.create_bank("chain-letters", SignalType.TEXT_SIMHASH)
    banks.add_entries("chain-letters", [NewEntry(simhash_text(BAD_TEXT), source="test")])
    banks.close()
    (root / "policies").mkdir()
    (root / "policies" / "harassment.md").write_text(POLICY)
    return root


@pytest.fixture
def site(tmp_path: Path, signals_dir: Path, model: FakeOpenAI) -> Callable[..., Path]:
    """site(**store): a rules directory and a vigil.toml naming the signals (and the store, if given);
    returns the vigil.toml."""
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "main.vigil").write_text(RULES)

    def make(*, url: str | None = None, redis: str | None = None, prefix: str = "vigil") -> Path:
        lines = ["[signals]", f'classifiers = "{signals_dir / "classifiers"}"',
                 f'policies = "{signals_dir / "policies"}"', f'banks = "{signals_dir / "banks.sqlite"}"',
                 f'endpoint = "{model.base_url}"', "timeout = 5", "[store]", f'prefix = "{prefix}"']
        if url is not None:
            lines.append(f'url = "{url}"')
        if redis is not None:
            lines.append(f'redis = "{redis}"')
        path = tmp_path / f"vigil-{prefix}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    return make


# ---- each front door: decide `events()` with the settings in `config`, return every decision written ----

def through_run(config: Path, rules: Path, tmp_path: Path) -> list[dict[str, Any]]:
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events()))
    out = tmp_path / "decisions.jsonl"
    result = CliRunner().invoke(main, ["run", str(rules), "--events", str(events_file), "--out", str(out),
                                       "--config", str(config)])
    assert result.exit_code == 0, result.output
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def through_explain(config: Path, rules: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """One `vigil explain` per event, over a store that keeps the counters from one to the next."""
    out = []
    for event in events():
        result = CliRunner().invoke(main, ["explain", str(rules), "--event", orjson.dumps(event).decode(),
                                           "--config", str(config), "--db", str(tmp_path / "explain.sqlite")])
        assert result.exit_code == 0, result.output
        for block in re.split(r"\n(?=event )", result.output.strip()):
            header = re.match(r"event (\S+) \(post\): (\w+)", block)
            assert header is not None, result.output
            fired = re.findall(r'^  rule "([^"]+)" \(\w+\) →', block, flags=re.MULTILINE)
            out.append({"event_id": header[1], "verdict": header[2].lower(), "rules": fired})
    return out


def through_serve(config: Path, rules: Path, tmp_path: Path, *, url: str | None = None) -> list[dict[str, Any]]:
    from starlette.testclient import TestClient

    from vigil.service.cli import serve_app

    settings = load_settings({"service.rules_dir": str(rules), "service.auth": False,
                              "store.url": url or str(tmp_path / "serve.sqlite")}, config=config, env={})
    out = []
    with TestClient(serve_app(settings, tune_gc=False), base_url="http://localhost") as client:
        for event in events():
            first = client.post("/v1/events", json=event)
            assert first.status_code == 200, first.text
            out.append(first.json())
            if first.json()["pending"]:
                path = f"/v1/decisions/{event['id']}"
                outcome = _wait(lambda path=path: client.get(path).json(), lambda o: "second_stage" in o)
                out.append(outcome["second_stage"])
    return out


def through_worker(config: Path, rules: Path, tmp_path: Path, *, redis_url: str,
                   url: str | None = None) -> list[dict[str, Any]]:
    import redis

    from vigil.workers.cli import run_worker

    client = redis.Redis.from_url(redis_url)
    stream = f"events-{time.monotonic_ns()}"
    for event in events():
        client.xadd(stream, {"event": orjson.dumps(event)})
    settings = load_settings({"store.url": url or "memory:", "store.redis": redis_url}, config=config, env={})
    stats = run_worker(settings, rules=[str(rules)], stream_redis=redis_url, stream=stream, bootstrap=None,
                       topic=None, group="g", consumer="w1", output=f"{stream}:out", max_events=len(events()),
                       idle_exit=2.0)
    assert stats.decided == len(events())
    written = [orjson.loads(fields[b"decision"]) for _, fields in client.xrange(f"{stream}:out")]
    client.close()
    return written


def _wait(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


DOORS = ["run", "explain", "serve", "worker"]


def decide(door: str, config: Path, tmp_path: Path, redis_url: str) -> dict[str, tuple[str, list[str]]]:
    rules = tmp_path / "rules"
    if door == "run":
        return summary(through_run(config, rules, tmp_path))
    if door == "explain":
        return summary(through_explain(config, rules, tmp_path))
    if door == "serve":
        return summary(through_serve(config, rules, tmp_path))
    return summary(through_worker(config, rules, tmp_path, redis_url=redis_url))


# ---- the cells ----

@pytest.mark.parametrize("capability", ["classifiers", "banks", "policies"])
@pytest.mark.parametrize("door", DOORS)
def test_a_front_door_has_the_signals(door: str, capability: str, site: Callable[..., Path], tmp_path: Path,
                                      redis_url: str, redis_client: Any) -> None:
    decided = decide(door, site(), tmp_path, redis_url)
    event_id = PROVES[capability]
    assert decided[event_id] == EXPECTED[event_id]


@pytest.mark.parametrize("door", DOORS)
def test_a_front_door_keeps_counters_and_labels_in_redis(door: str, site: Callable[..., Path], tmp_path: Path,
                                                         redis_url: str, redis_client: Any) -> None:
    from vigil.stores.redis_labels import RedisLabels

    decided = decide(door, site(redis=redis_url, prefix="shared"), tmp_path, redis_url)
    assert decided["busy-3"] == EXPECTED["busy-3"]
    labels = RedisLabels(redis_client, "shared")
    assert labels.has("user", "u4", "busy", T0 + 10) and labels.has("user", "u3", "harasser", T0 + 10)
    assert any(key.startswith(b"shared:") for key in redis_client.keys("shared:*"))


@pytest.mark.parametrize("door", ["run", "explain", "serve", "worker"])
def test_a_front_door_keeps_state_in_postgresql(door: str, site: Callable[..., Path], tmp_path: Path,
                                                postgres: Server, redis_url: str, redis_client: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`vigil run --db postgresql://…` made a SQLite file named after the URL (issue 12)."""
    from vigil.stores.postgres import PostgresStore

    url = fresh_database(postgres, "doors")
    monkeypatch.chdir(tmp_path)
    config = site()
    rules = tmp_path / "rules"
    if door == "run":
        events_file = tmp_path / "events.jsonl"
        events_file.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events()))
        result = CliRunner().invoke(main, ["run", str(rules), "--events", str(events_file), "--config", str(config),
                                           "--db", url])
        assert result.exit_code == 0, result.output
    elif door == "explain":
        for event in events():
            result = CliRunner().invoke(main, ["explain", str(rules), "--event", orjson.dumps(event).decode(),
                                               "--config", str(config), "--db", url])
            assert result.exit_code == 0, result.output
    elif door == "serve":
        through_serve(config, rules, tmp_path, url=url)
    else:
        # The worker's counters and labels are Redis's; the store keeps what else it keeps (dead letters).
        bad = {"type": "post", "id": "x", "time": "not a time"}
        import redis

        client = redis.Redis.from_url(redis_url)
        client.xadd("pg-events", {"event": orjson.dumps(bad)})
        client.close()
        from vigil.workers.cli import run_worker

        settings = load_settings({"store.url": url, "store.redis": redis_url}, config=config, env={})
        run_worker(settings, rules=[str(rules)], stream_redis=redis_url, stream="pg-events", bootstrap=None,
                   topic=None, group="g", consumer="w1", output=None, max_events=1, idle_exit=2.0)
    store = PostgresStore(url)
    try:
        if door == "worker":
            assert [letter.source for letter in store.dead_letters(10)] == ["redis:pg-events"]
        else:
            assert any(r.label == "busy" and r.present for r in store.entity_labels("user", "u4"))
    finally:
        store.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("postgres")) == []


def test_a_url_vigil_does_not_know_is_refused_by_every_door(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.vigil").write_text('rule "Any" when event is "post" then flag\n')
    (tmp_path / "e.jsonl").write_text('{"type": "post", "id": "1", "time": 0}\n')
    for args in (["run", "r.vigil", "--events", "e.jsonl"], ["explain", "r.vigil", "--event", "{}"],
                 ["serve", "--rules", str(tmp_path), "--no-auth"], ["dead-letters", "list"]):
        result = CliRunner().invoke(main, [*args, "--db", "mysql://u@h/db"])
        assert result.exit_code == 1, (args, result.output)
        assert "unknown store URL scheme 'mysql'" in result.output, (args, result.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.jsonl", "r.vigil"]


def test_vigil_test_has_the_signals(site: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "rules" / "tests.vigil").write_text(f"""
test "spam by classifier"
  given "post" from user "t1" with text = "cheap followers, click here"
  expect review, rule "Spammy by classifier"
test "a known chain letter"
  given "post" from user "t2" with text = "{BAD_TEXT}"
  expect block, rule "Known bad text"
test "an insult by policy"
  given "post" from user "t3" with text = "you idiot"
  expect block, rule "Harassment by policy", label user "harasser"
""")
    result = CliRunner().invoke(main, ["test", str(tmp_path / "rules"), "--config", str(site())])
    assert result.exit_code == 0, result.output
    assert "3 passed, 0 failed" in result.output


def test_vigil_eval_of_rules_has_the_signals(site: Callable[..., Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_CONFIG", str(site()))
    data = tmp_path / "data.jsonl"
    rows = [("cheap followers, click here", 1), (BAD_TEXT, 1), ("you idiot", 1), ("lovely weather", 0)]
    data.write_bytes(b"".join(orjson.dumps({"text": text, "label": label}) + b"\n" for text, label in rows))
    result = CliRunner().invoke(main, ["eval", str(data), "-c", f"rules:{tmp_path / 'rules'}",
                                       "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    report = orjson.loads((tmp_path / "report" / "result.json").read_bytes())
    assert [p["label"] for p in report["predictions"]] == [True, True, True, False], report["misclassified"]


@pytest.mark.parametrize("door", ["serve", "worker"])
def test_the_rules_tests_gate_a_version(door: str, site: Callable[..., Path], tmp_path: Path, redis_url: str,
                                        redis_client: Any) -> None:
    """A rules version whose own tests fail never runs (the tests see the same signals as the engine)."""
    import click

    (tmp_path / "rules" / "tests.vigil").write_text(GATE_TESTS)
    config = site()
    if door == "serve":
        from vigil.service.app import RulesRejected, prepare
        from vigil.service.cli import serve_app

        settings = load_settings({"service.rules_dir": str(tmp_path / "rules"), "service.auth": False,
                                  "store.url": str(tmp_path / "gate.sqlite")}, config=config, env={})
        app = serve_app(settings, tune_gc=False)
        with pytest.raises(RulesRejected, match="a calm post is blocked"):
            prepare(app)
        app.state.service.store.close()
    else:
        with pytest.raises(click.ClickException, match="a calm post is blocked"):
            through_worker(config, tmp_path / "rules", tmp_path, redis_url=redis_url)


def test_two_serve_instances_over_one_redis_decide_as_one(site: Callable[..., Path], tmp_path: Path,
                                                          redis_url: str, redis_client: Any) -> None:
    """Each event of one user goes to the other instance: the third is flagged only if both count together,
    and a label one instance set is seen by the other (serve could not use Redis state: issue 12)."""
    from starlette.testclient import TestClient

    from vigil.service.cli import serve_app

    config = site(redis=redis_url, prefix="two")
    (tmp_path / "rules" / "main.vigil").write_text(RULES + """
rule "Known busy" when event is "message" and user has label "busy" then review
""")
    apps = [serve_app(load_settings({"service.rules_dir": str(tmp_path / "rules"), "service.auth": False,
                                     "store.url": str(tmp_path / f"serve-{i}.sqlite")}, config=config, env={}),
                      tune_gc=False) for i in range(2)]
    with TestClient(apps[0], base_url="http://localhost") as one, \
            TestClient(apps[1], base_url="http://localhost") as two:
        verdicts = [(one if i % 2 == 0 else two).post("/v1/events", json=event).json()["verdict"]
                    for i, event in enumerate(e for e in events() if e["actor"]["id"] == "u4")]
        assert verdicts == ["allow", "allow", "flag"]
        message = {"type": "message", "id": "m1", "time": T0 + 20, "actor": {"id": "u4"}, "text": "hi"}
        assert one.post("/v1/events", json=message).json()["verdict"] == "review"


def test_run_serve_and_a_worker_decide_one_event_set_alike(site: Callable[..., Path], tmp_path: Path,
                                                           redis_url: str, redis_client: Any) -> None:
    """Issue 12's "done when": the same settings (signals, Redis state), the same events, the same decisions."""
    config = site(redis=redis_url)
    rules = tmp_path / "rules"
    decided = {}
    for door, through in (("run", lambda: through_run(config, rules, tmp_path)),
                          ("serve", lambda: through_serve(config, rules, tmp_path)),
                          ("worker", lambda: through_worker(config, rules, tmp_path, redis_url=redis_url))):
        redis_client.flushdb()  # each door starts from nothing, as the first does
        decided[door] = summary(through())
    assert decided["run"] == EXPECTED
    assert decided["serve"] == decided["run"] and decided["worker"] == decided["run"]

