"""Where agents' records live: one Redis hash per agent, and the same in memory.

Every write is idempotent (fields are *set*, never toggled) so that two
engine workers applying the same AMI event agree; the two read-modify-write
steps (counting a missed call, leaving the last queue) are one atomic Lua
script each in Redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import redis.asyncio as aioredis

from .state import OFFLINE_FIELDS, QUEUE_FIELD, flag, queues_of, stamp

class AgentStateStore(Protocol):
    async def get(self, agent_id: str) -> dict[str, str]: ...

    async def get_many(self, agent_ids: Iterable[str]) -> dict[str, dict[str, str]]: ...

    async def update(self, agent_id: str, fields: Mapping[str, str], *, delete: Iterable[str] = ()) -> None:
        """Set ``fields`` and remove ``delete``, in one step."""

    async def remove_queue(self, agent_id: str, queue: str, *, now: float) -> bool:
        """Forget one queue membership; when it was the last one the agent is
        offline. Returns True when this call made the agent offline."""

    async def record_missed(self, agent_id: str, attempt: str, *, now: float) -> tuple[int, bool]:
        """Count a call that rang out (once per ``attempt``; an empty attempt
        always counts) and stop the ringing. Returns (calls missed in a row,
        whether this call counted it)."""


class MemoryAgentStateStore:
    """For unit tests and single-process tools; same semantics as Redis."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, str]] = {}

    async def get(self, agent_id: str) -> dict[str, str]:
        return dict(self.records.get(agent_id, {}))

    async def get_many(self, agent_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        return {a: await self.get(a) for a in agent_ids}

    async def update(self, agent_id: str, fields: Mapping[str, str], *, delete: Iterable[str] = ()) -> None:
        record = self.records.setdefault(agent_id, {})
        record.update({k: str(v) for k, v in fields.items()})
        for field in delete:
            record.pop(field, None)

    async def remove_queue(self, agent_id: str, queue: str, *, now: float) -> bool:
        record = self.records.setdefault(agent_id, {})
        record.pop(QUEUE_FIELD + queue, None)
        if queues_of(record) or not flag(record, "logged_in"):
            return False
        record.update(OFFLINE_FIELDS, logout_at=stamp(now))
        return True

    async def record_missed(self, agent_id: str, attempt: str, *, now: float) -> tuple[int, bool]:
        record = self.records.setdefault(agent_id, {})
        if attempt and record.get("last_missed_attempt") == attempt:
            return int(record.get("missed_in_row") or 0), False
        missed = int(record.get("missed_in_row") or 0) + 1
        record.update(missed_in_row=str(missed), last_missed_attempt=attempt, ringing="0",
                      last_missed_at=stamp(now))
        return missed, True


_REMOVE_QUEUE = """
redis.call('HDEL', KEYS[1], ARGV[1])
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, 6) == 'queue:' then return 0 end
end
if redis.call('HGET', KEYS[1], 'logged_in') ~= '1' then return 0 end
redis.call('HSET', KEYS[1], 'logged_in', '0', 'paused', '0', 'pause_reason', '', 'ringing', '0',
           'in_call', '0', 'logout_at', ARGV[2])
return 1
"""

_RECORD_MISSED = """
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'last_missed_attempt') == ARGV[1] then
  return {tonumber(redis.call('HGET', KEYS[1], 'missed_in_row') or '0'), 0}
end
local missed = redis.call('HINCRBY', KEYS[1], 'missed_in_row', 1)
redis.call('HSET', KEYS[1], 'last_missed_attempt', ARGV[1], 'ringing', '0', 'last_missed_at', ARGV[2])
return {missed, 1}
"""


class RedisAgentStateStore:
    """One hash per agent, ``<prefix>agent:<id>``; no expiry (a handful of agents)."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "ivr:"):
        self._redis = client
        self._prefix = prefix
        self._remove_queue = client.register_script(_REMOVE_QUEUE)
        self._record_missed = client.register_script(_RECORD_MISSED)

    def key(self, agent_id: str) -> str:
        return f"{self._prefix}agent:{agent_id}"

    @staticmethod
    def _decode(raw: Mapping[Any, Any]) -> dict[str, str]:
        return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in raw.items()}

    async def get(self, agent_id: str) -> dict[str, str]:
        return self._decode(await self._redis.hgetall(self.key(agent_id)))

    async def get_many(self, agent_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        ids = list(agent_ids)
        async with self._redis.pipeline(transaction=False) as pipe:
            for agent_id in ids:
                pipe.hgetall(self.key(agent_id))
            raws = await pipe.execute()
        return {agent_id: self._decode(raw) for agent_id, raw in zip(ids, raws)}

    async def update(self, agent_id: str, fields: Mapping[str, str], *, delete: Iterable[str] = ()) -> None:
        key = self.key(agent_id)
        delete = [f for f in delete if f not in fields]
        async with self._redis.pipeline(transaction=True) as pipe:
            if fields:
                pipe.hset(key, mapping={k: str(v) for k, v in fields.items()})
            if delete:
                pipe.hdel(key, *delete)
            await pipe.execute()

    async def remove_queue(self, agent_id: str, queue: str, *, now: float) -> bool:
        return bool(await self._remove_queue(keys=[self.key(agent_id)], args=[QUEUE_FIELD + queue, stamp(now)]))

    async def record_missed(self, agent_id: str, attempt: str, *, now: float) -> tuple[int, bool]:
        missed, counted = await self._record_missed(keys=[self.key(agent_id)], args=[attempt, stamp(now)])
        return int(missed), bool(counted)
