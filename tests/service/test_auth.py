"""Tokens: created with scopes, stored hashed, checked on every /v1/ request; scopes; rate limits; CLI."""

from __future__ import annotations

import doctest
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import vigil.service.limits
from vigil.cli import main
from vigil.service.auth import create_token, parse_scopes
from vigil.stores.memory import MemoryStore
from vigil.stores.sqlite import SqliteStore

from .helpers import Running, post


def test_tokens_are_stored_as_hashes_only() -> None:
    store = MemoryStore()
    token, secret = create_token(store, "pipeline", ["ingest"])
    assert secret.get_secret_value().startswith(f"vgl_{token.id}_")
    assert token.secret_hash == hashlib.sha256(secret.get_secret_value().encode()).hexdigest()
    assert secret.get_secret_value() not in repr(store.tokens)
    assert "vgl_" not in repr(secret)
    assert store.find_token(token.secret_hash) == token
    with pytest.raises(ValueError, match="exists"):
        create_token(store, "pipeline", ["read"])


def test_scopes_are_checked_when_parsed() -> None:
    assert parse_scopes("read, ingest") == ("ingest", "read")
    with pytest.raises(ValueError, match="unknown scope 'write'"):
        parse_scopes("ingest,write")
    with pytest.raises(ValueError, match="no scopes"):
        parse_scopes("")
    _, secret = create_token(MemoryStore(), "repr", ["read"])
    assert secret.get_secret_value() not in repr(secret) and secret.get_secret_value() not in str(secret)


def test_missing_unknown_and_malformed_tokens_are_401(svc: Running) -> None:
    no_token = svc.client.post("/v1/events", json=post("x"))
    assert no_token.status_code == 401
    assert no_token.json()["error"]["code"] == "unauthorized"
    assert no_token.headers["www-authenticate"] == "Bearer"
    unknown = svc.client.post("/v1/events", json=post("x"), headers={"Authorization": "Bearer vgl_nope_nope"})
    assert unknown.status_code == 401
    basic = svc.client.post("/v1/events", json=post("x"), headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401
    # No dead letter: unauthenticated input is not an event we accepted.
    assert svc.dead_letters() == 0


def test_revoked_tokens_are_refused(svc: Running) -> None:
    assert svc.post_event(post("x")).status_code == 200
    assert svc.store.revoke_token("ingest")
    assert svc.post_event(post("x")).status_code == 401


def test_scopes(svc: Running) -> None:
    assert svc.post_event(post("x"), scope="read").status_code == 403
    forbidden = svc.get("/v1/rules", scope="ingest")
    assert forbidden.status_code == 403
    assert "read" in forbidden.json()["error"]["message"]
    assert svc.get("/v1/rules", scope="read").status_code == 200
    assert svc.post_event(post("x"), scope="admin").status_code == 200  # admin implies every scope
    upload = svc.client.post("/v1/rules", json={"files": {"a.vigil": ""}}, headers=svc.headers("read"))
    assert upload.status_code == 403
    label = svc.client.post("/v1/entities/user/u1/labels", json={"label": "x", "reason": "y"},
                            headers=svc.headers("ingest+read"))
    assert label.status_code == 403


def test_open_endpoints_need_no_token(svc: Running) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert svc.client.get(path).status_code == 200, path


def test_metrics_and_readiness_details_need_a_read_token(svc: Running) -> None:
    """/metrics listed every rule with its live hit count, and /readyz the rules version, to anyone: an
    oracle for testing evasions (issue 11.15)."""
    svc.post_event(post("loud!!!!!"))
    anonymous = svc.client.get("/metrics")
    assert anonymous.status_code == 401 and "Shouting" not in anonymous.text
    assert svc.get("/metrics", scope="ingest").status_code == 403
    assert 'rule="Shouting"' in svc.get("/metrics", scope="read").text
    probe = svc.client.get("/readyz")
    assert probe.status_code == 200 and probe.json()["status"] == "ready"
    assert "rules" not in probe.json() and "read scope" in probe.json()["details"]
    assert svc.get("/readyz", scope="ingest").json().keys() == probe.json().keys()
    assert svc.get("/readyz", scope="read").json()["rules"]["seq"] == 1
    assert svc.client.get("/readyz", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_public_metrics_opens_metrics_to_a_scraper(make_service: Callable[..., Running]) -> None:
    svc = make_service(public_metrics=True)
    assert svc.client.get("/metrics").status_code == 200
    assert svc.client.get("/v1/rules").status_code == 401


def test_the_rate_limit_counts_events_not_requests(make_service: Callable[..., Running]) -> None:
    """One batch decided 1,000 events under a limit of 5 requests a second (issue 11.18)."""
    svc = make_service(rate_limit=0.001, rate_burst=10)
    batch = svc.client.post("/v1/events/batch", json=[post("x") for _ in range(8)], headers=svc.headers("ingest"))
    assert batch.status_code == 200 and batch.json()["accepted"] == 8
    over = svc.client.post("/v1/events/batch", json=[post("x") for _ in range(3)], headers=svc.headers("ingest"))
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limited"
    assert int(over.headers["retry-after"]) >= 1
    assert svc.post_event(post("x")).status_code == 200  # the last unit of the burst
    assert svc.post_event(post("x")).status_code == 429
    fresh = make_service(rate_limit=0.001, rate_burst=10)
    larger = fresh.client.post("/v1/events/batch", json=[post("x") for _ in range(12)],
                               headers=fresh.headers("ingest"))
    assert larger.status_code == 413 and "--rate-burst" in larger.json()["error"]["hint"]


def test_failed_authentications_are_limited_per_client(make_service: Callable[..., Running]) -> None:
    """Guessing tokens was never slowed down (issue 11.18)."""
    svc = make_service(auth_failure_rate=0.001, auth_failure_burst=5)
    codes = [svc.client.get("/v1/rules", headers={"Authorization": f"Bearer guess{i}"}).status_code
             for i in range(7)]
    assert codes == [401] * 5 + [429] * 2
    locked = svc.client.get("/v1/rules", headers={"Authorization": "Bearer guess"})
    assert locked.json()["error"]["code"] == "auth_rate_limited" and int(locked.headers["retry-after"]) >= 1
    # A missing token counts as a failure too, and the lockout holds before any token is looked up.
    assert svc.get("/v1/rules").status_code == 429
    assert svc.client.get("/healthz").status_code == 200


def test_rate_limit_per_token(make_service: Callable[..., Running]) -> None:
    svc = make_service(rate_limit=0.001, rate_burst=3)
    codes = [svc.post_event(post("x")).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    limited = svc.post_event(post("x"))
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert svc.get("/v1/rules", scope="read").status_code == 200  # another token has its own bucket


def test_token_bucket_doctests() -> None:
    assert doctest.testmod(vigil.service.limits).failed == 0


def test_token_commands(tmp_path: Path) -> None:
    db = str(tmp_path / "t.sqlite")
    runner = CliRunner()
    created = runner.invoke(main, ["token", "create", "ci", "--scopes", "ingest,read", "--db", db])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("vgl_")
    store = SqliteStore(db)
    found = store.find_token(hashlib.sha256(secret.encode()).hexdigest())
    store.close()
    assert found is not None and found.scopes == ("ingest", "read")
    listed = runner.invoke(main, ["token", "list", "--db", db])
    assert "ci" in listed.stdout and secret not in listed.stdout and "active" in listed.stdout
    assert runner.invoke(main, ["token", "create", "x", "--scopes", "root", "--db", db]).exit_code != 0
    assert runner.invoke(main, ["token", "create", "ci", "--db", db]).exit_code != 0
    assert runner.invoke(main, ["token", "revoke", "ci", "--db", db]).exit_code == 0
    assert "revoked" in runner.invoke(main, ["token", "list", "--db", db]).stdout
    assert runner.invoke(main, ["token", "revoke", "nobody", "--db", db]).exit_code != 0


def test_token_create_grants_read_sources(tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(tmp_path / "t.sqlite")
    created = runner.invoke(main, ["token", "create", "dashboard", "--scopes", "read", "--read-source", "web",
                                   "--read-source", "app", "--db", db])
    assert created.exit_code == 0, created.output
    store = SqliteStore(db)
    [token] = store.list_tokens()
    store.close()
    assert token.read_sources == ("web", "app")
    assert "reads web,app" in runner.invoke(main, ["token", "list", "--db", db]).stdout


def test_tokens_from_before_read_grants_read_only_their_own_source(tmp_path: Path) -> None:
    import sqlite3

    from vigil.stores.sqlite import MIGRATIONS

    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    for index, script in enumerate(MIGRATIONS[:4]):  # the schema before read grants
        conn.executescript("BEGIN;" + script + f"PRAGMA user_version = {index + 1}; COMMIT;")
    conn.execute("INSERT INTO api_tokens VALUES ('t1', 'old', 'h1', '[\"ingest\"]', 1.0, 0)")
    conn.close()
    store = SqliteStore(path)
    found = store.find_token("h1")
    store.close()
    assert found is not None and found.scopes == ("ingest",) and found.read_sources == ()


def test_serve_refuses_no_auth_off_loopback(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--no-auth", "--host", "0.0.0.0", "--db", str(tmp_path / "s.sqlite")])
    assert result.exit_code != 0
    assert "loopback" in result.output
