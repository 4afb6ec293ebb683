from __future__ import annotations

import base64
import http.server
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from vigil.hashing.media import MediaError, MediaPolicy, fetch_url, load_media

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def test_bytes_and_base64() -> None:
    policy = MediaPolicy()
    assert load_media(PNG, policy) == PNG
    assert load_media(base64.b64encode(PNG).decode(), policy) == PNG
    assert load_media(base64.urlsafe_b64encode(PNG).decode().rstrip("="), policy) == PNG
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert load_media(data_url, policy) == PNG


def test_size_limit_applies_before_decoding() -> None:
    policy = MediaPolicy(max_bytes=100)
    with pytest.raises(MediaError, match="over the 100-byte limit"):
        load_media(base64.b64encode(PNG).decode(), policy)
    with pytest.raises(MediaError, match="limit"):
        load_media(PNG, policy)


def test_not_base64_mentions_disabled_files(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="local file paths are disabled"):
        load_media(str(tmp_path / "x.png"), MediaPolicy())
    with pytest.raises(MediaError, match="invalid base64"):
        load_media("abcde", MediaPolicy())


def test_local_files_only_under_roots(tmp_path: Path) -> None:
    inside = tmp_path / "media" / "a.png"
    inside.parent.mkdir()
    inside.write_bytes(PNG)
    outside = tmp_path / "secret.png"
    outside.write_bytes(PNG)
    policy = MediaPolicy(file_roots=(inside.parent,))
    assert load_media(str(inside), policy) == PNG
    with pytest.raises(MediaError, match="outside the allowed media directories"):
        load_media(str(inside.parent / ".." / "secret.png"), policy)
    with pytest.raises(MediaError, match="limit"):
        load_media(str(inside), MediaPolicy(file_roots=(inside.parent,), max_bytes=10))


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, str, bytes, dict[str, str]]]] = {
        "/img.png": (200, "image/png", PNG, {}),
        "/page.html": (200, "text/html", b"<html></html>", {}),
        "/big.png": (200, "image/png", PNG * 100, {}),
        "/redirect": (302, "text/plain", b"", {"Location": "/img.png"}),
        "/missing": (404, "text/plain", b"", {}),
    }

    def do_GET(self) -> None:
        status, ctype, body, headers = self.routes[self.path]
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _policy(**changes: object) -> MediaPolicy:
    base: dict[str, object] = {
        "allow_urls": True,
        "allowed_hosts": frozenset({"127.0.0.1"}),
        "allowed_schemes": frozenset({"http"}),
        "max_bytes": 5000,
        "timeout_seconds": 2.0,
        "allowed_networks": (LOOPBACK,),
    }
    return MediaPolicy(**(base | changes))  # type: ignore[arg-type]


def test_url_fetching_under_policy(server: str) -> None:
    assert load_media(f"{server}/img.png", _policy()) == PNG
    with pytest.raises(MediaError, match="disabled"):
        load_media(f"{server}/img.png", MediaPolicy())
    with pytest.raises(MediaError, match="not in the media host allowlist"):
        fetch_url(f"{server}/img.png", _policy(allowed_hosts=frozenset({"example.org"})))
    with pytest.raises(MediaError, match="scheme 'http' is not allowed"):
        fetch_url(f"{server}/img.png", _policy(allowed_schemes=frozenset({"https"})))
    with pytest.raises(MediaError, match="content type 'text/html'"):
        fetch_url(f"{server}/page.html", _policy())
    with pytest.raises(MediaError, match="limit"):
        fetch_url(f"{server}/big.png", _policy())
    with pytest.raises(MediaError, match="HTTP 302"):
        fetch_url(f"{server}/redirect", _policy())
    with pytest.raises(MediaError, match="HTTP 404"):
        fetch_url(f"{server}/missing", _policy())


def test_unreachable_url_is_a_media_error() -> None:
    policy = _policy(allowed_hosts=frozenset({"127.0.0.1"}), timeout_seconds=0.5)
    with pytest.raises(MediaError, match="failed"):
        fetch_url("http://127.0.0.1:9/x.png", policy)  # discard port: connection refused


class _DripServer:
    """A real server on loopback that sends a response one byte at a time, each byte well within any
    per-read time-out: headers first and then the body, or the headers themselves byte by byte."""

    def __init__(self, *, drip_headers: bool, interval: float = 0.05, body_size: int = 200) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.interval = interval
        self.body_size = body_size
        self.drip_headers = drip_headers
        self.sent = 0
        self.finished = threading.Event()  # the server sent everything (the client never gave up)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            connection.recv(65536)
            head = f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {self.body_size}\r\n\r\n"
            try:
                if not self.drip_headers:
                    connection.sendall(head.encode())
                    head = ""
                for byte in head.encode() + b"x" * self.body_size:
                    connection.sendall(bytes([byte]))
                    self.sent += 1
                    time.sleep(self.interval)
                self.finished.set()
            except OSError:
                pass  # the client hung up: what the deadline is for

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=30)


@pytest.mark.parametrize("drip_headers", [False, True], ids=["body", "headers"])
def test_a_drip_server_is_cut_off_at_the_total_deadline(drip_headers: bool) -> None:
    """Each byte arrives within the per-read time-out, so only a total deadline stops the fetch: the
    whole response would take ~10 s, the limit is 0.5 s."""
    server = _DripServer(drip_headers=drip_headers)
    try:
        with pytest.raises(MediaError, match=r"did not finish within 0.5 s \(the total time limit"):
            fetch_url(f"http://127.0.0.1:{server.port}/drip.png", _policy(timeout_seconds=0.5))
        assert not server.finished.is_set()
    finally:
        server.close()
    assert server.sent < 200  # it gave up long before the response was complete


def test_names_resolving_to_non_public_addresses_are_refused(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    # localhost is on the allowlist by name, but resolves to a loopback address
    policy = _policy(allowed_hosts=frozenset({"localhost"}), allowed_networks=())
    with pytest.raises(MediaError, match=r"host 'localhost' resolves to (127\.0\.0\.1|::1), a loopback address"):
        fetch_url(f"http://localhost:{port}/img.png", policy)
    with pytest.raises(MediaError, match="resolves to 127.0.0.1, a loopback address"):
        fetch_url(f"{server}/img.png", _policy(allowed_networks=()))
    metadata = _policy(allowed_hosts=frozenset({"169.254.169.254"}), allowed_networks=())
    with pytest.raises(MediaError, match="169.254.169.254, a link-local address"):
        fetch_url("http://169.254.169.254/latest/meta-data/", metadata)
    private = _policy(allowed_hosts=frozenset({"10.0.0.7"}), allowed_networks=())
    with pytest.raises(MediaError, match="10.0.0.7, a private address"):
        fetch_url("http://10.0.0.7/x.png", private)
    # explicitly allowed: the loopback network
    loopback = _policy(allowed_hosts=frozenset({"localhost"}), allowed_networks=(LOOPBACK, ipaddress.ip_network("::1/128")))
    assert fetch_url(f"http://localhost:{port}/img.png", loopback) == PNG
