"""The durable SQLite retry queue."""

from __future__ import annotations

from pathlib import Path

from vigil.classifiers.retry_queue import RetryQueue


def test_items_survive_reopening_and_are_deduplicated(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    with RetryQueue(path, clock=lambda: 10.0) as queue:
        queue.put("spam", "h1", "buy now", "timeout")
        queue.put("spam", "h1", "buy now", "HTTP 500")
        queue.put("spam", "h2", "hello", "timeout")
        queue.put("hate", "h1", "buy now", "timeout")
    with RetryQueue(path, clock=lambda: 10.0) as queue:
        assert len(queue) == 3
        due = queue.due("spam")
        assert [(i.content_hash, i.reason) for i in due] == [("h1", "HTTP 500"), ("h2", "timeout")]
        queue.done(due[0].id)
        assert [i.content_hash for i in queue.due("spam")] == ["h2"]


def test_defer_counts_attempts_and_delays(tmp_path: Path) -> None:
    now = [0.0]
    with RetryQueue(tmp_path / "q.sqlite", clock=lambda: now[0]) as queue:
        queue.put("spam", "h", "t", "timeout", delay_s=5)
        assert queue.due("spam") == []
        now[0] = 5.0
        [item] = queue.due("spam")
        queue.defer(item.id, "HTTP 503", delay_s=30)
        now[0] = 20.0
        assert queue.due("spam") == []
        now[0] = 35.0
        [again] = queue.due("spam")
        assert (again.attempts, again.reason) == (1, "HTTP 503")
