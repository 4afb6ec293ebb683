"""A fake OpenAI-compatible chat-completions server on loopback, for testing the LLM client.

No model weights can run in CI, so the client is tested against this: each test scripts the
replies (JSON, streamed SSE, HTTP errors, 429 with Retry-After, slow answers, malformed bodies).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the fake sends back for one request."""

    status: int = 200
    content: str | None = "0"
    body: bytes | None = None  # raw body, overrides content
    stream: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    tokens: int = 42
    reasoning: str = ""


def json_reply(content: str, **kwargs: Any) -> Reply:
    """A plain (non-streamed) completion with ``content``."""
    return Reply(content=content, **kwargs)


class FakeOpenAI:
    """Runs the server in a thread; ``script`` decides each reply from the request body."""

    def __init__(self) -> None:
        self.script: Callable[[dict[str, Any]], Reply] = lambda body: Reply()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length))
                with fake._lock:
                    fake.requests.append(body)
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    reply = fake.script(body)
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    self._send(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test); nothing to do
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _send(self, reply: Reply) -> None:
                if reply.stream:
                    self.send_response(reply.status)
                    self.send_header("content-type", "text/event-stream")
                    self.end_headers()
                    text = reply.content or ""
                    for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                        chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    usage = {"choices": [], "usage": {"total_tokens": reply.tokens}}
                    self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
                    return
                if reply.body is not None:
                    payload = reply.body
                elif reply.status >= 400:
                    payload = json.dumps({"error": {"message": "fake error"}}).encode()
                else:
                    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
                    if reply.reasoning:
                        message["reasoning_content"] = reply.reasoning
                    payload = json.dumps(
                        {
                            "choices": [{"index": 0, "message": message}],
                            "usage": {"total_tokens": reply.tokens},
                        }
                    ).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}/v1"

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
