"""How `vigil serve` runs uvicorn: its HTTP protocol with header and body time-outs and a connection cap.

uvicorn times out idle keep-alive connections only: a client that sends its request headers a byte
every few seconds holds a connection (and a file descriptor) for ever, and a few hundred of them
exhausted the descriptors the service needs to read rules files and answer /healthz. So a request's
headers must arrive within `header_timeout` seconds of its first byte (or of the connection), and
connections beyond `max_connections` are closed as they arrive, before they cost more than a moment.
Likewise a request's body must arrive within `body_timeout` seconds of its headers: one deadline for the
whole body, since a per-read time-out never trips for a client sending a byte a second.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
TOO_MANY = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def guarded_protocol(header_timeout: float, max_connections: int,
                     body_timeout: float = 30.0) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the three limits (a class per server, no global state)."""

    class GuardedProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _body_timer: asyncio.TimerHandle | None = None
        _waiting_cycle: Any = None

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._body_timer = self.loop.call_later(body_timeout, self._too_slow)

        def on_message_complete(self) -> None:
            self._cancel_body_timer()
            super().on_message_complete()

        def _cancel_body_timer(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.write(TOO_MANY)
                transport.close()
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._arm()  # the first byte of a further request on a kept-alive connection
            super().data_received(data)
            if self._header_timer is not None and self.cycle is not self._waiting_cycle:
                self._disarm()  # the headers are in: a request cycle began

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            self._cancel_body_timer()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._waiting_cycle = self.cycle
            self._header_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.cycle is self._waiting_cycle:
                self._too_slow()

        def _too_slow(self) -> None:
            # Nothing has been answered while the request is still arriving, so a raw 408 is the whole reply;
            # closing tells the application http.disconnect if it is waiting for the body.
            self._body_timer = None
            if self.transport.is_closing():
                return
            # An app that answered early (a 413 from Content-Length) already replied: then only close.
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(REQUEST_TIMEOUT)
            self.transport.close()

    return GuardedProtocol


def server_config(app: Any, host: str, port: int, *, header_timeout: float = 10.0, max_connections: int = 1000,
                  body_timeout: float = 30.0, keep_alive: int = 5, log_level: str = "info") -> uvicorn.Config:
    """The uvicorn configuration `vigil serve` runs (and the socket tests start)."""
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                          timeout_graceful_shutdown=10, timeout_keep_alive=keep_alive,
                          http=guarded_protocol(header_timeout, max_connections, body_timeout))
