"""Slow clients over a real socket: header and body time-outs and a connection cap (issue 11.10)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from vigil.service import ServiceSettings, create_app
from vigil.service.server import (
    RESERVED_DESCRIPTORS,
    ConnectionBudget,
    DescriptorLimitError,
    fit_connections,
    server_config,
)
from vigil.stores.sqlite import SqliteStore

from .helpers import wait_for
from .test_e2e import _free_port


@pytest.fixture
def slow_server(tmp_path: Path, rules_dir: Path) -> Iterator[int]:
    port = _free_port()
    app = create_app(ServiceSettings(port=port, rules_dir=str(rules_dir), auth=False),
                     SqliteStore(tmp_path / "slow.sqlite"))
    uv = uvicorn.Server(server_config(app, "127.0.0.1", port, header_timeout=1.0, max_connections=5,
                                      body_timeout=1.5,
                                      log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    assert wait_for(lambda: uv.started, timeout=20)
    try:
        yield port
    finally:
        uv.should_exit = True
        thread.join(timeout=20)


def _closed(sock: socket.socket) -> bytes:
    """What the server sends before it closes the connection (waits at most 20 s)."""
    sock.settimeout(20)
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def test_dripped_headers_are_timed_out_and_connections_are_capped(slow_server: int) -> None:
    port = slow_server
    drippers = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    for sock in drippers:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
    # Beyond the cap a connection is closed at once with a 503 ...
    with socket.create_connection(("127.0.0.1", port)) as extra:
        assert _closed(extra).startswith(b"HTTP/1.1 503")
    # ... and the dripping ones get a 408 and are closed once their headers are overdue.
    for sock in drippers:
        assert _closed(sock).startswith(b"HTTP/1.1 408")
        sock.close()
    # Then the service answers again, keep-alive included.
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        assert wait_for(lambda: client.get("/healthz").status_code == 200)
        assert client.get("/readyz").status_code == 200


def test_a_dripped_body_is_timed_out_by_one_deadline(slow_server: int) -> None:
    import time

    port = slow_server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 200\r\n\r\n{")
        # A byte every 0.2 s keeps every single read well inside any per-read time-out; the deadline still
        # ends it. Bounded: at most 60 bytes (12 s) are sent before the test gives up.
        sock.settimeout(0.2)
        received = b""
        for _ in range(60):
            try:
                sock.sendall(b" ")
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
            time.sleep(0.2)
        assert received.startswith(b"HTTP/1.1 408"), received
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        assert client.get("/healthz").status_code == 200


def test_the_connection_cap_fits_the_descriptor_limit() -> None:
    import doctest

    import vigil.service.server

    assert doctest.testmod(vigil.service.server).failed == 0
    # Enough already, or once the soft limit is raised towards the hard one
    assert fit_connections(1000, -1, -1, explicit=True) == ConnectionBudget(1000, -1)
    assert fit_connections(1000, 1024, -1, explicit=True).raise_soft_to == 1000 + RESERVED_DESCRIPTORS
    # Not enough: the default is lowered with a warning that says what to change, an explicit cap refused
    lowered = fit_connections(1000, 256, 512, explicit=False)
    assert lowered.max_connections == 512 - RESERVED_DESCRIPTORS and lowered.raise_soft_to == 512
    assert lowered.warning is not None and "ulimit -n 1100" in lowered.warning
    with pytest.raises(DescriptorLimitError, match=r"lower --max-connections to 412"):
        fit_connections(1000, 256, 512, explicit=True)
    with pytest.raises(DescriptorLimitError, match="too few to serve"):
        fit_connections(1000, 64, 64, explicit=False)


def _serve_under(limit: int, *args: str, tmp_path: Path) -> subprocess.Popen[str]:
    """`vigil serve` in a process whose descriptor limits (soft and hard) are `limit`."""
    lowered = (f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit})); "
               "from vigil.cli import main; main()")
    return subprocess.Popen([sys.executable, "-c", lowered, "serve", "--no-auth", "--db", "memory",
                             "--port", str(_free_port()), "--log-level", "info", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)


def test_serve_refuses_more_connections_than_ulimit_allows(tmp_path: Path) -> None:
    proc = _serve_under(300, "--max-connections", "1000", tmp_path=tmp_path)
    try:
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, output
    assert "ulimit -n 1100" in output and "lower --max-connections to 200" in output


def test_serve_lowers_its_default_cap_to_what_ulimit_allows_and_says_so(tmp_path: Path) -> None:
    proc = _serve_under(300, tmp_path=tmp_path)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # until the server says what it runs with
            lines.append(line)
            if "(file descriptors:" in line or "Uvicorn running" in line:
                break
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
    output = "".join(lines)
    assert "warning: serving at most 200 connections, not 1000" in output and "ulimit -n 1100" in output
    assert "at most 200 connections (file descriptors: ulimit -n 300)" in output
