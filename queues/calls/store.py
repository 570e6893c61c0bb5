"""Per-call facts shared by every engine worker, in Redis or in memory.

Accounting asks one question many times: "has this happened to this call
yet?" :meth:`CallStateStore.apply` answers it for several facts at once, in
one atomic step (a Lua script on Redis): each *mark* is set only if the call
does not have it yet (``HSETNX``), each *set* is written whatever was there,
and the call's facts come back with the marks that were new. So an event
seen twice (a repeated event, a re-sync after an AMI reconnect, two
workers) is counted once.

A retry must not be taken for a duplicate. When the connection fails after
Redis applied a step but before its answer arrived, the same delivery of the
event comes again; so each mark remembers the delivery that made it (the
event's ``ref``, in a second hash ``<prefix>call:<uid>:by``) and a mark made
by the same delivery counts as new again. The caller counts what is new only
once its whole event has succeeded (queues/calls/accounting.py), so the
retry counts it exactly once. A mark made with an empty ``ref`` (tools,
tests) is plain set-once.

Call facts expire after ``ttl_seconds`` (a day by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import redis.asyncio as aioredis


class CallStateStore(Protocol):
    async def apply(self, call_uid: str, *, marks: Mapping[str, str] = {}, sets: Mapping[str, str] = {},
                    ref: str = "") -> tuple[set[str], dict[str, str]]:
        """Set each of ``marks`` that the call does not have yet (or that this
        same delivery ``ref`` made), write ``sets``; one atomic step. Returns
        (the marks that are new, the call's facts afterwards)."""

    async def mark_once(self, call_uid: str, fact: str, value: str = "1") -> bool:
        """Record ``fact`` for the call; True only the first time."""

    async def facts(self, call_uid: str) -> dict[str, str]: ...

    async def set_fact(self, call_uid: str, fact: str, value: str) -> None: ...

    async def unmark(self, call_uid: str, fact: str) -> None:
        """Forget ``fact`` (a claim whose work failed, to be retried)."""


class MemoryCallStateStore:
    """For unit tests and single-process tools; same semantics, no persistence."""

    def __init__(self) -> None:
        self._calls: dict[str, dict[str, str]] = {}
        self._by: dict[str, dict[str, str]] = {}

    async def apply(self, call_uid: str, *, marks: Mapping[str, str] = {}, sets: Mapping[str, str] = {},
                    ref: str = "") -> tuple[set[str], dict[str, str]]:
        facts = self._calls.setdefault(call_uid, {})
        by = self._by.setdefault(call_uid, {})
        new = set()
        for fact, value in marks.items():
            if fact not in facts:
                facts[fact] = value
                if ref:
                    by[fact] = ref
                new.add(fact)
            elif ref and by.get(fact) == ref:
                new.add(fact)
        facts.update(sets)
        return new, dict(facts)

    async def mark_once(self, call_uid: str, fact: str, value: str = "1") -> bool:
        new, _ = await self.apply(call_uid, marks={fact: value})
        return fact in new

    async def facts(self, call_uid: str) -> dict[str, str]:
        return dict(self._calls.get(call_uid, {}))

    async def set_fact(self, call_uid: str, fact: str, value: str) -> None:
        self._calls.setdefault(call_uid, {})[fact] = value

    async def unmark(self, call_uid: str, fact: str) -> None:
        self._calls.get(call_uid, {}).pop(fact, None)
        self._by.get(call_uid, {}).pop(fact, None)


# KEYS: the call's facts, who made each mark. ARGV: ref ('' = none), ttl, number
# of marks n, then n field/value pairs (marks), then field/value pairs (sets).
_APPLY = """
local ref, ttl, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local new = {}
local i = 4
for _ = 1, n do
  local field, value = ARGV[i], ARGV[i + 1]
  i = i + 2
  if redis.call('HSETNX', KEYS[1], field, value) == 1 then
    if ref ~= '' then redis.call('HSET', KEYS[2], field, ref) end
    table.insert(new, field)
  elseif ref ~= '' and redis.call('HGET', KEYS[2], field) == ref then
    table.insert(new, field)
  end
end
while i <= #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('EXPIRE', KEYS[1], ttl)
if ref ~= '' and n > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
return {new, redis.call('HGETALL', KEYS[1])}
"""


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisCallStateStore:
    def __init__(self, client: aioredis.Redis, *, prefix: str = "ivr:", ttl_seconds: int = 86400):
        self._redis = client
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._apply = client.register_script(_APPLY)

    def _key(self, call_uid: str) -> str:
        return f"{self._prefix}call:{call_uid}"

    async def apply(self, call_uid: str, *, marks: Mapping[str, str] = {}, sets: Mapping[str, str] = {},
                    ref: str = "") -> tuple[set[str], dict[str, str]]:
        key = self._key(call_uid)
        args: list[str] = [ref, str(self._ttl), str(len(marks))]
        for fact, value in marks.items():
            args += [fact, value]
        for fact, value in sets.items():
            args += [fact, value]
        new, flat = await self._apply(keys=[key, key + ":by"], args=args)
        facts = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
        return {_text(f) for f in new}, facts

    async def mark_once(self, call_uid: str, fact: str, value: str = "1") -> bool:
        new, _ = await self.apply(call_uid, marks={fact: value})
        return fact in new

    async def facts(self, call_uid: str) -> dict[str, str]:
        raw = await self._redis.hgetall(self._key(call_uid))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def set_fact(self, call_uid: str, fact: str, value: str) -> None:
        key = self._key(call_uid)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, fact, value)
            pipe.expire(key, self._ttl)
            await pipe.execute()

    async def unmark(self, call_uid: str, fact: str) -> None:
        key = self._key(call_uid)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(key, fact)
            pipe.hdel(key + ":by", fact)
            await pipe.execute()
