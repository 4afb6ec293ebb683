"""Slow clients over a real socket: header and body time-outs and a connection cap (issue 11.10)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from vigil.service import ServiceSettings, create_app
from vigil.service.server import server_config
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
