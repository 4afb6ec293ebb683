"""The dispatcher: delivers the outbox, at least once, one thread per sink.

Each thread claims a batch of its sink's due messages (hidden from other dispatchers for the sink's
`lease`), hands them to the sink, and records what happened: delivered; failed, due again after an
exponential back-off with jitter (`backoff` × 2^(attempt-1), at most `backoff_max`, times a random
factor in [0.5, 1) so that many senders do not retry in step); or, at the sink's `max_attempts`, dead
(kept with the last error; `requeue` sends dead messages again). A sink that fails one message (the
receiver is down) gets the rest of the batch back untried, due with the failed one. A process killed
mid-delivery leaves its claimed messages pending: they are due again when the lease ends, and the
receiver drops the ones it had already by their idempotency key.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from vigil.sinks.base import Delivery, Outcome, Sink
from vigil.sinks.settings import SinkSettings
from vigil.stores.base import OutboxStatus, OutboxStore

log = logging.getLogger("vigil.sinks")

KEEP_DELIVERED = 7 * 86400.0  # seconds delivered messages are remembered (a replayed event is not sent again)
PRUNE_EVERY = 3600.0


@dataclass(slots=True)
class SinkCounts:
    """Running totals of one sink's deliveries."""

    delivered: int = 0
    retried: int = 0  # failed attempts that will be retried
    failed: int = 0  # messages given up: moved to the dead letters


@dataclass(frozen=True, slots=True)
class SinkStats:
    """One sink as /metrics shows it: the running totals, and the outbox's part for it now."""

    delivered: int
    retried: int
    failed: int
    pending: int
    dead: int
    lag: float  # seconds since the oldest pending message was written; 0 when none waits


def backoff_delay(settings: SinkSettings, attempts: int, rng: random.Random) -> float:
    """Seconds to wait after the `attempts`-th failed attempt."""
    delay: float = min(settings.backoff_max, settings.backoff * 2.0 ** min(attempts - 1, 60))
    return delay * (0.5 + rng.random() / 2)


class Dispatcher:
    def __init__(self, store: OutboxStore, sinks: Mapping[str, tuple[Sink, SinkSettings]], *,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 keep_delivered: float = KEEP_DELIVERED) -> None:
        self.store = store
        self.sinks = dict(sinks)
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self.keep_delivered = keep_delivered
        self.counts = {name: SinkCounts() for name in self.sinks}
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._wake = threading.Event()  # set when closing: a thread waiting out its poll looks at once
        self._threads: list[threading.Thread] = []
        self._pruned_at = 0.0
        self._prune_lock = threading.Lock()

    # ---- one batch ----
    def run_once(self, name: str) -> int:
        """Claim and deliver one batch of sink `name`'s due messages; how many were claimed."""
        sink, settings = self.sinks[name]
        now = self.clock()
        rows = self.store.claim_outbox(name, now, settings.batch, settings.lease)
        if not rows:
            return 0
        try:
            outcomes = sink.deliver([Delivery(r.key, r.body, r.attempts + 1) for r in rows])[:len(rows)]
        except Exception as error:  # noqa: BLE001 - a sink's bug must cost a retry, never the dispatcher
            outcomes = [Outcome(False, f"internal error in sink {name}: {type(error).__name__}: {error}")]
        done = self.clock()
        counts = self.counts[name]
        delivered = [r.id for r, o in zip(rows, outcomes) if o.ok]
        if delivered:
            self.store.outbox_delivered(delivered, done)
            counts.delivered += len(delivered)
        retry_at = done
        for row, outcome in zip(rows, outcomes):
            if outcome.ok:
                continue
            attempts = row.attempts + 1
            if attempts >= settings.max_attempts:
                self.store.outbox_failed(row.id, attempts, outcome.error, None)
                counts.failed += 1
                log.warning("sink %s: gave up message %s after %d attempts: %s", name, row.key, attempts,
                            outcome.error)
            else:
                retry_at = max(retry_at, done + backoff_delay(settings, attempts, self.rng))
                self.store.outbox_failed(row.id, attempts, outcome.error, retry_at)
                counts.retried += 1
        untried = [r.id for r in rows[len(outcomes):]]
        if untried:
            self.store.outbox_release(untried, retry_at)
        return len(rows)

    def prune(self, now: float) -> int:
        with self._prune_lock:
            self._pruned_at = now
            return self.store.prune_outbox(now - self.keep_delivered)

    # ---- the threads ----
    def start(self) -> None:
        orphans = set(self.store.outbox_status()) - set(self.sinks)
        for name in sorted(orphans):
            log.warning("the outbox holds messages for sink %r, which the settings no longer name: they wait "
                        "until a [sinks.%s] table is back", name, name)
        for name in self.sinks:
            thread = threading.Thread(target=self._run, args=(name,), name=f"vigil-sink-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, name: str) -> None:
        settings = self.sinks[name][1]
        while not self._stop.is_set():
            # Read before the claim: a close that comes during an empty claim gets one more look.
            closing = self._closing.is_set()
            try:
                claimed = self.run_once(name)
                now = self.clock()
                if now - self._pruned_at > PRUNE_EVERY:
                    self.prune(now)
            except Exception:  # the store may be away for a while: keep trying
                log.exception("sink %s: delivering from the outbox failed; trying again", name)
                claimed = 0
            if not claimed:
                if closing:
                    return  # nothing due: what waits for a retry stays in the outbox for the next start
                self._wake.wait(settings.poll)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is due for up to `timeout` seconds, then stop the threads (a delivery under way
        finishes first) and close the sinks. Whatever is left waits in the outbox for the next start."""
        self._closing.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        for sink, _settings in self.sinks.values():
            sink.close()

    # ---- what /metrics shows ----
    def stats(self) -> dict[str, SinkStats]:
        now = self.clock()
        status = self.store.outbox_status()
        out: dict[str, SinkStats] = {}
        for name in sorted(set(self.sinks) | set(status)):
            counts = self.counts.get(name, SinkCounts())
            part = status.get(name, OutboxStatus())
            lag = max(0.0, now - part.oldest) if part.oldest is not None else 0.0
            out[name] = SinkStats(counts.delivered, counts.retried, counts.failed, part.pending, part.dead, lag)
        return out
