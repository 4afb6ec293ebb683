"""A per-minute token budget for paid or shared model endpoints."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class TokenBudget:
    """At most ``tokens_per_minute`` tokens in any sliding 60-second window.

    Callers :meth:`reserve` an estimate before a request and :meth:`settle` it with the real count
    from the answer's ``usage``. A refused reservation means "answer unknown, queue for later".
    """

    def __init__(self, tokens_per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if tokens_per_minute <= 0:
            raise ValueError("tokens_per_minute must be positive")
        self.limit = tokens_per_minute
        self._clock = clock
        self._spent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._spent and self._spent[0][0] <= now - 60.0:
            self._spent.popleft()

    def used(self) -> int:
        """Tokens counted in the current window."""
        with self._lock:
            self._expire(self._clock())
            return sum(n for _, n in self._spent)

    def reserve(self, tokens: int) -> bool:
        """Count ``tokens`` against the window if they fit; False (and nothing counted) if not."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            if sum(n for _, n in self._spent) + tokens > self.limit:
                return False
            self._spent.append((now, tokens))
            return True

    def settle(self, estimated: int, actual: int) -> None:
        """Correct an earlier reservation of ``estimated`` to the ``actual`` tokens used."""
        if actual != estimated:
            with self._lock:
                self._spent.append((self._clock(), actual - estimated))
