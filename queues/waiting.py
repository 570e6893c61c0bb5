"""Who is waiting in which queue, in app_queue's order, shared by every worker.

Fed by AMI events (``WaitingTracker.handle``) and rebuilt from a
``QueueStatus`` snapshot (``WaitingTracker.resync``):

==================  =========================================================
QueueCallerJoin     the caller is queued (Queue, Uniqueid, Channel, Position)
QueueCallerLeave    the caller left the queue, for whatever reason
QueueCallerAbandon  (treated like a leave; app_queue sends a leave as well)
AgentConnect        answered: leaves the queue; HoldTime is a measured wait
AgentComplete       the call ended: TalkTime joins the queue's recent handle
                    times (the newest 50 are kept)
QueueEntry          one waiting caller in a QueueStatus answer (resync)
==================  =========================================================

Order. app_queue answers higher priorities (``QUEUE_PRIO``) first and, within
a priority, earlier arrivals first; a caller re-entering with the ``position``
argument (back from the callback menu) is put back at that position, but
never ahead of a higher priority. The store keeps exactly that order as a
sorted-set score ``-priority * 1e10 + order``: the priority band, then an
``order`` within it (the join time, unless app_queue's reported ``Position``
says the caller went elsewhere, e.g. back to their old place). Counting the
callers a new caller of priority p would queue behind is then one ``ZCOUNT``.

Events must be applied in the order Asterisk sent them (the engine's AMI
consumer does): a join is placed relative to the callers already there. A
join seen twice (a second worker, a replay) leaves the caller where they are.

AMI trap: ``Priority`` in QueueCallerJoin (and in every event with a channel
snapshot) is the *dialplan* priority of the channel (the step of the
extension), not the queue priority. Only ``QueueEntry`` (QueueStatus) carries
the queue priority in ``Priority``. On a join the priority therefore comes
from ``priority_of(uid)`` (the IVR's call facts) and, when that is unknown
(a callback placeholder), is inferred from where app_queue put the caller.

Redis keys (``<prefix>`` is the configured key prefix):

* ``<prefix>waiting:<queue>``        sorted set, uid -> score (see above)
* ``<prefix>waiter:<queue>:<uid>``   hash: channel, priority, joined (epoch s).
  It outlives the caller's stay (``entry_ttl_seconds``) so that a caller who
  leaves for the callback menu and comes back keeps their first join time.
  A uid in the sorted set whose hash has expired is a leave that was never
  seen (AMI down): it is dropped when read.
* ``<prefix>handle:<queue>``         list of recent talk times (LPUSH, LTRIM)
* ``<prefix>holdtime:<queue>``       list of recent measured waits
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import redis.asyncio as aioredis

from core.configuration import Config

from core.erlang import HandleTimes
from queues.ami.events import (AgentComplete, AgentConnect, AmiEvent, QueueCallerAbandon, QueueCallerJoin,
                               QueueCallerLeave, QueueEntry)
from queues.calls.store import CallStateStore

log = logging.getLogger(__name__)

# One priority band per QUEUE_PRIO value; the order inside a band is an epoch
# time in seconds (< 1e10 until the year 2286).
BAND = 1e10
# Smallest step between two callers placed by position rather than by time.
STEP = 1e-3
MAX_PRIORITY = 10_000
SAMPLES_KEPT = 50

SampleKind = Literal["handle", "holdtime"]


@dataclass(frozen=True)
class Waiter:
    """A caller waiting in a queue, as announcements need them."""

    uid: str
    channel: str
    position: int       # 1 = next to be answered
    waited_s: float
    priority: int


@dataclass(frozen=True)
class Entry:
    """What a store keeps per waiting caller."""

    uid: str
    channel: str
    priority: int
    order: float        # position inside the priority band
    joined: float       # first join (epoch seconds), for the time waited

    @property
    def score(self) -> float:
        return score(self.priority, self.order)


def score(priority: int, order: float) -> float:
    return -priority * BAND + order


def split_score(value: float) -> tuple[int, float]:
    """Sorted-set score -> (priority, order)."""
    priority = -math.floor(value / BAND)
    return priority, value + priority * BAND


def clamp_priority(value: int) -> int:
    return max(0, min(MAX_PRIORITY, value))


def place(ahead_and_behind: Sequence[tuple[int, float]], *, priority: int | None, position: int | None,
          joined: float) -> tuple[int, float]:
    """Where a joining caller goes: (priority, order).

    ``ahead_and_behind`` are the (priority, order) of the callers already
    waiting, in queue order, without this caller. ``position`` is where
    app_queue says it put the caller (1-based), when known. Pure function,
    shared by the Redis and in-memory stores.
    """
    n = len(ahead_and_behind)
    if position is not None and not 1 <= position <= n + 1:
        position = None
    prev = ahead_and_behind[position - 2] if position is not None and position >= 2 else None
    nxt = ahead_and_behind[position - 1] if position is not None and position <= n else None
    return place_between(prev, nxt, priority=priority, position=position, joined=joined)


def place_between(prev: tuple[int, float] | None, nxt: tuple[int, float] | None, *, priority: int | None,
                  position: int | None, joined: float) -> tuple[int, float]:
    """``place`` once the reported position is known to be valid (or None):
    only the callers just ahead of it (``prev``) and just behind it (``nxt``)
    matter, so the Redis store reads those two, not the whole queue."""
    if priority is None:
        # Unknown priority: app_queue put the caller behind everyone of a
        # higher or equal priority, so the caller ahead tells us the most.
        priority = prev[0] if prev is not None else nxt[0] if nxt is not None else 0
    priority = clamp_priority(priority)
    natural = min(max(joined, 0.0), BAND - 1)
    if position is None:
        return priority, natural
    # Only neighbours in the same band constrain the order; a neighbour in
    # another band is already on the right side through the priority.
    lo = prev[1] if prev is not None and prev[0] == priority else -math.inf
    hi = nxt[1] if nxt is not None and nxt[0] == priority else math.inf
    if (prev is not None and prev[0] < priority) or (nxt is not None and nxt[0] > priority):
        return priority, natural  # the reported position contradicts the priority: trust the priority
    if lo < natural < hi:
        return priority, natural
    if math.isfinite(lo) and math.isfinite(hi):
        return priority, (lo + hi) / 2
    if math.isfinite(lo):
        return priority, lo + STEP
    return priority, hi - STEP


def resync_entries(rows: Sequence[QueueEntry], remembered_joined: Mapping[str, float], now: float) -> list[Entry]:
    """QueueEntry rows of one queue -> entries in app_queue's order.

    ``Wait`` counts from the caller's latest entry into Queue(); a join time
    we already knew (first entry, before a visit to the callback menu) is
    kept instead.
    """
    out: list[Entry] = []
    for row in sorted(rows, key=lambda r: r.position or 0):
        uid = row.uniqueid
        if not uid:
            continue
        priority = clamp_priority(row.priority or 0)
        wait = row.wait or 0
        joined = remembered_joined.get(uid, now - wait)
        order = min(max(now - wait, 0.0), BAND - 1)
        if out and out[-1].priority == priority and order <= out[-1].order:
            order = out[-1].order + STEP  # same second, or moved by position: keep app_queue's order
        out.append(Entry(uid, row.channel, priority, order, joined))
    return out


def _float(value: str | None) -> float | None:
    try:
        result = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


# ------------------------------------------------------------------ stores

class WaitingStore(Protocol):
    async def join(self, queue: str, uid: str, *, channel: str, priority: int | None, position: int | None,
                   now: float, priority_lookup: Awaitable[int | None] | None = None) -> int:
        """Queue the caller where app_queue did; return the priority used.
        ``priority_lookup``: where the priority comes from when ``priority``
        is not given (the call facts), awaited alongside the store's own read."""

    async def leave(self, queue: str, uid: str) -> bool:
        """True if the caller was waiting there."""

    async def joined_times(self, queue: str, uids: Sequence[str]) -> dict[str, float]: ...

    async def replace(self, queue: str, entries: Sequence[Entry]) -> None:
        """The queue holds exactly ``entries`` now (a QueueStatus snapshot)."""

    async def entries(self, queue: str) -> list[Entry]:
        """Waiting callers in app_queue's order."""

    async def find(self, queue: str, uid: str) -> tuple[int, Entry] | None:
        """One waiting caller and their position (1 = next), without reading
        the whole queue; None if not waiting."""

    async def summary(self, queue: str) -> tuple[int, float | None]:
        """(callers waiting, the earliest first-join time among them), as
        ``entries`` would give them (stale entries dropped), for the live
        figures every 2 s without moving the whole queue."""

    async def count_at_least(self, queue: str, priority: int) -> int: ...

    async def push_sample(self, kind: SampleKind, queue: str, seconds: float) -> None: ...

    async def samples(self, kind: SampleKind, queue: str) -> list[float]:
        """Newest first."""


class MemoryWaitingStore:
    """For unit tests and single-process tools; the same semantics as Redis."""

    def __init__(self, *, samples_kept: int = SAMPLES_KEPT) -> None:
        self._queues: dict[str, dict[str, Entry]] = {}
        self._joined: dict[tuple[str, str], float] = {}
        self._samples: dict[tuple[str, str], list[float]] = {}
        self._kept = samples_kept

    def _ordered(self, queue: str) -> list[Entry]:
        return sorted(self._queues.get(queue, {}).values(), key=lambda e: e.score)

    async def join(self, queue: str, uid: str, *, channel: str, priority: int | None, position: int | None,
                   now: float, priority_lookup: Awaitable[int | None] | None = None) -> int:
        if priority_lookup is not None:
            priority = await priority_lookup
        joined = self._joined.setdefault((queue, uid), now)
        known = self._queues.get(queue, {}).get(uid)
        if known is not None:  # the same event again: the caller keeps their place
            prio, order = known.priority, known.order
        else:
            others = [(e.priority, e.order) for e in self._ordered(queue)]
            prio, order = place(others, priority=priority, position=position, joined=joined)
        self._queues.setdefault(queue, {})[uid] = Entry(uid, channel, prio, order, joined)
        return prio

    async def leave(self, queue: str, uid: str) -> bool:
        return self._queues.get(queue, {}).pop(uid, None) is not None

    async def joined_times(self, queue: str, uids: Sequence[str]) -> dict[str, float]:
        return {u: self._joined[(queue, u)] for u in uids if (queue, u) in self._joined}

    async def replace(self, queue: str, entries: Sequence[Entry]) -> None:
        self._queues[queue] = {e.uid: e for e in entries}
        for e in entries:
            self._joined.setdefault((queue, e.uid), e.joined)

    async def entries(self, queue: str) -> list[Entry]:
        return self._ordered(queue)

    async def summary(self, queue: str) -> tuple[int, float | None]:
        entries = self._ordered(queue)
        return len(entries), min((e.joined for e in entries), default=None)

    async def find(self, queue: str, uid: str) -> tuple[int, Entry] | None:
        for i, e in enumerate(self._ordered(queue), start=1):
            if e.uid == uid:
                return i, e
        return None

    async def count_at_least(self, queue: str, priority: int) -> int:
        return sum(1 for e in self._queues.get(queue, {}).values() if e.priority >= priority)

    async def push_sample(self, kind: SampleKind, queue: str, seconds: float) -> None:
        values = self._samples.setdefault((kind, queue), [])
        values.insert(0, seconds)
        del values[self._kept:]

    async def samples(self, kind: SampleKind, queue: str) -> list[float]:
        return list(self._samples.get((kind, queue), []))


# A join's read: KEYS waiting zset, waiter hash; ARGV now, uid, position (0:
# none). Returns {joined, the caller's score or '', queue length, the
# caller just ahead of the position, the one just behind} (each neighbour
# {member, score}, or {} when there is none or the caller already waits).
_READ_JOIN = """
redis.call('HSETNX', KEYS[2], 'joined', ARGV[1])
local joined = redis.call('HGET', KEYS[2], 'joined')
local mine = redis.call('ZSCORE', KEYS[1], ARGV[2])
local n = redis.call('ZCARD', KEYS[1])
local pos = tonumber(ARGV[3])
local prev, nxt = {}, {}
if not mine and pos >= 1 and pos <= n + 1 then
  if pos >= 2 then prev = redis.call('ZRANGE', KEYS[1], pos - 2, pos - 2, 'WITHSCORES') end
  if pos <= n then nxt = redis.call('ZRANGE', KEYS[1], pos - 1, pos - 1, 'WITHSCORES') end
end
return {joined, mine or '', n, prev, nxt}
"""

# A join's write, if the queue still looks as read: ARGV uid, its score as
# read ('' if it was not waiting), the length read, position, the member
# and score ahead and behind as read ("<member> <score>", '' for none), the new score, channel, priority,
# ttl. Returns 1 when written, 0 when something changed (read again).
_WRITE_JOIN = """
local mine = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (mine or '') ~= ARGV[2] then return 0 end
if redis.call('ZCARD', KEYS[1]) ~= tonumber(ARGV[3]) then return 0 end
local pos = tonumber(ARGV[4])
if ARGV[2] == '' and pos >= 1 then
  if ARGV[5] ~= '' then
    local at = redis.call('ZRANGE', KEYS[1], pos - 2, pos - 2, 'WITHSCORES')
    if (at[1] or '') .. ' ' .. (at[2] or '') ~= ARGV[5] then return 0 end
  end
  if ARGV[6] ~= '' then
    local at = redis.call('ZRANGE', KEYS[1], pos - 1, pos - 1, 'WITHSCORES')
    if (at[1] or '') .. ' ' .. (at[2] or '') ~= ARGV[6] then return 0 end
  end
end
redis.call('ZADD', KEYS[1], ARGV[7], ARGV[1])
redis.call('HSET', KEYS[2], 'channel', ARGV[8], 'priority', ARGV[9])
redis.call('EXPIRE', KEYS[2], ARGV[10])
redis.call('EXPIRE', KEYS[1], ARGV[10])
return 1
"""


# The live figures of one queue: KEYS waiting zset; ARGV the waiter hashes'
# key prefix. Returns {count, earliest joined ('' if none), stale dropped};
# an entry whose record expired (a leave never seen) is dropped, as
# ``entries`` drops it.
_SUMMARY = """
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local count, earliest, stale = 0, nil, {}
for _, uid in ipairs(members) do
  local rec = redis.call('HMGET', ARGV[1] .. uid, 'channel', 'joined')
  local joined = tonumber(rec[2])
  if rec[1] and joined then
    count = count + 1
    if earliest == nil or joined < earliest then earliest = joined end
  else
    stale[#stale + 1] = uid
  end
end
if #stale > 0 then redis.call('ZREM', KEYS[1], unpack(stale)) end
return {count, earliest and string.format('%.6f', earliest) or '', #stale}
"""


def _neighbour(pair) -> tuple[int, float] | None:
    """A {member, score} reply of _READ_JOIN -> (priority, order)."""
    return split_score(float(_text(pair[1]))) if pair else None


def _member(pair) -> str:
    return f"{_text(pair[0])} {_text(pair[1])}" if pair else ""


class RedisWaitingStore:
    """The shared store. A join reads what decides its place and writes the
    caller's score only if that is unchanged (two scripts, ``join``), so two
    workers handling the same events, or two joins at once, never interleave."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "ivr:", entry_ttl_seconds: int = 6 * 3600,
                 samples_kept: int = SAMPLES_KEPT):
        self._redis = client
        self._read_join = client.register_script(_READ_JOIN)
        self._summary = client.register_script(_SUMMARY)
        self._write_join = client.register_script(_WRITE_JOIN)
        self._prefix = prefix
        self._ttl = entry_ttl_seconds
        self._kept = samples_kept

    def waiting_key(self, queue: str) -> str:
        return f"{self._prefix}waiting:{queue}"

    def waiter_key(self, queue: str, uid: str) -> str:
        return f"{self._prefix}waiter:{queue}:{uid}"

    def sample_key(self, kind: SampleKind, queue: str) -> str:
        return f"{self._prefix}{kind}:{queue}"

    async def join(self, queue: str, uid: str, *, channel: str, priority: int | None, position: int | None,
                   now: float, priority_lookup: Awaitable[int | None] | None = None) -> int:
        """Two round trips, whatever the queue's length: one script reads the
        caller's first join time (set now if new), whether they are already
        waiting, the queue's length and the two callers around the reported
        position; ``place_between`` decides; a second script writes the
        caller's place only if none of what was read has changed meanwhile
        (another worker's join), else the read is done again. The outcome
        is the one a WATCH/MULTI over the whole queue gave (``place`` depends
        on nothing else), without reading the whole queue on every join.
        The priority lookup (the call facts: another round trip) runs at the
        same time as the first read: on a saturated machine each round trip
        waiting for the next is what puts the engine behind Asterisk."""
        zkey, hkey = self.waiting_key(queue), self.waiter_key(queue, uid)
        read_args = dict(keys=[zkey, hkey], args=[repr(now), uid, position if position is not None else 0])
        first = None
        if priority_lookup is not None:
            priority, first = await asyncio.gather(priority_lookup, self._read_join(**read_args))
        while True:
            joined_raw, mine_raw, n, prev, nxt = first if first is not None else await self._read_join(**read_args)
            first = None
            joined = _float(_text(joined_raw)) or now
            mine = _text(mine_raw)
            if mine:
                # Already waiting: the same event again (another worker, a
                # replay). Its place stays where it is.
                prio, order = split_score(float(mine))
            else:
                valid = position if position is not None and 1 <= position <= int(n) + 1 else None
                prio, order = place_between(_neighbour(prev), _neighbour(nxt), priority=priority,
                                            position=valid, joined=joined)
            if await self._write_join(keys=[zkey, hkey], args=[
                    uid, mine, int(n), position if position is not None else 0, _member(prev), _member(nxt),
                    repr(score(prio, order)), channel, str(prio), self._ttl]):
                return prio
            await asyncio.sleep(0)

    async def leave(self, queue: str, uid: str) -> bool:
        return bool(await self._redis.zrem(self.waiting_key(queue), uid))

    async def joined_times(self, queue: str, uids: Sequence[str]) -> dict[str, float]:
        if not uids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for uid in uids:
                pipe.hget(self.waiter_key(queue, uid), "joined")
            values = await pipe.execute()
        out = {}
        for uid, raw in zip(uids, values):
            joined = _float(_text(raw))
            if joined is not None:
                out[uid] = joined
        return out

    async def replace(self, queue: str, entries: Sequence[Entry]) -> None:
        zkey = self.waiting_key(queue)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(zkey)
            if entries:
                pipe.zadd(zkey, {e.uid: e.score for e in entries})
                pipe.expire(zkey, self._ttl)
            for e in entries:
                hkey = self.waiter_key(queue, e.uid)
                pipe.hsetnx(hkey, "joined", repr(e.joined))
                pipe.hset(hkey, mapping={"channel": e.channel, "priority": str(e.priority)})
                pipe.expire(hkey, self._ttl)
            await pipe.execute()

    async def entries(self, queue: str) -> list[Entry]:
        zkey = self.waiting_key(queue)
        members = await self._redis.zrange(zkey, 0, -1, withscores=True)
        if not members:
            return []
        uids = [_text(m) for m, _ in members]
        async with self._redis.pipeline(transaction=False) as pipe:
            for uid in uids:
                pipe.hmget(self.waiter_key(queue, uid), ["channel", "joined"])
            details = await pipe.execute()
        out, stale = [], []
        for uid, (_, value), (channel, joined) in zip(uids, members, details):
            joined_s = _float(_text(joined))
            if channel is None or joined_s is None:
                stale.append(uid)
                continue
            prio, order = split_score(value)
            out.append(Entry(uid, _text(channel), prio, order, joined_s))
        if stale:
            # Their leave was never seen (AMI down) and their record expired.
            await self._redis.zrem(zkey, *stale)
            log.info("queue %s: dropped %d stale waiting entries", queue, len(stale))
        return out

    async def summary(self, queue: str) -> tuple[int, float | None]:
        """One script: Redis walks the queue, the engine gets two numbers."""
        count, earliest, stale = await self._summary(keys=[self.waiting_key(queue)],
                                                     args=[f"{self._prefix}waiter:{queue}:"])
        if int(stale):
            log.info("queue %s: dropped %d stale waiting entries", queue, int(stale))
        return int(count), _float(_text(earliest)) if _text(earliest) else None

    async def find(self, queue: str, uid: str) -> tuple[int, Entry] | None:
        """One round trip: the caller's rank, score and record. The position
        counts any stale entry ahead (a leave never seen, dropped by the next
        ``entries``, which the live figures read every 2 s)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrank(self.waiting_key(queue), uid)
            pipe.zscore(self.waiting_key(queue), uid)
            pipe.hmget(self.waiter_key(queue, uid), ["channel", "joined"])
            rank, value, (channel, joined) = await pipe.execute()
        joined_s = _float(_text(joined))
        if rank is None or value is None or channel is None or joined_s is None:
            return None
        prio, order = split_score(float(value))
        return int(rank) + 1, Entry(uid, _text(channel), prio, order, joined_s)

    async def count_at_least(self, queue: str, priority: int) -> int:
        # Band of priority p: scores in [-p*BAND, -(p-1)*BAND).
        return int(await self._redis.zcount(self.waiting_key(queue), "-inf", f"({-(priority - 1) * BAND!r}"))

    async def push_sample(self, kind: SampleKind, queue: str, seconds: float) -> None:
        key = self.sample_key(kind, queue)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, repr(float(seconds)))
            pipe.ltrim(key, 0, self._kept - 1)
            await pipe.execute()

    async def samples(self, kind: SampleKind, queue: str) -> list[float]:
        raw = await self._redis.lrange(self.sample_key(kind, queue), 0, -1)
        return [v for v in (_float(_text(r)) for r in raw) if v is not None]


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


# ----------------------------------------------------------------- tracker

PriorityOf = Callable[[str], Awaitable[int | None]]


def priority_from_call_state(store: CallStateStore) -> PriorityOf:
    """The queue priority the IVR recorded in the call facts (``priority``)."""

    async def priority_of(uid: str) -> int | None:
        value = (await store.facts(uid)).get("priority")
        try:
            return int(value) if value not in (None, "") else None
        except ValueError:
            return None

    return priority_of


class WaitingTracker:
    """The live queue picture: AMI events in, positions and handle times out."""

    def __init__(self, *, store: WaitingStore, config: Config, priority_of: PriorityOf | None = None,
                 clock: Callable[[], float] = time.time):
        self._store = store
        self._queues = {q.id: q for q in config.queues}
        self._handle_times = {q.id: HandleTimes(default_seconds=q.default_handle_seconds,
                                                wrapup_seconds=q.wrapup_seconds) for q in config.queues}
        self._priority_of = priority_of
        self._clock = clock

    @property
    def queue_ids(self) -> tuple[str, ...]:
        return tuple(self._queues)

    async def handle(self, event: AmiEvent, now: float | None = None) -> str:
        """Apply one AMI event; return what was done (for logs and tests)."""
        handler = self._handlers.get(type(event))
        if handler is None:
            return "ignored"
        queue, uid = event.queue, event.uniqueid
        if not uid or not queue:
            log.warning("AMI %s without Queue or Uniqueid; ignored", event.name)
            return "malformed"
        if queue not in self._queues:
            return "unknown_queue"
        return await handler(self, queue, uid, event, self._clock() if now is None else now)

    async def _join(self, queue: str, uid: str, event: QueueCallerJoin, now: float) -> str:
        position = event.position or None
        lookup = self._priority_of(uid) if self._priority_of is not None else None
        used = await self._store.join(queue, uid, channel=event.channel, priority=None, position=position,
                                      now=now, priority_lookup=lookup)
        log.debug("call %s waits in %s at position %s, priority %d", uid, queue, position, used)
        return "joined"

    async def _leave(self, queue: str, uid: str, event: AmiEvent, now: float) -> str:
        return "left" if await self._store.leave(queue, uid) else "not_waiting"

    async def _connect(self, queue: str, uid: str, event: AgentConnect, now: float) -> str:
        await self._store.leave(queue, uid)
        hold = event.hold_time
        if hold is not None and hold >= 0:
            await self._store.push_sample("holdtime", queue, hold)
        return "answered"

    async def _complete(self, queue: str, uid: str, event: AgentComplete, now: float) -> str:
        await self._store.leave(queue, uid)
        talk = event.talk_time
        if talk is None or talk <= 0:
            return "completed"
        await self._store.push_sample("handle", queue, talk)
        return "completed"

    _handlers: ClassVar[dict] = {
        QueueCallerJoin: _join,
        QueueCallerLeave: _leave,
        QueueCallerAbandon: _leave,
        AgentConnect: _connect,
        AgentComplete: _complete,
    }

    async def resync(self, entries: Iterable[AmiEvent], *, queues: Iterable[str] | None = None,
                     now: float | None = None) -> int:
        """Rebuild from the ``QueueEntry`` events of a QueueStatus answer.

        ``queues``: the queues the snapshot covers (default: every configured
        queue, which is what a QueueStatus without ``Queue`` returns); a
        covered queue without entries is empty. Returns the callers found.
        """
        now = self._clock() if now is None else now
        covered = set(self._queues if queues is None else queues) & set(self._queues)
        rows: dict[str, list[QueueEntry]] = {q: [] for q in covered}
        for e in entries:
            if isinstance(e, QueueEntry) and e.queue in rows:
                rows[e.queue].append(e)
        total = 0
        for queue, queue_rows in rows.items():
            uids = [r.uniqueid for r in queue_rows if r.uniqueid]
            remembered = await self._store.joined_times(queue, uids)
            result = resync_entries(queue_rows, remembered, now)
            await self._store.replace(queue, result)
            total += len(result)
        return total

    async def position_for_new_caller(self, queue: str, priority: int) -> int:
        """The position a caller of ``priority`` gets on joining now: everyone
        waiting with the same or a higher priority is ahead."""
        return await self._store.count_at_least(queue, clamp_priority(priority)) + 1

    async def waiting(self, queue: str, now: float | None = None) -> list[Waiter]:
        now = self._clock() if now is None else now
        return [Waiter(e.uid, e.channel, i, max(0.0, now - e.joined), e.priority)
                for i, e in enumerate(await self._store.entries(queue), start=1)]

    async def summary(self, queue: str, now: float | None = None) -> tuple[int, float]:
        """(callers waiting, the longest wait in seconds): ``waiting``'s
        length and largest ``waited_s``, without reading every caller."""
        now = self._clock() if now is None else now
        count, earliest = await self._store.summary(queue)
        return count, max(0.0, now - earliest) if earliest is not None else 0.0

    async def waiter(self, queue: str, uid: str, now: float | None = None) -> Waiter | None:
        """One waiting caller (``waiting`` filtered to ``uid``, without reading
        the whole queue: a join's announcement must not cost O(queue))."""
        found = await self._store.find(queue, uid)
        if found is None:
            return None
        now = self._clock() if now is None else now
        position, e = found
        return Waiter(e.uid, e.channel, position, max(0.0, now - e.joined), e.priority)

    async def handle_seconds(self, queue: str) -> float:
        """Average handle time h of the queue (talk + wrap-up, or the default)."""
        times = self._handle_times.get(queue) or HandleTimes(default_seconds=180.0)
        return times.average(await self._store.samples("handle", queue))

    async def place_of(self, queue: str, uid: str, *, facts: Mapping[str, str]) -> int | None:
        """A caller's place in ``queue`` (1 = next), counted from the callers
        still waiting: those of a higher priority, or of the same priority who
        joined earlier, are ahead. Works after the caller left Queue().
        ``facts``: the call's facts (its join time ``offered:<queue>``, its
        ``priority``). Join times are Asterisk's (real time), so "now" is this
        tracker's clock, the same real time its waits are measured on."""
        try:
            joined = float(facts.get(f"offered:{queue}", "") or "nan")
            priority = int(facts.get("priority") or 0)
        except ValueError:
            return None
        if joined != joined:  # never joined: no place to keep
            return None
        now = self._clock()
        ahead = 0
        for w in await self.waiting(queue, now=now):
            if w.uid == uid:
                continue
            if w.priority > priority or (w.priority == priority and now - w.waited_s <= joined):
                ahead += 1
        return ahead + 1

    async def measured_waits(self, queue: str) -> list[float]:
        """Recent waits of answered callers (AgentConnect HoldTime), newest first."""
        return await self._store.samples("holdtime", queue)
