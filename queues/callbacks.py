"""Callback requests: callers who asked to be called back.

Kept in a Redis stream (``<prefix>callbacks``) so they survive a restart and
every worker sees them; the call-distribution work consumes them. The number
to call is stored (it is needed to call back) but never logged unmasked.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as aioredis


class CallbackStore(Protocol):
    async def request(self, *, hotline: str, number: str, reason: str, call_uid: str,
                      program: str = "") -> str: ...


class MemoryCallbackStore:
    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []

    async def request(self, *, hotline: str, number: str, reason: str, call_uid: str, program: str = "") -> str:
        self.requests.append({"hotline": hotline, "number": number, "reason": reason, "call_uid": call_uid,
                              "program": program, "requested_at": f"{time.time():.3f}"})
        return str(len(self.requests))


class RedisCallbackStore:
    def __init__(self, client: aioredis.Redis, *, prefix: str = "ivr:"):
        self._redis = client
        self.key = f"{prefix}callbacks"

    async def request(self, *, hotline: str, number: str, reason: str, call_uid: str, program: str = "") -> str:
        entry = {"hotline": hotline, "number": number, "reason": reason, "call_uid": call_uid,
                 "program": program, "requested_at": f"{time.time():.3f}"}
        entry_id = await self._redis.xadd(self.key, entry)
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
