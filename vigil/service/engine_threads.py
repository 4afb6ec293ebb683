"""Engine work off the event loop: a small pool of engine threads with an async hand-off.

The asyncio loop only parses requests and renders answers. Everything that can take long runs in these
threads: deciding events (classifier inference, media decoding and a bank's first load happen inside
rules), store writes (label commits, dead letters, the event journal), manual label changes, and
switching rules versions (running the compiled code, binding counters). Engine calls are serialised by
the engine's own lock, which a slow signal lets go of while it waits, so one costly event holds one
thread and never the others, nor /healthz. Each store keeps one writer (SQLite: one connection under
its lock; PostgreSQL: its pool), whichever thread calls it.

An event gets a deadline: if it has not started by then (every thread busy), it is not decided at all
(503, nothing applied, safe to retry); if it is still running then, its caller gets 504 and the event
finishes in its thread (its slow signals, asked after the deadline, answer unknown), its decision
kept for GET /v1/decisions/{id}.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_THREADS = 8
DEFAULT_EVENT_DEADLINE = 5.0


class NotStarted(Exception):
    """The work was not started within its deadline (every engine thread was busy); it never will be."""


class StillRunning(Exception):
    """The work started but had not finished at its deadline; it goes on in its thread."""

    def __init__(self, future: concurrent.futures.Future[object]) -> None:
        super().__init__("still running at its deadline")
        self.future = future


class EngineThreads:
    """`await threads.run(fn, *args)`: fn(*args) in an engine thread. `run_by(seconds, ...)` with a
    deadline (NotStarted, StillRunning)."""

    def __init__(self, threads: int = DEFAULT_THREADS) -> None:
        if threads < 1:
            raise ValueError(f"engine threads must be at least 1, got {threads}")
        self.threads = threads
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vigil-engine")

    async def run(self, function: Callable[..., T], /, *args: object) -> T:
        """Run to the end, however long it takes (a cancelled caller does not stop work once started)."""
        waiting = asyncio.wrap_future(self._pool.submit(function, *args))
        waiting.add_done_callback(_retrieve)
        return await asyncio.shield(waiting)

    async def run_by(self, seconds: float, function: Callable[..., T], /, *args: object) -> T:
        """Run with a deadline `seconds` from now (see the module's docstring)."""
        future = self._pool.submit(function, *args)
        waiting = asyncio.wrap_future(future)
        waiting.add_done_callback(_retrieve)
        try:
            return await asyncio.wait_for(asyncio.shield(waiting), seconds)
        except TimeoutError:
            if future.cancel():  # not started yet: it never will be
                raise NotStarted() from None
            raise StillRunning(future) from None  # type: ignore[arg-type]

    def close(self) -> None:
        """Wait for the work under way, then stop the threads."""
        self._pool.shutdown(wait=True)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Whatever the abandoned work ends with is its own business (logged where it happened)."""
    if not future.cancelled():
        future.exception()
