"""How `vigil serve` runs uvicorn: its HTTP protocol with header and body time-outs and a connection cap.

uvicorn times out idle keep-alive connections only: a client that sends its request headers a byte
every few seconds holds a connection (and a file descriptor) for ever, and a few hundred of them
exhausted the descriptors the service needs to read rules files and answer /healthz. So a request's
headers must arrive within `header_timeout` seconds of its first byte (or of the connection), and
connections beyond `max_connections` are closed as they arrive, before they cost more than a moment.
Likewise a request's body must arrive within `body_timeout` seconds of its headers: one deadline for the
whole body, since a per-read time-out never trips for a client sending a byte a second.

The connection cap only protects the service if the process may open that many descriptors and still
have some for its own files (`fit_connections`): the soft RLIMIT_NOFILE is raised towards the hard one
when that is enough; otherwise an explicit --max-connections is refused and the default is lowered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
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


# Descriptors kept for the service's own files beside its connections: the store and its -wal and -shm,
# the bank file, rules files being read, the listening socket, the event loop, the media decoding pool's
# pipes, connections to PostgreSQL, Redis or a policy model.
RESERVED_DESCRIPTORS = 100


class DescriptorLimitError(Exception):
    """The file descriptor limit is too low for the connections asked for: what to change, and how."""


@dataclass(frozen=True, slots=True)
class ConnectionBudget:
    max_connections: int  # the cap to run with
    descriptor_limit: int  # the soft RLIMIT_NOFILE to run under (-1: unlimited)
    raise_soft_to: int | None = None  # raise the soft limit to this first (at most the hard limit)
    warning: str | None = None  # said at start when the cap was lowered


def fit_connections(requested: int, soft: int, hard: int, *, explicit: bool,
                    reserve: int = RESERVED_DESCRIPTORS, unlimited: int = -1) -> ConnectionBudget:
    """The connection cap that the descriptor limits (`soft`, `hard`; `unlimited` for none) allow.

    >>> fit_connections(1000, 20000, 20000, explicit=False).max_connections
    1000
    >>> fit_connections(1000, 1024, 4096, explicit=True).raise_soft_to
    1100
    >>> fit_connections(1000, 400, 400, explicit=False).max_connections
    300
    """
    needed = requested + reserve
    if soft == unlimited or needed <= soft:
        return ConnectionBudget(requested, soft)
    if hard == unlimited or needed <= hard:
        return ConnectionBudget(requested, needed, raise_soft_to=needed)
    usable = hard - reserve
    what = (f"{requested} connections need {needed} file descriptors ({reserve} kept for the service's own "
            f"files), but this process may open at most {hard} (ulimit -n, hard limit)")
    hint = (f"raise the limit (`ulimit -n {needed}` in the shell that starts it, LimitNOFILE={needed} under "
            f"systemd, --ulimit nofile={needed} under Docker)")
    if usable < 1:
        raise DescriptorLimitError(f"{what}: too few to serve; {hint}")
    if explicit:
        raise DescriptorLimitError(f"--max-connections {what}: {hint}, or lower --max-connections to {usable}")
    return ConnectionBudget(usable, hard, raise_soft_to=hard if hard > soft else None,
                            warning=f"serving at most {usable} connections, not {requested}: {what}; {hint}")


def apply_descriptor_limit(requested: int, *, explicit: bool) -> ConnectionBudget:
    """`fit_connections` for this process, raising its soft descriptor limit where that is needed and
    allowed. Raises DescriptorLimitError when `explicit` asks for more than the hard limit allows."""
    try:
        import resource
    except ImportError:  # no RLIMIT_NOFILE to consult (not a Unix)
        return ConnectionBudget(requested, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    budget = fit_connections(requested, soft, hard, explicit=explicit, unlimited=resource.RLIM_INFINITY)
    if budget.raise_soft_to is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (budget.raise_soft_to, hard))
    return budget
