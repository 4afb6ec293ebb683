from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from vigil.hashing.media import MediaError, MediaPolicy, fetch_url, load_media

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))


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
