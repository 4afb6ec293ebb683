"""What every sink is: something that takes messages from the outbox and says, per message, whether it
has them. The dispatcher (dispatch.py) does the retrying, the back-off and the dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to deliver: its idempotency key, its JSON body, and which attempt this is (1, 2, …)."""

    key: str
    body: bytes
    attempt: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one delivery: taken (`ok`), or not, with the reason."""

    ok: bool
    error: str = ""


DELIVERED = Outcome(True)


class Sink(Protocol):
    """A destination for outbox messages. `deliver` answers for the messages in order and may stop early
    (answer fewer) after a failure, when the ones after it would fail the same way (a receiver that is
    down): the dispatcher gives those back untried. It never raises for a failed delivery."""

    def deliver(self, messages: Sequence[Delivery]) -> list[Outcome]: ...

    def close(self) -> None: ...


class SinkError(Exception):
    """A sink that cannot be built from its settings (a file that cannot be opened, say): the message
    names the sink and says what to do."""
