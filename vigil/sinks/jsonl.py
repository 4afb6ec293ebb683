"""A JSONL file sink: one line per message, `{"key": …, "message": …}`, appended and flushed (and, by
default, synced to disk) before the messages count as delivered."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import orjson

from vigil.sinks.base import DELIVERED, Delivery, Outcome


class JsonlSink:
    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync

    def deliver(self, messages: Sequence[Delivery]) -> list[Outcome]:
        lines = b"".join(orjson.dumps({"key": m.key, "message": orjson.Fragment(m.body)}) + b"\n" for m in messages)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as out:
                out.write(lines)
                out.flush()
                if self.fsync:
                    os.fsync(out.fileno())
        except OSError as error:
            # A line half written by a failed write is followed by the whole message at the retry.
            return [Outcome(False, f"cannot append to {self.path}: {error}")]
        return [DELIVERED] * len(messages)

    def close(self) -> None:
        pass
