"""Per-call state shared by every engine worker, with a Redis and an in-memory store.

Accounting asks one question many times: "has this happened to this call
yet?" ``mark_once`` answers it atomically (Redis ``HSETNX``), so an event
seen twice (a repeated event, a re-sync after an AMI reconnect, two workers)
is counted once. Call records expire after a day.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as aioredis


class CallStateStore(Protocol):
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

    async def mark_once(self, call_uid: str, fact: str, value: str = "1") -> bool:
        facts = self._calls.setdefault(call_uid, {})
        if fact in facts:
            return False
        facts[fact] = value
        return True

    async def facts(self, call_uid: str) -> dict[str, str]:
        return dict(self._calls.get(call_uid, {}))

    async def set_fact(self, call_uid: str, fact: str, value: str) -> None:
        self._calls.setdefault(call_uid, {})[fact] = value

    async def unmark(self, call_uid: str, fact: str) -> None:
        self._calls.get(call_uid, {}).pop(fact, None)


class RedisCallStateStore:
    def __init__(self, client: aioredis.Redis, *, prefix: str = "ivr:", ttl_seconds: int = 86400):
        self._redis = client
        self._prefix = prefix
        self._ttl = ttl_seconds

    def _key(self, call_uid: str) -> str:
        return f"{self._prefix}call:{call_uid}"

    async def mark_once(self, call_uid: str, fact: str, value: str = "1") -> bool:
        key = self._key(call_uid)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, fact, value)
            pipe.expire(key, self._ttl)
            added, _ = await pipe.execute()
        return bool(added)

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
        await self._redis.hdel(self._key(call_uid), fact)


def now() -> str:
    return f"{time.time():.3f}"
