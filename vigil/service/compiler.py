"""Loading a large rules version in a process of its own, beside traffic.

Parsing, checking and compiling are pure Python: in a thread of the serving process they hold the GIL
most of the time, and every request then waits for it at each step (a 100,000-word inline list made
p99 13 times worse for the 6 s it took). A version bigger than `LoadOffProcess.min_bytes` is loaded in
one spawned worker process instead; the serving process only unpickles the result (term lists rebuild
their automaton, which releases the GIL). Small versions load in a thread, where starting a process
would cost more than it saves.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import anyio.to_thread

from vigil.dsl.builtins import Functions
from vigil.dsl.loader import RuleSet
from vigil.gate import RulesRejected, load_checked

DEFAULT_MIN_BYTES = 256 << 10


def _load(files: dict[str, str], entry: tuple[str, ...], functions: Functions | None) -> tuple[str, Any]:
    """In the worker process: ("ok", pickled RuleSet) or ("rejected", the RulesRejected's fields).
    `functions` come pickled from the serving process: plugins' functions by reference to their modules."""
    try:
        ruleset = load_checked(files, entry, functions)
    except RulesRejected as error:
        return "rejected", (error.message, error.diagnostics, error.test_failures)
    return "ok", pickle.dumps(ruleset, protocol=pickle.HIGHEST_PROTOCOL)


class LoadOffProcess:
    """Checks and compiles rules versions of at least `min_bytes` in a worker process (spawned on first
    use, kept for the next one); `close` stops it."""

    def __init__(self, min_bytes: int = DEFAULT_MIN_BYTES) -> None:
        self.min_bytes = min_bytes
        self._pool: ProcessPoolExecutor | None = None

    def wanted(self, files: dict[str, str]) -> bool:
        return self.min_bytes > 0 and sum(len(text) for text in files.values()) >= self.min_bytes

    async def load(self, files: dict[str, str], entry: tuple[str, ...],
                   functions: Functions | None = None) -> RuleSet:
        """The checked, compiled rules set (without running its tests), checked against `functions`
        (Vigil's built-ins when None). Raises RulesRejected."""
        if self._pool is None:
            # spawn, not fork: the serving process has threads (flusher, second stage, thread pool)
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        kind, value = await asyncio.wrap_future(self._pool.submit(_load, files, entry, functions))
        if kind == "rejected":
            message, diagnostics, failures = value
            raise RulesRejected(message, diagnostics, failures)
        ruleset: RuleSet = await anyio.to_thread.run_sync(pickle.loads, value)
        return ruleset

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
