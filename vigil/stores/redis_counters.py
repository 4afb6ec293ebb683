"""Windowed counters in Redis, shared by every worker: a CounterBackend with exactly the semantics of
vigil/signals/counters.py, applied atomically and at most once per event id.

Each event's updates run as one Lua script. Its first step is `SET mark NX`: a redelivered event (the
same id within `mark_ttl` seconds) changes nothing and gets back the very (before, after) pairs its
first delivery got, so a retried event is decided exactly as the first time. The layout mirrors the
in-process structures one to one, so the two agree on every input, in order or not:

    {prefix}:c:{cid}:{key}   sliding count/sum: list of "sec amount" (seconds rising, one entry each)
    {prefix}:t:{cid}:{key}   its running total
    {prefix}:c:{cid}:{key}   sliding distinct: list of "sec<TAB>value" (seconds rising)
    {prefix}:s:{cid}:{key}   hash value → last second seen
    {prefix}:t:{cid}:{key}   calendar day count/sum: "day total"
    {prefix}:c:{cid}:{key}   calendar day distinct: the day, with
    {prefix}:s:{cid}:{key}   the set of values
    {prefix}:ev:{event id}   the first delivery's results

Keys expire `window + key_ttl_margin` seconds (wall clock) after their last update: counts any window can
still see are kept while events arrive at least as fast as real time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vigil.dsl.compile import CounterSpec
from vigil.stores.base import FlushStatus

# Numbers cross the Lua boundary as strings: %.17g gives a double back exactly.
_LUA_COMMON = r"""
local function fmt(x) return string.format('%.17g', x) end
local function split(entry, sep)
  local i = string.find(entry, sep, 1, true)
  return tonumber(string.sub(entry, 1, i - 1)), string.sub(entry, i + 1)
end

-- Sliding count/sum: prune from the head, then merge into the newest second or, for a late event,
-- hold it at its own second (what is held after it is outside its window); keep the total.
local function later_sum(q, sec)
  local later, i = 0, redis.call('LLEN', q) - 1
  while i >= 0 do
    local s, a = split(redis.call('LINDEX', q, i), ' ')
    if s <= sec then return later, i, s, a end
    later = later + tonumber(a)
    i = i - 1
  end
  return later, -1, nil, nil
end

local function add_sum(q, t, sec, window, amount)
  local total = tonumber(redis.call('GET', t) or '0')
  local limit = sec - window
  while true do
    local head = redis.call('LINDEX', q, 0)
    if not head then break end
    local s, a = split(head, ' ')
    if s > limit then break end
    total = total - tonumber(a)
    redis.call('LPOP', q)
  end
  local later, i, s, a = later_sum(q, sec)
  if s == sec then
    redis.call('LSET', q, i, s .. ' ' .. fmt(tonumber(a) + amount))
  elseif i == redis.call('LLEN', q) - 1 then
    redis.call('RPUSH', q, sec .. ' ' .. fmt(amount))
  else
    redis.call('LINSERT', q, 'BEFORE', redis.call('LINDEX', q, i + 1), sec .. ' ' .. fmt(amount))
  end
  local before = total - later
  redis.call('SET', t, fmt(total + amount))
  return {fmt(before), fmt(before + amount)}
end

local function peek_sum(q, t, sec, window)
  local total = tonumber(redis.call('GET', t) or 'nil')
  if not total then return 0 end
  local limit = sec - window
  local n = redis.call('LLEN', q)
  for i = 0, n - 1 do  -- seconds rise along the list: stop at the first one inside the window
    local s, a = split(redis.call('LINDEX', q, i), ' ')
    if s > limit then break end
    total = total - tonumber(a)
  end
  return total - later_sum(q, sec)
end

-- Sliding distinct: a list of "sec<TAB>value" sorted by second; a value counts while one of its
-- seconds is in the window (the hash keeps each value's last second).
local function add_distinct(q, h, sec, window, value)
  local limit = sec - window
  while true do
    local head = redis.call('LINDEX', q, 0)
    if not head then break end
    local s, v = split(head, '\t')
    if s > limit then break end
    redis.call('LPOP', q)
    if tonumber(redis.call('HGET', h, v) or 'nil') == s then redis.call('HDEL', h, v) end
  end
  local newest = redis.call('LINDEX', q, -1)
  if (not newest) or split(newest, '\t') <= sec then
    local before = redis.call('HLEN', h)
    local last = tonumber(redis.call('HGET', h, value) or 'nil')
    if (not last) or last < sec then
      redis.call('HSET', h, value, sec)
      redis.call('RPUSH', q, sec .. '\t' .. value)
    end
    return {fmt(before), fmt(redis.call('HLEN', h))}
  end
  local inside, before, present, pivot = {}, 0, false, nil
  for _, entry in ipairs(redis.call('LRANGE', q, 0, -1)) do
    local s, v = split(entry, '\t')
    if s > sec then pivot = entry break end
    if not inside[v] then inside[v] = true before = before + 1 end
    if s == sec and v == value then present = true end
  end
  if not present then
    redis.call('LINSERT', q, 'BEFORE', pivot, sec .. '\t' .. value)
    local last = tonumber(redis.call('HGET', h, value) or 'nil')
    if (not last) or last < sec then redis.call('HSET', h, value, sec) end
  end
  local after = before
  if not inside[value] then after = before + 1 end
  return {fmt(before), fmt(after)}
end

local function peek_distinct(q, h, sec, window)
  local limit = sec - window
  local entries = redis.call('LRANGE', q, 0, -1)
  if #entries == 0 then return 0 end
  local n = 0
  if split(entries[#entries], '\t') > sec then  -- a late second: the values seen inside its window
    local inside = {}
    for _, entry in ipairs(entries) do
      local s, v = split(entry, '\t')
      if s > limit and s <= sec and not inside[v] then inside[v] = true n = n + 1 end
    end
    return n
  end
  local gone = {}
  for _, entry in ipairs(entries) do
    local s, v = split(entry, '\t')
    if s <= limit and not gone[v] and tonumber(redis.call('HGET', h, v) or 'nil') == s then
      gone[v] = true
      n = n + 1
    end
  end
  return redis.call('HLEN', h) - n
end

-- Calendar day (UTC): a different day starts the count again.
local function add_day(t, sec, amount)
  local day = math.floor(sec / 86400)
  local state = redis.call('GET', t)
  local total = 0
  if state then
    local d, a = split(state, ' ')
    if d > day then return {fmt(0), fmt(amount)} end  -- a late event of a day no longer held: alone
    if d == day then total = tonumber(a) end
  end
  redis.call('SET', t, day .. ' ' .. fmt(total + amount))
  return {fmt(total), fmt(total + amount)}
end

local function add_day_distinct(t, h, sec, value)
  local day = math.floor(sec / 86400)
  local held = tonumber(redis.call('GET', t) or 'nil')
  if held and held > day then return {fmt(0), fmt(1)} end  -- a late event of a day no longer held: alone
  if held ~= day then
    redis.call('DEL', h)
    redis.call('SET', t, day)
  end
  local before = redis.call('SCARD', h)
  redis.call('SADD', h, value)
  return {fmt(before), fmt(redis.call('SCARD', h))}
end

local function peek_day(t, h, sec, distinct)
  local day = math.floor(sec / 86400)
  local state = redis.call('GET', t)
  if not state then return 0 end
  if distinct then
    if tonumber(state) ~= day then return 0 end
    return redis.call('SCARD', h)
  end
  local d, a = split(state, ' ')
  if d ~= day then return 0 end
  return tonumber(a)
end
"""

# KEYS: mark, then (list or state key, total/hash/set key) per update.
# ARGV: sec, mark ttl, then (kind, window, value, key ttl) per update. Kinds: w (sliding count/sum),
# x (sliding distinct), d (day count/sum), y (day distinct).
ADD_SCRIPT = _LUA_COMMON + r"""
local done = redis.call('GET', KEYS[1])
if done then return {1, done} end
local sec = tonumber(ARGV[1])
local out = {}
local n = (#ARGV - 2) / 4
for i = 1, n do
  local kind, window, value, ttl = ARGV[4*i-1], tonumber(ARGV[4*i]), ARGV[4*i+1], tonumber(ARGV[4*i+2])
  local a, b = KEYS[2*i], KEYS[2*i+1]
  local r
  if kind == 'w' then r = add_sum(a, b, sec, window, tonumber(value))
  elseif kind == 'x' then r = add_distinct(a, b, sec, window, value)
  elseif kind == 'd' then r = add_day(b, sec, tonumber(value))
  else r = add_day_distinct(a, b, sec, value) end
  redis.call('EXPIRE', a, ttl)
  redis.call('EXPIRE', b, ttl)
  out[#out + 1] = r[1] .. ' ' .. r[2]
end
local results = table.concat(out, ',')
redis.call('SET', KEYS[1], results, 'EX', ARGV[2])
return {0, results}
"""

# KEYS: list or state key, total/hash/set key. ARGV: kind, window, sec.
PEEK_SCRIPT = _LUA_COMMON + r"""
local kind, window, sec = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local r
if kind == 'w' then r = peek_sum(KEYS[1], KEYS[2], sec, window)
elseif kind == 'x' then r = peek_distinct(KEYS[1], KEYS[2], sec, window)
elseif kind == 'd' then r = peek_day(KEYS[2], nil, sec, false)
else r = peek_day(KEYS[1], KEYS[2], sec, true) end
return fmt(r)
"""


def _number(text: str | bytes) -> float:
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _distinct_value(value: Any) -> str:
    return value if type(value) is str else str(value)


class RedisCounters:
    """A CounterBackend in Redis. `client` is a `redis.Redis`; the caller owns and closes it."""

    def __init__(self, client: Any, prefix: str = "vigil", *, mark_ttl: int = 8 * 86400,
                 key_ttl_margin: int = 3600) -> None:
        self.client = client
        self.prefix = prefix
        self.mark_ttl = mark_ttl
        self.key_ttl_margin = key_ttl_margin
        self._add = client.register_script(ADD_SCRIPT)
        self._peek = client.register_script(PEEK_SCRIPT)
        self._specs: list[tuple[str, str, int, int]] = []  # (cid, kind code, window, key ttl)
        self.peekers: list[Callable[[str, int], float]] = []
        self.redeliveries = 0

    def prepare(self, specs: list[CounterSpec]) -> None:
        """Nothing to read ahead: the state is in Redis, read per event."""

    def bind(self, specs: list[CounterSpec]) -> None:
        bound = []
        for spec in specs:
            distinct = spec.kind == "distinct"
            if spec.window is None:
                bound.append((spec.cid, "y" if distinct else "d", 86400, 2 * 86400 + self.key_ttl_margin))
            else:
                window = int(spec.window)
                bound.append((spec.cid, "x" if distinct else "w", window, window + self.key_ttl_margin))
        # The mark must outlive any redelivery that could still change a window.
        longest = max((ttl for *_, ttl in bound), default=0)
        self.mark_ttl = max(self.mark_ttl, longest)
        self._specs = bound
        self.peekers = [self._peeker(*b) for b in bound]

    def _peeker(self, cid: str, kind: str, window: int, _ttl: int) -> Callable[[str, int], float]:
        peek, prefix = self._peek, self.prefix
        second = "s" if kind in ("x", "y") else "t"

        def peek_counter(key: str, sec: int) -> float:
            return _number(peek(keys=[f"{prefix}:c:{cid}:{key}", f"{prefix}:{second}:{cid}:{key}"],
                                args=[kind, window, sec]))

        return peek_counter

    def add_many(self, event_id: str, sec: int, updates: list[tuple[int, str, Any]]) -> dict[int, tuple[float, float]]:
        """Apply one event's updates in one atomic script; a repeated event id returns the first results."""
        p = self.prefix
        keys = [f"{p}:ev:{event_id}"]
        args: list[Any] = [sec, self.mark_ttl]
        for index, key, value in updates:
            cid, kind, window, ttl = self._specs[index]
            if kind in ("x", "y"):
                keys += [f"{p}:c:{cid}:{key}", f"{p}:s:{cid}:{key}"]
                value = _distinct_value(value)
            else:
                keys += [f"{p}:c:{cid}:{key}", f"{p}:t:{cid}:{key}"]
                value = repr(float(value)) if type(value) is not int else str(value)
            args += [kind, window, value, ttl]
        repeated, results = self._add(keys=keys, args=args)
        if repeated:
            self.redeliveries += 1
        out: dict[int, tuple[float, float]] = {}
        if isinstance(results, bytes):
            results = results.decode()
        for (index, _key, _value), pair in zip(updates, results.split(",") if results else [], strict=False):
            before, after = pair.split(" ")
            out[index] = (_number(before), _number(after))
        return out

    def start(self) -> None:
        """Nothing to start: every update is written before `add_many` returns."""

    def flush(self) -> int:
        return 0

    def flush_status(self) -> FlushStatus:
        """Never failing: a failed update raises in `add_many`, so its event is retried or dead-lettered."""
        return FlushStatus()

    def close(self) -> None:
        """The client belongs to the caller; nothing is buffered here."""
