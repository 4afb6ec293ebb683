"""Limits that keep one client from hurting the others: request body size and per-token rate."""

from __future__ import annotations

import time

from starlette.requests import ClientDisconnect, Request

from vigil.service.errors import ApiError


class BodyTooLarge(ApiError):
    def __init__(self, limit: int, size: int | None) -> None:
        told = f" ({size} bytes)" if size is not None else ""
        super().__init__(413, "body_too_large", f"request body is over the limit of {limit} bytes{told}",
                         "split the batch or trim the event; the limits are --max-body and --max-batch-body")
        self.limit = limit
        self.size = size


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing one over `limit` bytes as soon as that is known: from Content-Length
    before reading anything, or while streaming a chunked body (never more than `limit` is held)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, "bad_request", "Content-Length is not a number") from None
        if size > limit:
            raise BodyTooLarge(limit, size)
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise BodyTooLarge(limit, None)
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "client_disconnect", "the client went away before sending the whole body") from None
    return b"".join(chunks)


class TokenBuckets:
    """A token bucket per key (an API token, a client address): `rate` units a second on average,
    bursts up to `burst`. A request costs 1; a batch costs its events.

    >>> buckets = TokenBuckets(rate=1.0, burst=2)
    >>> [buckets.take("t", now=0.0) == 0 for _ in range(3)]
    [True, True, False]
    >>> buckets.take("t", now=1.0)
    0.0
    >>> buckets.take("t", cost=3, now=1.0)  # more than the burst can ever hold
    inf
    """

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(max(1, burst))
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens left, at time)

    def take(self, key: str, cost: float = 1.0, now: float | None = None) -> float:
        """Take `cost` units; returns 0.0 when allowed, otherwise the seconds to wait (inf when `cost`
        is more than a full bucket)."""
        if cost > self.burst:
            return float("inf")
        now = time.monotonic() if now is None else now
        tokens = self.left(key, now)
        if tokens >= cost:
            self._put(key, tokens - cost, now)
            return 0.0
        self._put(key, tokens, now)
        return (cost - tokens) / self.rate

    def left(self, key: str, now: float | None = None) -> float:
        """Units `key` may take now."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def _put(self, key: str, tokens: float, now: float) -> None:
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            # Forget the keys whose buckets have refilled: they are as if never seen. Bounds the memory
            # that many client addresses (or tokens) can take.
            full = [k for k in self._buckets if self.left(k, now) >= self.burst]
            for k in full:
                del self._buckets[k]
            if len(self._buckets) >= self.max_keys:
                self._buckets.clear()
        self._buckets[key] = (tokens, now)
