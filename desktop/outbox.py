"""Cases registered while the case database is away: kept, then applied.

When the database does not answer, a case the agent registers on the desktop
is not lost: its reference is drawn at once (the agent can tell the citizen)
and the case goes to a Redis stream, ``<prefix>cases:outbox``, the engine's
shared live state. The engine tries the stream every few seconds
(``CaseWork.drain_outbox``); each entry is registered with its own reference
and removed only after the database committed it. An entry applied but not
removed (Redis failed in between) is recognised on the next try and not
written twice (``CaseStore.register_as``).

What the stream holds is what the database would: the national ID's and the
number's keyed hashes and the number encrypted, never in clear. Redis keys
name no citizen.
"""

from __future__ import annotations

import json
from datetime import datetime

import redis.asyncio as aioredis

BATCH = 100


def _encode(entry: dict) -> str:
    return json.dumps({k: v.isoformat() if isinstance(v, datetime) else v for k, v in entry.items()},
                      ensure_ascii=False)


def _decode(text: str) -> dict:
    entry = json.loads(text)
    entry["at"] = datetime.fromisoformat(entry["at"])
    return entry


class CaseOutbox:
    def __init__(self, redis: aioredis.Redis, *, prefix: str):
        self._redis = redis
        self.key = f"{prefix}cases:outbox"

    async def put(self, entry: dict) -> str:
        """Keep one registration (``reference`` and ``CaseStore.register``'s fields)."""
        entry_id = await self._redis.xadd(self.key, {"case": _encode(entry)})
        return entry_id.decode() if isinstance(entry_id, bytes) else entry_id

    async def pending(self, count: int = BATCH) -> list[tuple[str, dict]]:
        """The oldest entries first."""
        out = []
        for entry_id, fields in await self._redis.xrange(self.key, count=count):
            entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            raw = fields.get(b"case", fields.get("case"))
            out.append((entry_id, _decode(raw.decode() if isinstance(raw, bytes) else raw)))
        return out

    async def done(self, entry_id: str) -> None:
        await self._redis.xdel(self.key, entry_id)

    async def size(self) -> int:
        return await self._redis.xlen(self.key)
