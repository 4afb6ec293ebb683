"""EngineThreads: results and errors come back to the awaiting coroutine, a deadline gives NotStarted
(never run) or StillRunning (goes on), and a thread waiting on a slow signal lets the next work run."""

from __future__ import annotations

import asyncio
import threading

import pytest

from vigil.service.engine_threads import EngineThreads, NotStarted, StillRunning

LIMIT = 30.0  # a bound for waits that only a broken pool would reach


def test_results_and_errors_reach_the_caller() -> None:
    async def main() -> None:
        threads = EngineThreads(2)
        try:
            assert await threads.run(lambda a, b: a + b, 2, 3) == 5
            assert await threads.run_by(LIMIT, threading.current_thread) is not threading.current_thread()

            def fail() -> None:
                raise KeyError("boom")

            with pytest.raises(KeyError, match="boom"):
                await threads.run(fail)
        finally:
            threads.close()

    asyncio.run(main())


def test_a_deadline_gives_not_started_or_still_running() -> None:
    first, second = threading.Event(), threading.Event()
    ran: list[str] = []

    def hold(gate: threading.Event) -> str:
        gate.wait(LIMIT)
        ran.append("held")
        return "held"

    async def main() -> None:
        threads = EngineThreads(1)
        try:
            held = asyncio.ensure_future(threads.run(hold, first))
            await asyncio.sleep(0)  # the task submits its work before the next line does
            with pytest.raises(NotStarted):  # the one thread is busy: this never runs
                await threads.run_by(0.2, ran.append, "late")
            first.set()
            assert await held == "held"
            with pytest.raises(StillRunning):  # started, and goes on past its deadline
                await threads.run_by(0.2, hold, second)
            second.set()
            assert await threads.run(lambda: "after") == "after"
        finally:
            first.set()
            second.set()
            threads.close()
        assert ran == ["held", "held"]

    asyncio.run(main())


def test_a_thread_waiting_on_a_slow_signal_lets_the_next_work_run() -> None:
    release = threading.Event()
    waiting = threading.Event()

    async def main() -> None:
        threads = EngineThreads(2)

        def slow() -> str:
            with threads.waiting():
                waiting.set()
                release.wait(LIMIT)
            return "slow"

        try:
            held = asyncio.ensure_future(threads.run(slow))
            await asyncio.to_thread(waiting.wait, LIMIT)
            assert await threads.run_by(LIMIT, lambda: "next") == "next"
            assert not release.is_set()
            release.set()
            assert await held == "slow"
        finally:
            release.set()
            threads.close()

    asyncio.run(main())
