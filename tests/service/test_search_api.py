"""GET /v1/search and POST /v1/backtests over the service's record."""

from __future__ import annotations

from pathlib import Path

from vigil.record.settings import record_settings
from vigil.record.sqlite import SqliteRecord
from vigil.record.writer import Recorder

from .helpers import RULES, Running, post


def with_record(svc: Running, tmp_path: Path) -> None:
    """The record on, written before each answer (what a durable store gives `vigil serve`)."""
    engine = svc.client.app.state.service.engine  # type: ignore[attr-defined]
    if getattr(engine.recorder, "record", None) is None:
        engine.recorder = Recorder(SqliteRecord(tmp_path / "record.sqlite"), record_settings(None),
                                   lambda: engine.ruleset, durable=True)


def test_search_reads_the_sources_a_token_may_and_checks_the_query(svc: Running, tmp_path: Path) -> None:
    with_record(svc, tmp_path)
    for text in ("hello", "HELLO!!!!!", "a badword here"):
        assert svc.post_event(post(text), scope="ingest+read").status_code == 200
    found = svc.get("/v1/search", scope="ingest+read", params={"q": 'rule "Shouting" fired'}).json()
    assert [e["event"]["text"] for e in found["events"]] == ["HELLO!!!!!"]
    assert found["filters"]["rules"] == ["Shouting"]
    every = svc.get("/v1/search", scope="ingest+read", params={"q": 'event is "post"'}).json()
    assert [e["event"]["text"] for e in every["events"]] == ["a badword here", "HELLO!!!!!", "hello"]
    # Another token reads only its own source's events; admin reads every source's.
    assert svc.get("/v1/search", scope="read", params={"q": 'event is "post"'}).json()["events"] == []
    assert len(svc.get("/v1/search", scope="admin", params={"q": 'event is "post"'}).json()["events"]) == 3
    top = svc.get("/v1/search", scope="admin", params={"q": "top event.actor.id where verdict is review"}).json()
    assert top["top"] == [{"value": "u1", "count": 1}]
    bad = svc.get("/v1/search", scope="admin", params={"q": 'rule "Shoutin" fired'})
    assert bad.status_code == 400
    diagnostic = bad.json()["error"]["diagnostics"][0]
    assert (diagnostic["line"], diagnostic["col"]) == (1, 1) and "did you mean `Shouting`" in diagnostic["hint"]
    assert svc.get("/v1/search", scope="admin", params={"q": "verdict is flag", "since": "soon"}).status_code == 400
    assert svc.get("/v1/search", scope="ingest", params={"q": "verdict is flag"}).status_code == 403


def test_a_backtest_through_the_api(svc: Running, tmp_path: Path) -> None:
    with_record(svc, tmp_path)
    for text in ("hello!!!!!", "hello!!!", "fine"):
        svc.post_event(post(text), scope="ingest")
    files = {"common.vigil": "entity user = event.actor.id\n", "lists/bad.txt": "badword\n",
             "main.vigil": RULES.replace('contains "!!!!!"', 'contains "!!!"')}
    report = svc.client.post("/v1/backtests", json={"files": files, "since": "1h"}, headers=svc.headers("admin"))
    assert report.status_code == 200, report.text
    doc = report.json()
    assert doc["rules"]["changed"] == ["Shouting"] and doc["events"]["replayed"] == 3
    shouting = next(c for c in doc["per_rule"] if c["rule"] == "Shouting")
    assert shouting["gained"] == 1 and shouting["examples"]["gained"][0]["candidate"] == "flag"
    broken = svc.client.post("/v1/backtests", json={"files": {"main.vigil": 'rule "x" when then flag'}},
                             headers=svc.headers("admin"))
    assert broken.status_code == 400 and broken.json()["error"]["diagnostics"][0]["line"] == 1
    empty = svc.client.post("/v1/backtests", json={"files": files, "since": "2001-01-01T00:00:00Z",
                                                   "until": "2001-01-02T00:00:00Z"}, headers=svc.headers("admin"))
    assert empty.status_code == 422 and "holds no events" in empty.json()["error"]["message"]
    assert svc.client.post("/v1/backtests", json={"files": files}, headers=svc.headers("read")).status_code == 403


def test_without_a_record_the_routes_say_so(svc: Running) -> None:
    engine = svc.client.app.state.service.engine  # type: ignore[attr-defined]
    if getattr(engine.recorder, "record", None) is None:
        answer = svc.get("/v1/search", scope="admin", params={"q": "verdict is flag"})
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "no_record"


def test_the_search_limits_come_from_the_settings(svc: Running, tmp_path: Path) -> None:
    from vigil.settings import SearchSettings

    with_record(svc, tmp_path)
    for text in ("hello", "hi", "hey"):
        assert svc.post_event(post(text), scope="ingest").status_code == 200
    state = svc.client.app.state.service  # type: ignore[attr-defined]
    state.config = state.config.model_copy(update={"search": SearchSettings(max_scanned=2)})
    refused = svc.get("/v1/search", scope="admin", params={"q": 'event is "post"'})
    assert refused.status_code == 422 and "more than 2 stored events" in refused.json()["error"]["message"]
