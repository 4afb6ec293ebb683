"""/healthz, /readyz, /metrics and /openapi.json."""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import Route

from .helpers import Running, event, post


def test_health_and_readiness(svc: Running) -> None:
    assert svc.client.get("/healthz").json() == {"status": "ok"}
    ready = svc.get("/readyz").json()
    assert ready["status"] == "ready" and ready["rules"]["seq"] == 1


def test_not_ready_without_a_rules_version(make_service: Callable[..., Running]) -> None:
    svc = make_service(with_rules=False)
    response = svc.get("/readyz")
    assert response.status_code == 503
    assert "no rules version" in response.json()["problems"][0]
    # It still decides (nothing fires), and becomes ready once a version is uploaded.
    assert svc.post_event(post("x!!!!!")).json()["verdict"] == "allow"
    upload = svc.client.post("/v1/rules", json={"files": {"r.vigil": 'rule "Any" when event is "post" then flag'}},
                             headers=svc.headers("admin"))
    assert upload.status_code == 201
    assert svc.client.get("/readyz").status_code == 200


def test_metrics_after_traffic(svc: Running) -> None:
    svc.post_event(post("loud!!!!!"))
    svc.post_event(post("calm"))
    svc.client.post("/v1/events", content=b"not json", headers=svc.headers("ingest"))
    svc.client.post("/v1/events", json=post("x"))  # no token
    svc.client.post("/v1/events?mode=async", json=event("post", text="later"), headers=svc.headers("ingest"))
    text = svc.get("/metrics").text
    assert 'vigil_decisions_total{verdict="flag"} 1.0' in text
    assert "vigil_events_total" in text
    assert 'vigil_rule_hits_total{mode="live",rule="Shouting"} 1.0' in text
    assert "vigil_dead_letters_total 1.0" in text
    assert 'vigil_http_request_duration_seconds_count{method="POST",route="/v1/events",status="200"}' in text
    assert "vigil_decision_duration_seconds_bucket" in text
    assert 'vigil_http_rejected_total{code="malformed_json"} 1.0' in text
    assert 'vigil_http_rejected_total{code="unauthorized"} 1.0' in text
    assert "vigil_queue_depth" in text and "vigil_queue_lag_seconds" in text
    assert 'vigil_rules_info{seq="1"' in text
    assert 'vigil_rules_reloads_total' in text or "vigil_rules_reloads" in text


def test_each_app_has_its_own_metrics(make_service: Callable[..., Running]) -> None:
    first, second = make_service(), make_service()
    first.post_event(post("loud!!!!!"))
    assert 'vigil_decisions_total{verdict="flag"} 1.0' in first.get("/metrics").text
    assert 'vigil_decisions_total{verdict="flag"} 0.0' in second.get("/metrics").text


def test_openapi_documents_every_route(svc: Running) -> None:
    document = svc.client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    app = svc.client.app
    routes = {(r.path.replace(":path", ""), method.lower()) for r in app.routes  # type: ignore[attr-defined]
              if isinstance(r, Route) and r.include_in_schema for method in (r.methods or ()) if method != "HEAD"}
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == documented


def test_event_times_out_of_range_or_ahead_of_the_clock_are_refused(svc: Running) -> None:
    """A "time" of 1e300 reached the counters and killed their flusher (issue 11.3); one dated 2100
    held its entity's windows in place (issue 10.9). Both are refused at ingest, with a dead letter."""
    import time

    for when, fragment in [(1e300, "outside the accepted range"), ("2100-01-01T00:00:00Z", "ahead of this server"),
                           (time.time() + 3600, "ahead of this server")]:
        before = svc.dead_letters()
        response = svc.post_event({**post("hi"), "time": when})
        assert response.status_code == 422, when
        assert fragment in response.json()["error"]["message"]
        assert svc.dead_letters() == before + 1
    assert svc.post_event({**post("hi"), "time": time.time() + 60}).status_code == 200  # within the skew


def test_a_failing_counter_flush_shows_in_readyz_and_metrics(svc: Running) -> None:
    from vigil.stores.base import FlushStatus

    engine = svc.client.app.state.service.engine  # type: ignore[attr-defined]
    engine.counters.status = FlushStatus(failures=2, last_error="OperationalError: disk I/O error", waiting=3)
    response = svc.get("/readyz")
    assert response.status_code == 503
    assert "disk I/O error" in response.json()["problems"][0]
    text = svc.get("/metrics").text
    assert "vigil_counter_flush_failures_total 2.0" in text and "vigil_counter_flush_failing 1.0" in text
    engine.counters.status = FlushStatus(set_aside=1)
    ready = svc.get("/readyz")
    assert ready.status_code == 200 and "could not be stored" in ready.json()["warnings"][0]
