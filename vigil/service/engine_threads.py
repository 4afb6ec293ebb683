"""Engine work off the event loop: a small pool of engine threads with an async hand-off.

The asyncio loop only parses requests and renders answers. Everything that can take long runs in these
threads: deciding events (classifier inference, media decoding and a bank's first load happen inside
rules), store writes (label commits, dead letters, the event journal), label reads and a person's label
changes. Engine calls are serialised by the engine's own lock, which a slow signal lets go of while it
waits, so one costly event holds one thread and never the others, nor /healthz. Each store keeps one
writer (SQLite: one connection under its lock; PostgreSQL: its pool), whichever thread calls it.

One thread at a time takes work: the engine's lock would serialise the others anyway, and threads woken
only to wait for it cost the decisions a third of their CPU time. A thread that waits for a slow signal
says so (`waiting`, which the engine enters around each slow signal), and the next thread takes the
next piece of work meanwhile, up to `threads` at once.

An event gets a deadline: if it has not started by then (every thread waiting on a slow signal), it is
not decided at all (NotStarted: 503, nothing applied, safe to retry); if it is still running then, its
caller gets StillRunning (504) and the event finishes in its thread (its slow signals, asked after the
deadline, answer unknown), its decision kept for GET /v1/decisions/{id}.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("vigil.service.engine_threads")

DEFAULT_THREADS = 8
DEFAULT_EVENT_DEADLINE = 5.0
_QUEUED, _STARTED, _ABANDONED = 0, 1, 2


class NotStarted(Exception):
    """The work was not started within its deadline (every engine thread was busy); it never will be."""


class StillRunning(Exception):
    """The work started but had not finished at its deadline; it goes on in its thread."""


class _Work(Generic[T]):
    __slots__ = ("args", "function", "loop", "state", "waiter")

    def __init__(self, function: Callable[..., T], args: tuple[object, ...], loop: asyncio.AbstractEventLoop,
                 waiter: asyncio.Future[T]) -> None:
        self.function, self.args, self.loop, self.waiter = function, args, loop, waiter
        self.state = _QUEUED  # changed under EngineThreads._turn only

    def run(self) -> None:
        try:
            result = self.function(*self.args)
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
            self.loop.call_soon_threadsafe(_fail, self.waiter, error)
        else:
            self.loop.call_soon_threadsafe(_succeed, self.waiter, result)


class EngineThreads:
    """`await threads.run(fn, *args)`: fn(*args) in an engine thread. `run_by(seconds, ...)` with a
    deadline (NotStarted, StillRunning)."""

    def __init__(self, threads: int = DEFAULT_THREADS) -> None:
        if threads < 1:
            raise ValueError(f"engine threads must be at least 1, got {threads}")
        self.threads = threads
        self._turn = threading.Condition()
        self._queue: deque[_Work[Any]] = deque()
        self._running = 0  # threads running work and not waiting on a slow signal
        self._idle = 0
        self._workers: list[threading.Thread] = []
        self._closed = False
        self._mine = threading.local()  # set in this pool's threads

    async def run(self, function: Callable[..., T], /, *args: object) -> T:
        """Run to the end, however long it takes (a cancelled caller does not withdraw the work)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        self._submit(_Work(function, args, loop, waiter))
        return await waiter

    async def run_by(self, seconds: float, function: Callable[..., T], /, *args: object) -> T:
        """Run with a deadline `seconds` from now (see the module's docstring)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        work = _Work(function, args, loop, waiter)
        self._submit(work)
        timer = loop.call_later(seconds, self._expire, work)
        try:
            return await waiter
        finally:
            timer.cancel()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Around a wait for a slow signal in an engine thread: another thread takes the next work."""
        if not getattr(self._mine, "worker", False):
            yield
            return
        with self._turn:
            self._running -= 1
            self._wake()
        try:
            yield
        finally:
            with self._turn:
                self._running += 1

    def close(self) -> None:
        """Finish the work queued and under way, then stop the threads."""
        with self._turn:
            self._closed = True
            self._turn.notify_all()
            workers = list(self._workers)
        for worker in workers:
            worker.join()

    # ---- inside ----
    def _submit(self, work: _Work[Any]) -> None:
        with self._turn:
            if self._closed:
                raise RuntimeError("the engine threads are closed")
            self._queue.append(work)
            self._wake()

    def _wake(self) -> None:
        """Under `_turn`: let a thread take queued work if none is running (start one if none is idle)."""
        if not self._queue or self._running > 0:
            return
        if self._idle:
            self._turn.notify()
        elif len(self._workers) < self.threads:
            worker = threading.Thread(target=self._work, name=f"vigil-engine-{len(self._workers)}", daemon=True)
            self._workers.append(worker)
            worker.start()

    def _expire(self, work: _Work[Any]) -> None:
        """The deadline of `work` (in the event loop)."""
        if work.waiter.done():
            return
        with self._turn:
            abandoned = work.state == _QUEUED
            if abandoned:
                work.state = _ABANDONED
        work.waiter.set_exception(NotStarted() if abandoned else StillRunning())

    def _work(self) -> None:
        self._mine.worker = True
        with self._turn:
            while True:
                while not self._closed and (not self._queue or self._running > 0):
                    self._idle += 1
                    self._turn.wait()
                    self._idle -= 1
                if not self._queue:
                    return  # closed, and nothing left
                work = self._queue.popleft()
                if work.state == _ABANDONED:
                    continue
                work.state = _STARTED
                self._running += 1
                self._turn.release()
                try:
                    work.run()
                finally:
                    self._turn.acquire()
                    self._running -= 1  # and this thread takes the next work itself


def _succeed(waiter: asyncio.Future[Any], result: object) -> None:
    if not waiter.done():  # not past its deadline, nor its caller gone
        waiter.set_result(result)


def _fail(waiter: asyncio.Future[Any], error: BaseException) -> None:
    if not waiter.done():
        waiter.set_exception(error)
