"""An HTTP webhook sink: each message POSTed as its JSON body, signed.

Headers: `X-Vigil-Signature: sha256=<hex HMAC-SHA256 of the body with the sink's secret>` (the receiver
computes the same over the bytes it got and compares in constant time), `Idempotency-Key: <key>` (the
same at every delivery of the message: the body carries it too), `X-Vigil-Attempt: <n>`. A 2xx answer
is delivery; anything else (another status, a time-out, a refused connection) is a failed attempt that
the dispatcher retries with back-off. Redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

import httpx

from vigil.sinks.base import DELIVERED, Delivery, Outcome


def signature(secret: bytes, body: bytes) -> str:
    """The signature header's value for `body`.

    >>> signature(b"secret", b"{}")
    'sha256=77325902caca812dc259733aacd046b73817372c777b8d95b402647474516e13'
    """
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSink:
    def __init__(self, url: str, secret: str, *, timeout: float = 10.0,
                 headers: dict[str, str] | None = None) -> None:
        self.url = url
        self._secret = secret.encode()
        self._client = httpx.Client(timeout=timeout, follow_redirects=False, headers=headers or {})

    def deliver(self, messages: Sequence[Delivery]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for message in messages:
            headers = {"Content-Type": "application/json", "X-Vigil-Signature": signature(self._secret, message.body),
                       "Idempotency-Key": message.key, "X-Vigil-Attempt": str(message.attempt)}
            try:
                response = self._client.post(self.url, content=message.body, headers=headers)
            except httpx.HTTPError as error:
                # The receiver is down or too slow: the messages after this one would fare the same.
                outcomes.append(Outcome(False, f"POST {self.url}: {type(error).__name__}: {error}"))
                return outcomes
            if not response.is_success:
                outcomes.append(Outcome(False, f"POST {self.url}: HTTP {response.status_code} "
                                               f"{response.text[:200]!r}"))
                return outcomes
            outcomes.append(DELIVERED)
        return outcomes

    def close(self) -> None:
        self._client.close()
