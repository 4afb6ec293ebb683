"""One source of truth for the running rules (issue 12.2): a service follows its rules directory, and
then refuses uploads, or it follows the store, and then a directory only seeds an empty store. Neither a
restart with `--rules DIR` nor an edit on disk replaces a version an admin uploaded."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from vigil.service import ServiceSettings, create_app
from vigil.stores.sqlite import SqliteStore

from .helpers import Running, post, wait_for

UPLOADED = 'entity user = event.actor.id\nrule "Uploaded" when event is "post" then block\n'
OTHER = 'rule "Elsewhere" when event is "post" then review\n'


def _upload(client: TestClient, files: dict[str, str], query: str = "") -> Any:
    return client.post(f"/v1/rules{query}", json={"files": files})


@contextmanager
def _serving(db: Path, rules_dir: Path | None, **settings: Any) -> Iterator[TestClient]:
    """A service over the SQLite file `db` (without auth, as `vigil serve --no-auth` on loopback), as if
    `vigil serve [--rules DIR]` had been started on it; stopped when the block ends."""
    app = create_app(ServiceSettings(rules_dir=str(rules_dir) if rules_dir else None, auth=False,
                                     reload_interval=0.1, **settings), SqliteStore(db))
    with TestClient(app, base_url="http://localhost") as client:
        yield client


def test_a_restart_with_the_rules_directory_keeps_the_version_uploaded_through_the_api(
        tmp_path: Path, rules_dir: Path) -> None:
    db = tmp_path / "vigil.sqlite"
    with _serving(db, None) as client:  # following the store: an admin uploads a version
        uploaded = _upload(client, {"main.vigil": UPLOADED})
        assert uploaded.status_code == 201, uploaded.text
    for source in ("auto", "store"):  # restarted as `vigil serve --rules DIR`, then with --rules-source store
        with _serving(db, rules_dir, rules_source=source) as client:
            active = client.get("/v1/rules").json()
            assert (active["seq"], active["version"], active["source"]) == (1, uploaded.json()["version"], "store")
            assert client.post("/v1/events", json=post("hello!!!!!")).json()["verdict"] == "block"
            ready = client.get("/readyz").json()
            assert ready["rules"]["source"] == "store"
            assert any(f"rules in {rules_dir} differ from the store's active version 1" in w
                       for w in ready["warnings"]), ready
    store = SqliteStore(db)
    try:
        assert [v.seq for v in store.list_rules_versions()] == [1]  # the directory was never stored over it
    finally:
        store.close()


def test_a_rollback_through_the_api_is_kept_across_a_restart_too(tmp_path: Path, rules_dir: Path) -> None:
    db = tmp_path / "vigil.sqlite"
    with _serving(db, rules_dir, rules_source="store") as client:  # seeded from the directory: version 1
        assert _upload(client, {"main.vigil": UPLOADED}).status_code == 201
        assert client.post("/v1/rules/rollback").json()["seq"] == 1  # an admin went back to the seed
        (rules_dir / "main.vigil").write_text((rules_dir / "main.vigil").read_text() + "# edited\n")
    with _serving(db, rules_dir) as client:  # auto: version 1 was chosen through the API
        assert client.get("/v1/rules").json()["seq"] == 1
        assert client.get("/readyz").json()["rules"]["source"] == "store"


def test_an_empty_store_is_seeded_from_the_directory(tmp_path: Path, rules_dir: Path) -> None:
    with _serving(tmp_path / "vigil.sqlite", rules_dir, rules_source="store") as client:
        active = client.get("/v1/rules").json()
        assert (active["seq"], active["source"]) == (1, "store")
        assert active["author"] == f"disk:{rules_dir}" and "seeded" in active["message"]
        assert "warnings" not in client.get("/readyz").json()
        assert _upload(client, {"main.vigil": UPLOADED}).status_code == 201


def test_directory_mode_refuses_uploads_activations_and_rollbacks(svc: Running) -> None:
    assert svc.get("/v1/rules").json()["source"] == "directory"
    refused = [svc.client.post("/v1/rules", json={"files": {"main.vigil": UPLOADED}}, headers=svc.headers()),
               svc.client.post("/v1/rules/versions/1/activate", headers=svc.headers()),
               svc.client.post("/v1/rules/rollback", headers=svc.headers())]
    for response in refused:
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["code"] == "rules_follow_directory" and error["rules_dir"] == str(svc.rules_dir)
        assert f"follows the rules directory {svc.rules_dir}" in error["message"]
        assert "--rules-source store" in error["hint"]
    assert [v["seq"] for v in svc.get("/v1/rules/versions").json()["versions"]] == [1]  # nothing stored
    assert svc.post_event(post("calm")).json()["verdict"] == "allow"
    # A dry run only checks: answered whatever the source.
    dry = svc.client.post("/v1/rules?dry_run=true", json={"files": {"main.vigil": UPLOADED}}, headers=svc.headers())
    assert dry.status_code == 200 and dry.json()["dry_run"] is True
    # The directory is the way to change the rules.
    (svc.rules_dir / "main.vigil").write_text(UPLOADED)
    (svc.rules_dir / "common.vigil").unlink()
    assert wait_for(lambda: svc.get("/v1/rules").json()["seq"] >= 2)  # one version per change seen
    assert svc.post_event(post("calm")).json()["verdict"] == "block"


def test_an_edit_on_disk_does_not_activate_when_following_the_store(store_svc: Running) -> None:
    svc = store_svc
    main = svc.rules_dir / "main.vigil"
    main.write_text("# a comment edited on disk\n" + main.read_text())  # a new version, were it loaded
    (svc.rules_dir / "extra.vigil").write_text(OTHER)
    # Another instance activates a version in the shared store: once this one follows it, it has polled
    # since the edit above, and the edit was not loaded.
    elsewhere = svc.store.add_rules_version("elsewhere", {"r.vigil": OTHER}, ("r.vigil",), author="other",
                                            message="", now=0.0)
    svc.store.activate_rules_version(elsewhere.seq)
    assert wait_for(lambda: svc.get("/v1/rules").json()["seq"] == elsewhere.seq)
    assert [v.seq for v in svc.store.list_rules_versions()] == [elsewhere.seq, 1]
    assert svc.post_event(post("calm")).json()["verdict"] == "review"


def test_a_store_version_whose_tests_fail_here_is_not_activated(store_svc: Running) -> None:
    """Another instance activated a version; its own tests fail with this instance's signals (here: it
    was stored without the gate). It is refused, the running version serves on, /readyz says why."""
    svc = store_svc
    failing = OTHER + 'test "calm posts pass" given "post" with text = "calm" expect allow\n'
    stored = svc.store.add_rules_version("failing", {"r.vigil": failing}, ("r.vigil",), author="other",
                                         message="", now=0.0)
    svc.store.activate_rules_version(stored.seq)
    assert wait_for(lambda: "rules_store" in svc.get("/readyz").json())
    ready = svc.get("/readyz")
    assert ready.status_code == 200 and ready.json()["rules"]["seq"] == 1
    assert ready.json()["rules_store"]["seq"] == stored.seq
    assert "calm posts pass" in ready.json()["rules_store"]["error"]
    assert svc.post_event(post("calm")).json()["verdict"] == "allow"
    assert svc.store.active_rules_version().seq == stored.seq  # nothing written back over the store's choice


def test_auto_without_a_directory_follows_the_store(make_service: Callable[..., Running]) -> None:
    svc = make_service(with_rules=False)
    assert svc.get("/readyz").json()["rules_source"] == "store"
    assert svc.client.post("/v1/rules", json={"files": {"main.vigil": OTHER}}, headers=svc.headers()).status_code == 201


def test_serve_refuses_directory_mode_without_a_directory() -> None:
    from click.testing import CliRunner

    from vigil.cli import main

    result = CliRunner().invoke(main, ["serve", "--rules-source", "directory", "--db", "memory", "--no-auth"])
    assert result.exit_code == 2 and "--rules-source directory needs --rules DIR" in result.output


def test_a_store_version_that_fails_the_gate_at_start_up_leaves_the_api_up_to_replace_it(tmp_path: Path) -> None:
    db = tmp_path / "vigil.sqlite"
    store = SqliteStore(db)
    failing = store.add_rules_version("failing", {"r.vigil": OTHER + 'test "t" given "post" expect allow\n'},
                                      ("r.vigil",), author="admin", message="", now=0.0)
    store.activate_rules_version(failing.seq)
    store.close()
    with _serving(db, None) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["rules_store"]["seq"] == failing.seq and "'t'" in ready.json()["rules_store"]["error"]
        assert "does not pass the gate here" in ready.json()["problems"][0]
        assert client.post("/v1/events", json=post("calm")).json()["verdict"] == "allow"  # nothing runs
        assert _upload(client, {"main.vigil": UPLOADED}).status_code == 201
        assert client.get("/readyz").status_code == 200 and "rules_store" not in client.get("/readyz").json()


def test_a_directory_replacing_a_version_activated_elsewhere_says_so(svc: Running,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="vigil.service.rules")
    elsewhere = svc.store.add_rules_version("elsewhere", {"r.vigil": OTHER}, ("r.vigil",), author="admin",
                                            message="", now=0.0)
    svc.store.activate_rules_version(elsewhere.seq)  # another instance, following the store
    (svc.rules_dir / "extra.vigil").write_text('rule "Purchases" when event is "purchase" then flag\n')
    assert wait_for(lambda: svc.get("/v1/rules").json()["seq"] == elsewhere.seq + 1)
    assert f"replace the store's active version {elsewhere.seq} (by 'admin'), activated elsewhere" in caplog.text


def test_vigil_serve_restarted_with_its_rules_directory_keeps_an_uploaded_version(tmp_path: Path,
                                                                                  rules_dir: Path) -> None:
    """The reported sequence, with real `vigil serve` processes: an admin uploads a version, the service
    is restarted as it was started (`--rules DIR`), and the upload still runs."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    import httpx

    from vigil.service.auth import create_token

    db = tmp_path / "vigil.sqlite"
    store = SqliteStore(db)
    admin = {"Authorization": f"Bearer {create_token(store, 'a', ['admin', 'read', 'ingest'])[1].get_secret_value()}"}
    store.close()

    def serve(*flags: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-c", "from vigil.cli import main; main()", "serve", "--rules",
                                 str(rules_dir), "--db", str(db), "--port", str(port), "--log-level", "warning",
                                 *flags], env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]),
                                               **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_for(up, timeout=60), "vigil serve did not start"
        return proc, base

    def stop(proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGTERM)  # a graceful stop; uvicorn re-raises the signal once done
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)

    proc, base = serve(env={"VIGIL_RULES_SOURCE": "store"})  # seeded from the directory: version 1
    try:
        uploaded = httpx.post(f"{base}/v1/rules", json={"files": {"main.vigil": UPLOADED}}, headers=admin)
        assert uploaded.status_code == 201, uploaded.text
    finally:
        stop(proc)
    proc, base = serve()  # as it was first started, without saying where the rules come from
    try:
        active = httpx.get(f"{base}/v1/rules", headers=admin).json()
        assert (active["seq"], active["source"]) == (2, "store")
        verdict = httpx.post(f"{base}/v1/events", json=post("calm"), headers=admin).json()["verdict"]
        assert verdict == "block"
    finally:
        stop(proc)
