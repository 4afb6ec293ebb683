"""Entity labels in Redis, shared by every worker: a LabelBackend with the rules of vigil/signals/labels.py
(a person outranks a rule, each change in effect from its own time, history kept), safe under concurrent
workers.

    {prefix}:l:{type}\\0{key}    hash label → the label's latest record (JSON)
    {prefix}:h:{type}\\0{key}    list of records: the history, in the order stored
    {prefix}:la:{event id}      hash of the labels this event changed (expires after `mark_ttl`)

A change is decided in Python from the record in effect at its time (`next_record`, shared with the
in-process labels; the history answers for a time before the latest change) and committed by a Lua script that writes only if every record it replaces is still the one the
decision read: when another worker changed one meanwhile, the change is decided again from the new
state. A redelivered event changes no label it changed already, so no history entry is written twice.
"""

from __future__ import annotations

from typing import Any

import orjson

from vigil.signals.labels import MANUAL, next_record, set_label
from vigil.stores.base import LabelRecord, label_at

# KEYS: the event's mark (or ""), then (labels hash, history list) per record.
# ARGV: mark ttl, then (label, identity, expected latest JSON or "", new JSON, "1" if it becomes the latest
# record, "0" for a change of the past, which goes to the history only) per record.
COMMIT_SCRIPT = r"""
local n = (#ARGV - 1) / 5
local mark = KEYS[1]
local conflicts = {}
for i = 1, n do
  local current = redis.call('HGET', KEYS[2*i], ARGV[5*i-3])
  if (current or '') ~= ARGV[5*i-1] then conflicts[#conflicts + 1] = i end
end
if #conflicts > 0 then return conflicts end
local written = 0
for i = 1, n do
  if mark == '' or redis.call('HSETNX', mark, ARGV[5*i-2], 1) == 1 then
    if ARGV[5*i+1] == '1' then redis.call('HSET', KEYS[2*i], ARGV[5*i-3], ARGV[5*i]) end
    redis.call('RPUSH', KEYS[2*i+1], ARGV[5*i])
    written = written + 1
  end
end
if mark ~= '' then redis.call('EXPIRE', mark, ARGV[1]) end
return {-written}
"""

MAX_RETRIES = 20


def _encode(r: LabelRecord) -> bytes:
    return orjson.dumps([r.entity_type, r.key, r.label, r.present, r.source, r.expires_at, r.updated_at, r.actor,
                         r.reason])


def _decode(raw: bytes | str) -> LabelRecord:
    etype, key, label, present, source, expires, updated, actor, reason = orjson.loads(raw)
    return LabelRecord(etype, key, label, present, source, expires, updated, actor, reason)


class RedisLabels:
    """A LabelBackend in Redis. `client` is a `redis.Redis`; the caller owns and closes it."""

    def __init__(self, client: Any, prefix: str = "vigil", *, mark_ttl: int = 8 * 86400) -> None:
        self.client = client
        self.prefix = prefix
        self.mark_ttl = mark_ttl
        self._commit = client.register_script(COMMIT_SCRIPT)
        # What `change` read and was asked, per record it returned: to check and, if need be, decide again.
        self._pending: dict[int, tuple[bytes, dict[str, Any]]] = {}  # Any: next_record's keyword arguments
        self.conflicts = 0

    def _hash(self, entity_type: str, key: str) -> str:
        return f"{self.prefix}:l:{entity_type}\0{key}"

    def _history_key(self, entity_type: str, key: str) -> str:
        return f"{self.prefix}:h:{entity_type}\0{key}"

    def _latest(self, entity_type: str, key: str, label: str) -> bytes:
        raw = self.client.hget(self._hash(entity_type, key), label)
        return raw if raw is not None else b""

    def _at(self, entity_type: str, key: str, label: str, now: float, latest: bytes) -> LabelRecord | None:
        """The record in effect at `now`, given the label's latest one (raw)."""
        record = _decode(latest) if latest else None
        if record is None or record.updated_at <= now:
            return record
        return label_at(self.history(entity_type, key), label, now)  # a time before the latest change

    def has(self, entity_type: str, key: str, label: str, now: float) -> bool:
        record = self._at(entity_type, key, label, now, self._latest(entity_type, key, label))
        return record is not None and record.active(now)

    def has_manual(self, entity_type: str, key: str, label: str, now: float) -> bool:
        record = self._at(entity_type, key, label, now, self._latest(entity_type, key, label))
        return record is not None and record.source == MANUAL and record.active(now)

    def get(self, entity_type: str, key: str, now: float | None = None) -> list[LabelRecord]:
        if now is None:
            records = [_decode(raw) for raw in self.client.hvals(self._hash(entity_type, key))]
            return sorted(records, key=lambda r: r.label)
        return [r for r in self.as_of(entity_type, key, now) if r.active(now)]

    def as_of(self, entity_type: str, key: str, at: float) -> list[LabelRecord]:
        latest = self.client.hgetall(self._hash(entity_type, key))
        records = (self._at(entity_type, key, label.decode(), at, raw) for label, raw in latest.items())
        return sorted((r for r in records if r is not None), key=lambda r: r.label)

    def history(self, entity_type: str, key: str) -> list[LabelRecord]:
        return [_decode(raw) for raw in self.client.lrange(self._history_key(entity_type, key), 0, -1)]

    def _decide(self, raw: bytes, entity_type: str, key: str, label: str, args: dict[str, Any]) -> LabelRecord | None:
        return next_record(self._at(entity_type, key, label, args["now"], raw), entity_type, key, label, **args)

    def change(self, entity_type: str, key: str, label: str, *, present: bool, now: float, source: str,
               actor: str, expires_at: float | None = None, reason: str = "") -> LabelRecord | None:
        raw = self._latest(entity_type, key, label)
        args: dict[str, Any] = {"present": present, "now": now, "source": source, "actor": actor,
                                "expires_at": expires_at, "reason": reason}
        record = self._decide(raw, entity_type, key, label, args)
        if record is not None:
            if len(self._pending) > 10_000:  # changes decided but never committed: forget them
                self._pending.clear()
            self._pending[id(record)] = (raw, args)
        return record

    def commit(self, records: list[LabelRecord], event_id: str = "") -> list[LabelRecord]:
        """Store one event's changes atomically; re-decide those another worker got to first. Returns the
        records stored (by this call, or by an earlier delivery of the same event)."""
        todo = [(r, *self._pending.pop(id(r), (b"", None))) for r in records]
        for _ in range(MAX_RETRIES):
            if not todo:
                return []
            keys = [f"{self.prefix}:la:{event_id}" if event_id else ""]
            args: list[Any] = [self.mark_ttl]
            for record, expected, _args in todo:
                keys += [self._hash(record.entity_type, record.key), self._history_key(record.entity_type, record.key)]
                newest = not expected or _decode(expected).updated_at <= record.updated_at
                args += [record.label, orjson.dumps([record.entity_type, record.key, record.label]), expected,
                         _encode(record), "1" if newest else "0"]
            result = self._commit(keys=keys, args=args)
            if result and int(result[0]) <= 0:
                return [record for record, _expected, _asked in todo]
            self.conflicts += 1
            retry = []
            for index in (int(i) - 1 for i in result):
                record, _expected, asked = todo[index]
                raw = self._latest(record.entity_type, record.key, record.label)
                if asked is None:  # a record this backend did not decide: replace what is there
                    retry.append((record, raw, None))
                    continue
                again = self._decide(raw, record.entity_type, record.key, record.label, asked)
                if again is not None:
                    retry.append((again, raw, asked))
            conflicted = {int(i) - 1 for i in result}
            todo = [t for i, t in enumerate(todo) if i not in conflicted] + retry
        raise RuntimeError(f"labels still contended after {MAX_RETRIES} tries")

    def set(self, entity_type: str, key: str, label: str, *, present: bool, now: float, source: str,
            actor: str, expires_at: float | None = None, reason: str = "") -> LabelRecord | None:
        return set_label(self, entity_type, key, label, present=present, now=now, source=source, actor=actor,
                         expires_at=expires_at, reason=reason)
