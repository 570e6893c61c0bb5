"""Callbacks: citizens who asked to be called back, kept and placed.

Three kinds (``reason``): ``closed`` (asked outside opening hours),
``queue`` (pressed the callback key while waiting: virtual hold) and
``overflow`` (accepted the offer when the queue's limit was reached).

The Redis model (docs/distribution.md, "Queued callback")
-------------------------------------------------------
* ``<prefix>callback:<id>``: a hash per callback, ``id`` from
  ``INCR <prefix>callbacks:seq``. Fields: id, number, hotline, program, queue,
  reason, priority, position, call_uid, request_type, governorate, joined_at,
  state, attempts, placement, outcome, last_status, created_at, next_at,
  claimed_at. The number is stored because it is needed to dial; it never
  reaches a log unmasked. A finished callback's hash expires after
  ``keep_done_seconds`` (a week by default): personal data is not kept for ever.
* ``<prefix>callbacks:due``: sorted set of the ``waiting`` callbacks, score =
  when to place them (Unix time).
* ``<prefix>callbacks:active``: set of the callbacks not yet ended (its size
  is ``ivr_callbacks_pending``; ``recover`` walks it after a restart).
* ``<prefix>callbacks``: the audit stream. A request is logged with the
  number (the record of what the citizen asked for); every later step
  (placed, deferred, retry, outcome) without it.

States, and the only ways between them::

    waiting --claim--> placing --QueueCallerJoin--> queued --AgentConnect--> dialling
       ^                  |  Originate error           |  placeholder left           |  dial result
       |                  v  (same placement)          v  the queue                  v
       +------------------+----------------------------+-----------------------  done (outcome)
                    retry or re-place (next placement)

Every transition is one atomic compare-and-set (a Lua script on Redis): it
applies only if the callback is still in one of the expected states and, for
events about a placement, still on that placement. Several engine workers
may claim due callbacks and all receive the same AMI events: each claim and
each outcome takes effect, and is counted, exactly once.

*Placement* vs *attempt*: a placement is one Originate of the placeholder
(channel ids ``cbd<id>a<placement>`` / ``cbq<id>a<placement>``); an attempt
is one call to the citizen. A placeholder that leaves the queue unanswered
(queue timeout, Originate failure) is placed again without using an attempt;
``distribution.callbacks.attempts`` counts calls to the citizen only. The
first placement carries the caller's priority and queue position; later
ones the ``callback`` priority rule's (at least the caller's own).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, time as dtime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.arabic.clock import DAYS
from core.citizens.phone_numbers import normalize_egyptian_number
from core.configuration import Config
from core.configuration.model import Schedule
from core.hours import is_open
from core.privacy import mask_number

if TYPE_CHECKING:
    from metrics.registry import EngineMetrics
    from queues.calls.store import CallStateStore

log = logging.getLogger(__name__)

REASONS = ("closed", "queue", "overflow")
STATES = ("waiting", "placing", "queued", "dialling", "done")
LIVE_STATES = ("placing", "queued", "dialling")

# Dial statuses (DIALSTATUS, or INVALIDNUMBER from the dialplan) -> outcome.
# CANCEL: the agent hung up while the citizen's phone rang; the citizen was
# not reached, so it is a failed attempt like no answer.
DIAL_OUTCOMES = {
    "ANSWER": "connected",
    "NOANSWER": "no_answer",
    "CANCEL": "no_answer",
    "BUSY": "busy",
    "CHANUNAVAIL": "failed",
    "CONGESTION": "failed",
    "INVALIDNUMBER": "invalid_number",
}
# Outcomes that end a callback at once; the others are retried up to `attempts`.
FINAL_OUTCOMES = ("connected", "invalid_number", "cancelled")

# How long the placeholder may wait in Queue() ([ivr-callback-hold]).
PLACEHOLDER_QUEUE_TIMEOUT = 7200
# The Originate waits this long beyond the queue's max wait for an agent.
ORIGINATE_MARGIN_SECONDS = 600
# A placeholder that left the queue unanswered is placed again this soon.
REPLACE_AFTER_SECONDS = 5
# After an AMI error (no answer, link down, Response: Error) the Originate
# is tried again this much later; the callback is never dropped.
ORIGINATE_RETRY_SECONDS = 30
# A closed line whose schedule has no opening in the next two weeks: look again in an hour.
NO_OPENING_RETRY_SECONDS = 3600

_CHANNEL_ID = re.compile(r"^cb([dq])(\d+)a(\d+)$")
_ACTION_ID = re.compile(r"^ivr-callback-(\d+)-(\d+)$")


def dial_channel_id(callback_id: str, placement: int) -> str:
    """``;1`` side of the placeholder: runs [ivr-callback-dial] once an agent answers."""
    return f"cbd{callback_id}a{placement}"


def hold_channel_id(callback_id: str, placement: int) -> str:
    """``;2`` side of the placeholder: waits in Queue() in the caller's place."""
    return f"cbq{callback_id}a{placement}"


def _s(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return "" if value is None else str(value)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(float(_s(value)))
    except ValueError:
        return default


def _float(value: Any) -> float | None:
    try:
        return float(_s(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class Callback:
    """One callback as stored. ``number`` must never reach a log unmasked."""

    id: str
    number: str = field(repr=False)
    hotline: str
    reason: str
    program: str = ""
    queue: str = ""
    priority: int = 0
    position: int = 0
    call_uid: str = ""
    request_type: str = ""
    governorate: str = ""
    joined_at: float | None = None
    state: str = "waiting"
    attempts: int = 0
    placement: int = 1
    outcome: str = ""
    last_status: str = ""
    created_at: float = 0.0
    next_at: float | None = None
    claimed_at: float | None = None

    @classmethod
    def from_fields(cls, raw: Mapping[Any, Any]) -> "Callback":
        f = {_s(k): _s(v) for k, v in raw.items()}
        return cls(
            id=f.get("id", ""), number=f.get("number", ""), hotline=f.get("hotline", ""),
            reason=f.get("reason", ""), program=f.get("program", ""), queue=f.get("queue", ""),
            priority=_int(f.get("priority")), position=_int(f.get("position")), call_uid=f.get("call_uid", ""),
            request_type=f.get("request_type", ""), governorate=f.get("governorate", ""),
            joined_at=_float(f.get("joined_at", "")), state=f.get("state", "waiting"),
            attempts=_int(f.get("attempts")), placement=_int(f.get("placement"), 1) or 1,
            outcome=f.get("outcome", ""), last_status=f.get("last_status", ""),
            created_at=_float(f.get("created_at", "")) or 0.0, next_at=_float(f.get("next_at", "")),
            claimed_at=_float(f.get("claimed_at", "")),
        )

    def to_fields(self) -> dict[str, str]:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = "" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
        return out

    @property
    def masked_number(self) -> str:
        return mask_number(self.number)


def queue_of(cb: Callback, config: Config) -> str | None:
    """The queue a callback is placed in: its own, else (after-hours callbacks
    have no programme) its hotline's fallback queue; None if neither is configured."""
    if cb.queue and config.queue(cb.queue) is not None:
        return cb.queue
    hotline = config.hotline(cb.hotline)
    return hotline.fallback_queue if hotline is not None else None


class CallbackStore(Protocol):
    """Where callbacks live. ``request`` is all the IVR routes need."""

    async def request(self, *, hotline: str, number: str, reason: str, call_uid: str, program: str = "",
                      queue: str = "", priority: int = 0, position: int = 0, request_type: str = "",
                      governorate: str = "", joined_at: float | None = None, now: float | None = None,
                      due_at: float | None = None) -> str:
        """Register a callback, due at ``due_at`` (default: now); return its id."""

    async def get(self, callback_id: str) -> Callback | None: ...

    async def claim_due(self, now: float, limit: int) -> list[Callback]:
        """Atomically take up to ``limit`` due ``waiting`` callbacks and mark them ``placing``."""

    async def transition(self, callback_id: str, *, from_states: Iterable[str], state: str,
                         placement: int | None = None, due_at: float | None = None,
                         changes: Mapping[str, Any] | None = None, event: str = "") -> bool:
        """Compare-and-set: apply only if the state is one of ``from_states`` (and the
        placement is ``placement`` when given). ``due_at`` schedules it; otherwise it
        leaves the due set. ``state="done"`` ends it. ``event`` goes to the audit log."""

    async def active_ids(self) -> list[str]: ...

    async def pending_count(self) -> int: ...

    async def defer_count(self, callback_id: str) -> None:
        """Leave an ended callback to be counted by a running engine (an outcome
        reached outside it, e.g. ``ivr callbacks cancel``)."""

    async def take_uncounted(self, limit: int) -> list[str]:
        """Atomically take up to ``limit`` callbacks left to be counted."""


def _request_fields(callback_id: str, *, hotline: str, number: str, reason: str, call_uid: str, program: str,
                    queue: str, priority: int, position: int, request_type: str, governorate: str,
                    joined_at: float | None, now: float, due_at: float) -> Callback:
    # A caller ID that is not a callable number (withheld, foreign) is kept
    # as given: the dispatcher ends it as invalid_number without dialling.
    stored = normalize_egyptian_number(number) or number
    return Callback(id=callback_id, number=stored, hotline=hotline, reason=reason, program=program, queue=queue,
                    priority=priority, position=position, call_uid=call_uid, request_type=request_type,
                    governorate=governorate, joined_at=joined_at, state="waiting", created_at=now, next_at=due_at)


def _audit_request(cb: Callback) -> dict[str, str]:
    return {"event": "requested", "id": cb.id, "hotline": cb.hotline, "number": cb.number, "reason": cb.reason,
            "call_uid": cb.call_uid, "program": cb.program, "queue": cb.queue, "requested_at": f"{cb.created_at:.3f}"}


class MemoryCallbackStore:
    """Same semantics as the Redis store, in one process (unit tests, no Redis)."""

    def __init__(self) -> None:
        self.callbacks: dict[str, dict[str, str]] = {}
        self.due: dict[str, float] = {}
        self.audit: list[dict[str, str]] = []
        self.uncounted: list[str] = []
        self._seq = 0

    @property
    def requests(self) -> list[dict[str, str]]:
        """The audit entries of the requests, in order (what was asked, with the number)."""
        return [e for e in self.audit if e.get("event") == "requested"]

    async def request(self, *, hotline: str, number: str, reason: str, call_uid: str, program: str = "",
                      queue: str = "", priority: int = 0, position: int = 0, request_type: str = "",
                      governorate: str = "", joined_at: float | None = None, now: float | None = None,
                      due_at: float | None = None) -> str:
        self._seq += 1
        now = time.time() if now is None else now
        cb = _request_fields(str(self._seq), hotline=hotline, number=number, reason=reason, call_uid=call_uid,
                             program=program, queue=queue, priority=priority, position=position,
                             request_type=request_type, governorate=governorate, joined_at=joined_at, now=now,
                             due_at=now if due_at is None else due_at)
        self.callbacks[cb.id] = cb.to_fields()
        self.due[cb.id] = cb.next_at
        self.audit.append(_audit_request(cb))
        return cb.id

    async def get(self, callback_id: str) -> Callback | None:
        raw = self.callbacks.get(str(callback_id))
        return Callback.from_fields(raw) if raw is not None else None

    async def claim_due(self, now: float, limit: int) -> list[Callback]:
        claimed = []
        for callback_id, score in sorted(self.due.items(), key=lambda kv: (kv[1], int(kv[0]))):
            if score > now or len(claimed) >= limit:
                break
            del self.due[callback_id]
            raw = self.callbacks.get(callback_id)
            if raw is None or raw["state"] != "waiting":
                continue
            raw.update(state="placing", claimed_at=f"{now:.3f}")
            claimed.append(Callback.from_fields(raw))
        return claimed

    async def transition(self, callback_id: str, *, from_states: Iterable[str], state: str,
                         placement: int | None = None, due_at: float | None = None,
                         changes: Mapping[str, Any] | None = None, event: str = "") -> bool:
        raw = self.callbacks.get(str(callback_id))
        if raw is None or raw["state"] not in tuple(from_states):
            return False
        if placement is not None and raw.get("placement") != str(placement):
            return False
        raw["state"] = state
        raw.update({k: _s(v) for k, v in (changes or {}).items()})
        if due_at is not None:
            self.due[raw["id"]] = due_at
            raw["next_at"] = f"{due_at:.3f}"
        else:
            self.due.pop(raw["id"], None)
        if event:
            self.audit.append({"event": event, "id": raw["id"], "state": state, "outcome": raw.get("outcome", ""),
                               "placement": raw.get("placement", ""), "attempts": raw.get("attempts", "")})
        return True

    async def active_ids(self) -> list[str]:
        return [i for i, raw in self.callbacks.items() if raw["state"] != "done"]

    async def pending_count(self) -> int:
        return len(await self.active_ids())

    async def defer_count(self, callback_id: str) -> None:
        self.uncounted.append(str(callback_id))

    async def take_uncounted(self, limit: int) -> list[str]:
        taken, self.uncounted[:limit] = self.uncounted[:limit], []
        return taken


# Claim: take due ids and mark them placing, in one step, so that two workers
# never place the same callback. KEYS: due set. ARGV: now, limit, hash key prefix.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[3] .. id
  if redis.call('HGET', key, 'state') == 'waiting' then
    redis.call('HSET', key, 'state', 'placing', 'claimed_at', ARGV[1])
    table.insert(out, id)
  end
end
return out
"""

# Compare-and-set transition. KEYS: hash, due set, active set.
# ARGV: id, allowed states (comma-separated), placement ('' = any), new state,
# due score ('' = leave the due set), seconds to keep a done hash, field/value pairs...
_TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == state then allowed = true end
end
if not allowed then return 0 end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'placement') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[4])
for i = 7, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
  redis.call('HSET', KEYS[1], 'next_at', ARGV[5])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
if ARGV[4] == 'done' then
  redis.call('SREM', KEYS[3], ARGV[1])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
end
return 1
"""


class RedisCallbackStore:
    """Callbacks in Redis, shared by every engine worker and kept across restarts.

    The Lua scripts touch the callback hashes by name (not all in KEYS): fine on
    a single Redis server, which is what the engine runs; not Redis Cluster.
    """

    def __init__(self, client: aioredis.Redis, *, prefix: str = "ivr:", keep_done_seconds: int = 7 * 86400,
                 stream_maxlen: int = 100_000):
        self._redis = client
        self.prefix = prefix
        self.key = f"{prefix}callbacks"  # the audit stream (the name it always had)
        self.seq_key = f"{prefix}callbacks:seq"
        self.due_key = f"{prefix}callbacks:due"
        self.active_key = f"{prefix}callbacks:active"
        self.uncounted_key = f"{prefix}callbacks:uncounted"  # ended outside the engine, to be counted
        self._keep_done = keep_done_seconds
        self._stream_maxlen = stream_maxlen
        self._claim = client.register_script(_CLAIM)
        self._transition = client.register_script(_TRANSITION)

    def hash_key(self, callback_id: str) -> str:
        return f"{self.prefix}callback:{callback_id}"

    async def request(self, *, hotline: str, number: str, reason: str, call_uid: str, program: str = "",
                      queue: str = "", priority: int = 0, position: int = 0, request_type: str = "",
                      governorate: str = "", joined_at: float | None = None, now: float | None = None,
                      due_at: float | None = None) -> str:
        callback_id = str(await self._redis.incr(self.seq_key))
        now = time.time() if now is None else now
        cb = _request_fields(callback_id, hotline=hotline, number=number, reason=reason, call_uid=call_uid,
                             program=program, queue=queue, priority=priority, position=position,
                             request_type=request_type, governorate=governorate, joined_at=joined_at, now=now,
                             due_at=now if due_at is None else due_at)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.hash_key(callback_id), mapping=cb.to_fields())
            pipe.sadd(self.active_key, callback_id)
            pipe.zadd(self.due_key, {callback_id: cb.next_at})
            pipe.xadd(self.key, _audit_request(cb), maxlen=self._stream_maxlen, approximate=True)
            await pipe.execute()
        return callback_id

    async def get(self, callback_id: str) -> Callback | None:
        raw = await self._redis.hgetall(self.hash_key(callback_id))
        return Callback.from_fields(raw) if raw else None

    async def claim_due(self, now: float, limit: int) -> list[Callback]:
        ids = await self._claim(keys=[self.due_key], args=[f"{now:.3f}", limit, f"{self.prefix}callback:"])
        claimed = []
        for callback_id in ids:
            cb = await self.get(_s(callback_id))
            if cb is not None:
                claimed.append(cb)
        return claimed

    async def transition(self, callback_id: str, *, from_states: Iterable[str], state: str,
                         placement: int | None = None, due_at: float | None = None,
                         changes: Mapping[str, Any] | None = None, event: str = "") -> bool:
        pairs: list[str] = []
        for k, v in (changes or {}).items():
            pairs += [k, _s(v)]
        done = await self._transition(
            keys=[self.hash_key(callback_id), self.due_key, self.active_key],
            args=[callback_id, ",".join(from_states), "" if placement is None else str(placement), state,
                  "" if due_at is None else f"{due_at:.3f}", self._keep_done, *pairs])
        if done and event:
            cb = await self.get(callback_id)
            entry = {"event": event, "id": str(callback_id), "state": state}
            if cb is not None:
                entry.update(outcome=cb.outcome, placement=str(cb.placement), attempts=str(cb.attempts))
            await self._redis.xadd(self.key, entry, maxlen=self._stream_maxlen, approximate=True)
        return bool(done)

    async def active_ids(self) -> list[str]:
        return sorted((_s(i) for i in await self._redis.smembers(self.active_key)), key=int)

    async def pending_count(self) -> int:
        return int(await self._redis.scard(self.active_key))

    async def defer_count(self, callback_id: str) -> None:
        await self._redis.rpush(self.uncounted_key, str(callback_id))

    async def take_uncounted(self, limit: int) -> list[str]:
        # LPOP with a count: each id goes to exactly one engine worker.
        return [_s(i) for i in (await self._redis.lpop(self.uncounted_key, limit) or [])]


def next_opening(schedule: Schedule, after: datetime) -> datetime | None:
    """The first opening time strictly after ``after`` within two weeks, or None."""
    tz = ZoneInfo(schedule.timezone)
    local = after.astimezone(tz)
    for offset in range(15):
        day = local.date() + timedelta(days=offset)
        if day in schedule.holidays:
            continue
        starts = []
        for r in schedule.open.get(DAYS[day.weekday()], ()):
            hour, minute = (int(x) for x in r.split("-")[0].split(":"))
            start = datetime.combine(day, dtime(hour, minute), tzinfo=tz)
            if start > after:
                starts.append(start)
        if starts:
            return min(starts)
    return None


class AmiActions(Protocol):
    async def action(self, fields: dict[str, Any], *, as_list: bool | None = None,
                     timeout: float | None = None) -> Any: ...


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class CallbackDispatcher:
    """Places due callbacks as placeholders in their queue and follows them to an outcome.

    ``tick`` runs periodically (``run`` does it every second); ``handle``
    receives every AMI event; ``recover`` runs after each AMI login with the
    Uniqueids of the channels alive in Asterisk.
    """

    def __init__(self, *, config: Config, metrics: "EngineMetrics", store: CallbackStore, ami: AmiActions,
                 clock: Callable[[], datetime] = _utcnow, call_state: "CallStateStore | None" = None,
                 batch: int = 50, placing_grace_seconds: float = 30.0):
        """``ami``: anything with AmiConnection's ``action`` (and, optionally, its
        ``logged_in`` event: nothing is claimed while AMI is down). ``call_state``:
        when given, each placeholder's Uniqueid gets the facts of the call it
        stands for (hotline, program, request_type, governorate), so that queue
        accounting labels it like the original call. ``placing_grace_seconds``:
        ``recover`` leaves younger ``placing`` callbacks alone (another worker
        may be sending their Originate)."""
        self._config = config
        self._metrics = metrics
        self._store = store
        self._ami = ami
        self._clock = clock
        self._call_state = call_state
        self._batch = batch
        self._placing_grace = placing_grace_seconds
        policy = config.distribution.callbacks
        self._attempts = policy.attempts
        self._retry_after = policy.retry_after_seconds
        self._ring = policy.ring_seconds
        rules = [r.priority for r in config.distribution.priorities if r.callback]
        self.callback_priority = max(rules) if rules else 0

    # --- placing -------------------------------------------------------------
    async def run(self, interval: float = 1.0) -> None:
        """Tick for ever (the engine runs this as a task)."""
        while True:
            try:
                await self.tick(self._clock())
            except RedisError as exc:
                log.error("callbacks: Redis unavailable (%s); next tick in %.0fs", exc, interval)
            except Exception:
                log.exception("callbacks: tick failed")
            await asyncio.sleep(interval)

    async def tick(self, now: datetime | None = None) -> list[str]:
        """Claim the due callbacks and place each; return the ids placed."""
        now = now or self._clock()
        await self._count_deferred()
        logged_in = getattr(self._ami, "logged_in", None)
        if logged_in is not None and not logged_in.is_set():
            await self._update_pending()
            return []  # leave them due: nothing can be placed without AMI
        placed = []
        for cb in await self._store.claim_due(now.timestamp(), self._batch):
            if await self._place(cb, now):
                placed.append(cb.id)
        await self._update_pending()
        return placed

    async def _count_deferred(self) -> None:
        """Count the outcomes reached outside the engine (``ivr callbacks cancel``)."""
        for callback_id in await self._store.take_uncounted(self._batch):
            cb = await self._store.get(callback_id)
            if cb is not None and cb.outcome:
                self._count(cb, cb.outcome)

    async def _place(self, cb: Callback, now: datetime) -> bool:
        hotline = self._config.hotline(cb.hotline)
        schedule = self._config.schedules.get(hotline.schedule) if hotline and hotline.schedule else None
        if schedule is not None and not is_open(schedule, now):
            opening = next_opening(schedule, now)
            at = opening.timestamp() if opening else now.timestamp() + NO_OPENING_RETRY_SECONDS
            await self._store.transition(cb.id, from_states=("placing",), state="waiting", due_at=at,
                                         event="deferred")
            log.info("callback %s: hotline %s closed; due again at %s", cb.id, cb.hotline,
                     datetime.fromtimestamp(at, timezone.utc).isoformat())
            return False
        queue = self._queue_of(cb)
        number = normalize_egyptian_number(cb.number)
        if queue is None or number is None:
            outcome = "invalid_number" if number is None else "failed"
            await self._finish(cb, outcome, status="" if number is None else "NOQUEUE", from_states=("placing",))
            return False
        fields = self.originate_fields(cb, queue, number)
        if self._call_state is not None:
            await self._remember_placeholder(cb, queue)
        try:
            reply = await self._ami.action(fields, as_list=False)
            ok = _s(_get(reply, "Response")).lower() == "success"
            why = _s(_get(reply, "Message")) or "refused"
        except Exception as exc:  # AmiTimeout, ConnectionError (not logged in), a lost link...
            ok, why = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            # The Originate may or may not have reached Asterisk: keep the same
            # placement, so that events of a placeholder that did start still
            # match (QueueCallerJoin then moves it to queued).
            await self._store.transition(cb.id, from_states=("placing",), placement=cb.placement, state="waiting",
                                         due_at=now.timestamp() + ORIGINATE_RETRY_SECONDS,
                                         changes={"last_status": "ORIGINATE_ERROR"}, event="originate_error")
            log.warning("callback %s: Originate failed (%s); trying again in %ds", cb.id, why,
                        ORIGINATE_RETRY_SECONDS)
            return False
        log.info("callback %s (%s) for %s placed in %s, placement %d, attempt %d", cb.id, cb.reason,
                 cb.masked_number, queue, cb.placement, cb.attempts + 1)
        return True

    def _queue_of(self, cb: Callback) -> str | None:
        queue = queue_of(cb, self._config)
        if queue is None:
            log.error("callback %s: neither queue %r nor hotline %r is configured", cb.id, cb.queue, cb.hotline)
        return queue

    def originate_fields(self, cb: Callback, queue_id: str, number: str) -> dict[str, Any]:
        """The AMI Originate of the placeholder (docs/distribution.md)."""
        queue = self._config.queue(queue_id)
        first = cb.placement == 1
        if cb.reason == "closed":
            priority = self.callback_priority
        elif first:
            priority = cb.priority
        else:
            priority = max(cb.priority, self.callback_priority)
        variables = [f"IVR_CB_QUEUE={queue_id}", f"IVR_CB_NUMBER={number}", f"IVR_CB_RING={self._ring}",
                     f"IVR_CB_TIMEOUT={PLACEHOLDER_QUEUE_TIMEOUT}"]
        if first and cb.reason != "closed" and cb.position > 0:
            variables.append(f"IVR_CB_POSITION={cb.position}")
        variables += [f"IVR_PRIORITY={priority}", f"IVR_PROGRAM={cb.program}",
                      f"IVR_REQUEST_TYPE={cb.request_type or 'none'}", f"IVR_HOTLINE={cb.hotline}"]
        return {
            "Action": "Originate",
            "ActionID": f"ivr-callback-{cb.id}-{cb.placement}",
            # /n: no Local channel optimisation, so the ;2 placeholder keeps its
            # Uniqueid (cbq...) for its whole life in the queue.
            "Channel": f"Local/{cb.id}@ivr-callback-hold/n",
            "Context": "ivr-callback-dial",
            "Exten": cb.id,
            "Priority": "1",
            "ChannelId": dial_channel_id(cb.id, cb.placement),
            "OtherChannelId": hold_channel_id(cb.id, cb.placement),
            # Async: the Response only says "queued"; the outcome comes as
            # OriginateResponse once an agent answers or the wait times out.
            "Async": "true",
            "Timeout": str((queue.max_wait_seconds + ORIGINATE_MARGIN_SECONDS) * 1000),
            "Variable": variables,
        }

    async def _remember_placeholder(self, cb: Callback, queue: str) -> None:
        # Queue accounting labels a call with the facts of its Uniqueid: give the
        # placeholder the facts of the call it stands for.
        uid = hold_channel_id(cb.id, cb.placement)
        for fact, value in (("hotline", cb.hotline), ("program", cb.program),
                            ("request_type", cb.request_type or "none"), ("governorate", cb.governorate or "unknown"),
                            ("callback_id", cb.id), ("call_uid", cb.call_uid)):
            await self._call_state.set_fact(uid, fact, value)

    # --- events ----------------------------------------------------------------
    async def handle(self, event: Mapping[str, str]) -> str:
        """One AMI event; returns what was done (for logs and tests)."""
        name = event.get("Event", "")
        if name == "UserEvent":
            kind = event.get("UserEvent", "")
            if kind == "IvrCallbackResult":
                return await self._on_result(event)
            if kind == "IvrCallbackAnswered":
                return await self._on_answered(event)
            return "ignored"
        if name in ("QueueCallerJoin", "AgentConnect"):
            ref = _channel_ref(event.get("Uniqueid", ""))
            if ref is None or ref[0] != "q":
                return "ignored"
            _, callback_id, placement = ref
            if name == "QueueCallerJoin":
                ok = await self._store.transition(callback_id, from_states=("waiting", "placing"), state="queued",
                                                  placement=placement, event="queued")
                return "queued" if ok else "stale"
            ok = await self._store.transition(callback_id, from_states=("waiting", "placing", "queued"),
                                              state="dialling", placement=placement, event="agent")
            if ok:
                log.info("callback %s: agent %s answered the placeholder; dialling the citizen", callback_id,
                         event.get("MemberName") or event.get("Interface", "?"))
            return "dialling" if ok else "stale"
        if name == "OriginateResponse":
            return await self._on_originate_response(event)
        return "ignored"

    def _event_ref(self, event: Mapping[str, str], callback_id: str | None = None) -> tuple[str, int | None] | None:
        """(callback id, placement or None) of an event, from CallbackId and the channel ids."""
        for key in ("Uniqueid", "Linkedid"):
            ref = _channel_ref(event.get(key, ""))
            if ref is not None and (callback_id is None or ref[1] == callback_id):
                return ref[1], ref[2]
        if callback_id:
            return callback_id, None
        return None

    async def _on_result(self, event: Mapping[str, str]) -> str:
        ref = self._event_ref(event, event.get("CallbackId") or None)
        if ref is None:
            return "ignored"
        callback_id, placement = ref
        stage = event.get("Stage", "").lower()
        status = event.get("Status", "").upper()
        if stage == "queue":
            return await self._placeholder_left(callback_id, placement, status or "UNKNOWN")
        if stage == "dial":
            return await self._dial_result(callback_id, placement, status)
        log.warning("callback %s: IvrCallbackResult with unknown stage %r", callback_id, stage)
        return "ignored"

    async def _on_answered(self, event: Mapping[str, str]) -> str:
        ref = self._event_ref(event, event.get("CallbackId") or None)
        if ref is None:
            return "ignored"
        return await self._dial_result(ref[0], ref[1], "ANSWER")

    async def _on_originate_response(self, event: Mapping[str, str]) -> str:
        ref = _channel_ref(event.get("Uniqueid", ""))
        if ref is not None:
            callback_id, placement = ref[1], ref[2]
        else:
            m = _ACTION_ID.match(event.get("ActionID", ""))
            if m is None:
                return "ignored"
            callback_id, placement = m.group(1), int(m.group(2))
        if event.get("Response", "").lower() == "success":
            # The ;1 side was answered: an agent took the placeholder.
            ok = await self._store.transition(callback_id, from_states=("waiting", "placing", "queued"),
                                              state="dialling", placement=placement, event="agent")
            return "dialling" if ok else "stale"
        return await self._placeholder_left(callback_id, placement, f"ORIGINATE_{event.get('Reason', 'FAILURE')}",
                                            delay=ORIGINATE_RETRY_SECONDS)

    async def _placeholder_left(self, callback_id: str, placement: int | None, status: str,
                                delay: int = REPLACE_AFTER_SECONDS) -> str:
        """The placeholder left (or never reached) the queue without an agent: place it again."""
        cb = await self._store.get(callback_id)
        if cb is None or (placement is not None and placement != cb.placement):
            return "stale"
        ok = await self._store.transition(
            callback_id, from_states=("placing", "queued"), placement=cb.placement, state="waiting",
            due_at=self._clock().timestamp() + delay,
            changes={"placement": cb.placement + 1, "last_status": status}, event="replace")
        if ok:
            log.info("callback %s: placeholder left %s unanswered (%s); placing it again in %ds", callback_id,
                     cb.queue or "the queue", status, delay)
        return "replace" if ok else "stale"

    async def _dial_result(self, callback_id: str, placement: int | None, status: str) -> str:
        cb = await self._store.get(callback_id)
        if cb is None or (placement is not None and placement != cb.placement):
            return "stale"
        # Known placement: the placeholder may be alive although we saw it as
        # waiting (its Originate looked failed). Unknown: only a live one.
        from_states = ("waiting",) + LIVE_STATES if placement is not None else LIVE_STATES
        outcome = DIAL_OUTCOMES.get(status, "failed")
        # An attempt is a call to the citizen: an invalid number was never dialled.
        attempts = cb.attempts if outcome == "invalid_number" else cb.attempts + 1
        if outcome in FINAL_OUTCOMES:
            done = await self._finish(cb, outcome, status=status, from_states=from_states,
                                      changes={"attempts": attempts})
            return outcome if done else "stale"
        if attempts >= self._attempts:
            done = await self._finish(cb, outcome, status=status, from_states=from_states,
                                      changes={"attempts": attempts})
            return outcome if done else "stale"
        retry_at = self._clock().timestamp() + self._retry_after
        ok = await self._store.transition(
            callback_id, from_states=from_states, placement=cb.placement, state="waiting", due_at=retry_at,
            changes={"attempts": attempts, "placement": cb.placement + 1, "last_status": status}, event="retry")
        if ok:
            log.info("callback %s to %s: %s (attempt %d of %d); trying again in %ds", callback_id, cb.masked_number,
                     status or "?", attempts, self._attempts, self._retry_after)
            await self._update_pending()
        return "retry" if ok else "stale"

    async def _finish(self, cb: Callback, outcome: str, *, status: str, from_states: Iterable[str],
                      changes: Mapping[str, Any] | None = None) -> bool:
        attempts = (changes or {}).get("attempts", cb.attempts)
        ok = await self._store.transition(
            cb.id, from_states=from_states, placement=cb.placement, state="done",
            changes={**(changes or {}), "outcome": outcome, "last_status": status}, event=outcome)
        if ok:
            self._count(cb, outcome)
            log.info("callback %s (%s, hotline %s) to %s ended: %s (%s) after %s attempt(s)", cb.id, cb.reason,
                     cb.hotline, cb.masked_number, outcome, status or "-", attempts)
            await self._update_pending()
        return ok

    def _count(self, cb: Callback, outcome: str) -> None:
        self._metrics.callbacks.labels(program=self._queue_of(cb) or cb.queue or "unknown", outcome=outcome).inc()

    async def _update_pending(self) -> None:
        self._metrics.callbacks_pending.set(await self._store.pending_count())

    # --- operations --------------------------------------------------------------
    async def cancel(self, callback_id: str, *, count_here: bool = True) -> bool:
        """End a callback as ``cancelled``. A placeholder waiting in a queue is hung up.

        ``count_here=False`` (``ivr callbacks cancel``, a process of its own):
        the running engine counts it in ``ivr_callbacks_total`` on its next tick."""
        cb = await self._store.get(str(callback_id))
        if cb is None or cb.state == "done":
            return False
        ok = await self._store.transition(cb.id, from_states=("waiting", "placing", "queued", "dialling"),
                                          state="done", changes={"outcome": "cancelled", "last_status": "CANCELLED"},
                                          event="cancelled")
        if not ok:
            return False
        if count_here:
            self._count(cb, "cancelled")
        else:
            await self._store.defer_count(cb.id)
        log.info("callback %s to %s cancelled (was %s)", cb.id, cb.masked_number, cb.state)
        if cb.state in ("placing", "queued"):
            try:
                # Both halves of the Local placeholder: Local/<id>@ivr-callback-hold-XXXX;1/;2.
                await self._ami.action({"Action": "Hangup", "Channel": f"/^Local/{cb.id}@ivr-callback-hold-/"})
            except Exception as exc:
                log.warning("callback %s: could not hang up its placeholder (%s)", cb.id, exc)
        await self._update_pending()
        return True

    async def recover(self, active_channel_ids: set[str]) -> list[str]:
        """After a restart or an AMI reconnect: re-place callbacks whose placeholder is gone.

        ``active_channel_ids``: the Uniqueids of the channels alive in Asterisk
        (AMI CoreShowChannels). Returns the ids made due again.
        """
        now = self._clock().timestamp()
        made_due = []
        for callback_id in await self._store.active_ids():
            cb = await self._store.get(callback_id)
            if cb is None:
                continue
            alive = {hold_channel_id(cb.id, cb.placement), dial_channel_id(cb.id, cb.placement)} & active_channel_ids
            if cb.state == "waiting":
                if alive:
                    # Its Originate looked failed, but the placeholder is there.
                    await self._store.transition(cb.id, from_states=("waiting",), placement=cb.placement,
                                                 state="queued", event="recovered")
                continue
            if cb.state not in LIVE_STATES or alive:
                continue
            if cb.state == "placing" and cb.claimed_at is not None and now - cb.claimed_at < self._placing_grace:
                continue  # another worker may be sending its Originate right now
            ok = await self._store.transition(
                cb.id, from_states=(cb.state,), placement=cb.placement, state="waiting", due_at=now,
                changes={"placement": cb.placement + 1, "last_status": f"LOST_{cb.state.upper()}"},
                event="recovered")
            if ok:
                made_due.append(cb.id)
                log.warning("callback %s: %s but its placeholder is gone; placing it again", cb.id, cb.state)
        await self._update_pending()
        return made_due


def _channel_ref(uniqueid: str) -> tuple[str, str, int] | None:
    """``cbq17a2`` -> ("q", "17", 2); anything else -> None."""
    m = _CHANNEL_ID.match(uniqueid or "")
    if m is None:
        return None
    return m.group(1), m.group(2), int(m.group(3))


def _get(reply: Any, key: str) -> Any:
    if reply is None:
        return ""
    if isinstance(reply, list):
        reply = reply[0] if reply else {}
    try:
        return reply.get(key, "")
    except AttributeError:
        return getattr(reply, key.lower(), "")
