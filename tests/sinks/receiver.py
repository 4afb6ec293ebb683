"""A real webhook receiver on loopback for the sink tests: a threaded HTTP server that checks each
body's HMAC signature, keeps messages by idempotency key (a duplicate is counted and dropped, as a
receiver should), and can refuse requests on demand."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass
class Received:
    secret: bytes
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # idempotency key → body
    duplicates: int = 0
    bad_signatures: int = 0
    key_mismatches: int = 0  # a body whose key is not the header's
    requests: int = 0
    # Answer 500 to this many requests after storing them (the sender sees a failure: a duplicate follows).
    fail_after_storing: int = 0
    # Answer 503 without storing while set.
    refusing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Store the message that makes this many, set `held`, and answer nothing until `release` is set
    # (the sender is killed meanwhile: it never learns that this message arrived).
    hold_at: int = 0
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    state: Received

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        state = self.state
        expected = "sha256=" + hmac.new(state.secret, body, hashlib.sha256).hexdigest()
        with state.lock:
            state.requests += 1
            if not hmac.compare_digest(expected, self.headers.get("X-Vigil-Signature", "")):
                state.bad_signatures += 1
                return self._answer(401)
            if state.refusing:
                return self._answer(503)
            key = self.headers["Idempotency-Key"]
            message = orjson.loads(body)
            if message.get("key") != key:  # the body carries the same key as the header
                state.key_mismatches += 1
            if key in state.messages:
                state.duplicates += 1
            else:
                state.messages[key] = message
            if state.fail_after_storing > 0:
                state.fail_after_storing -= 1
                return self._answer(500)
            hold = state.hold_at > 0 and len(state.messages) == state.hold_at and not state.held.is_set()
        if hold:
            state.held.set()
            state.release.wait(120)
            return
        self._answer(200)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def receiver(port: int, secret: bytes, state: Received | None = None) -> Iterator[Received]:
    """Serve on 127.0.0.1:`port` until the block ends (pass `state` to keep what an earlier one got)."""
    state = state if state is not None else Received(secret)
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
