"""Where callbacks live: in Redis (shared by every worker, kept across
restarts) or in memory (unit tests), with the same semantics.

The Redis model (docs/distribution.md, "Queued callback"):

* ``<prefix>callback:<id>``: a hash per callback, ``id`` from
  ``INCR <prefix>callbacks:seq``. Fields: id, number_sealed, hotline, program,
  queue, reason, priority, position, call_uid, request_type, governorate,
  joined_at, state, attempts, placement, outcome, last_status, created_at,
  next_at, claimed_at, counted_in. The number is kept because it is needed to
  dial, so it is kept encrypted (``number_sealed``: Fernet with the
  ``fernet:callbacks`` key ring, issue 12 item 16) and decrypted only when a
  callback is read (:meth:`RedisCallbackStore.from_stored`: the dispatcher
  dials it, ``ivr callbacks`` masks it); it never reaches a log unmasked. A
  hash stored before has ``number`` in clear, read as it is. A finished
  callback's hash expires after ``keep_done_seconds`` (a week by default):
  personal data is not kept for ever.
* ``<prefix>callbacks:due``: sorted set of the ``waiting`` callbacks, score =
  when to place them (Unix time).
* ``<prefix>callbacks:active``: set of the callbacks not yet ended (its size
  is ``ivr_callbacks_pending``; ``recover`` walks it after a restart).
* ``<prefix>callbacks:active:<queue>``: the same, for the callbacks to be
  placed in one queue (the hash's ``counted_in``: its queue, else its
  hotline's fallback queue); a callback that ends leaves both sets in the
  transition that ends it.
* ``<prefix>callbacks:number-day:<Cairo date>:<keyed hash>``: how many
  callbacks a number asked for that day, expiring an hour after the day
  (``queues.callbacks.limits``).
* ``<prefix>callbacks:request:<call_uid>``: the id of the callback that
  call asked for, kept ``keep_done_seconds``. A request is idempotent by
  ``call_uid``: asked again (its reply was lost, the service check retried),
  it returns the same callback, so a citizen is called back once. The
  call_uid is Asterisk's uniqueid or ``case-<reference>-<claim time>``,
  never a number.
* ``<prefix>callbacks``: the audit stream. A request is logged with the
  number masked (``*********67``: enough to recognise it with the citizen on
  the line, not to call it); every later step (placed, deferred, retry,
  outcome) without it. Trimmed by age (``audit_keep_seconds``, XTRIM MINID)
  and by count (``stream_maxlen``).

A request is one Lua script: the limits (``queues.callbacks.limits``) are
checked and the callback registered in one atomic step, so workers asking
at once never exceed a limit together; a refused request stores nothing.
Every transition (``queues.callbacks.machine``) is one atomic
compare-and-set: it applies only if the callback is still in one of the
expected states and, for events about a placement, still on that placement.
Several engine workers may claim due callbacks and all receive the same AMI
events: each claim and each outcome takes effect, and is counted, exactly once.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Mapping, Protocol

import redis.asyncio as aioredis
from cryptography.fernet import InvalidToken

from core.citizens.phone_numbers import normalize_egyptian_number
from core.configuration import Config
from core.privacy import NumberCipher, mask_number
from queues.priority import hash_caller

from .limits import NO_LIMITS, CallbackLimits, CallbackRefused
from .model import Callback, as_text

log = logging.getLogger(__name__)

class CallbackStore(Protocol):
    """Where callbacks live. ``request`` is all the IVR routes need."""

    async def request(self, *, hotline: str, number: str, reason: str, call_uid: str, program: str = "",
                      queue: str = "", priority: int = 0, position: int = 0, request_type: str = "",
                      governorate: str = "", joined_at: float | None = None, now: float | None = None,
                      due_at: float | None = None) -> str:
        """Register a callback, due at ``due_at`` (default: now); return its id.

        Idempotent by ``call_uid`` (when not empty): a second request of the
        same call returns the first one's id and registers nothing. Over one
        of the store's limits (``queues.callbacks.limits``): ``CallbackRefused``
        naming it, and nothing is registered."""

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

    async def pending_count(self, queue: str | None = None) -> int:
        """Callbacks not yet ended: all of them, or those counted in ``queue``
        (the queue they will be placed in, ``CallbackLimits.queue_counted``)."""

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


def _number_hash(number: str, limits: CallbackLimits) -> str | None:
    if not limits.max_per_number_per_day:
        return None
    try:
        return hash_caller(number, limits.number_key)
    except ValueError:   # no key: CallbackLimits.from_config refuses that, a hand-built one may not
        return None


def glob_escape(text: str) -> str:
    """A key prefix used literally in SCAN MATCH."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _flat(fields: Mapping[str, Any]) -> list[str]:
    """Field/value pairs as a script's arguments."""
    out: list[str] = []
    for k, v in fields.items():
        out += [k, as_text(v)]
    return out


class MemoryCallbackStore:
    """Same semantics as the Redis store, in one process (unit tests, no Redis).
    ``limits``: as the Redis store's (none by default)."""

    def __init__(self, *, limits: CallbackLimits = NO_LIMITS) -> None:
        self.callbacks: dict[str, dict[str, str]] = {}
        self.due: dict[str, float] = {}
        self.audit: list[dict[str, str]] = []
        self.uncounted: list[str] = []
        self.by_call: dict[str, str] = {}
        self.counted_in: dict[str, str] = {}          # callback id -> the queue it counts in
        self.number_days: dict[str, int] = {}         # per-number day counter -> callbacks registered
        self._limits = limits
        self._seq = 0

    @property
    def requests(self) -> list[dict[str, str]]:
        """The audit entries of the requests, in order (what was asked, with the number)."""
        return [e for e in self.audit if e.get("event") == "requested"]

    async def request(self, *, hotline: str, number: str, reason: str, call_uid: str, program: str = "",
                      queue: str = "", priority: int = 0, position: int = 0, request_type: str = "",
                      governorate: str = "", joined_at: float | None = None, now: float | None = None,
                      due_at: float | None = None) -> str:
        if call_uid and call_uid in self.by_call:
            return self.by_call[call_uid]
        now = time.time() if now is None else now
        limits = self._limits
        counted = limits.queue_counted(hotline=hotline, queue=queue)
        day = limits.number_day(_number_hash(number, limits), reason=reason, now=now)
        if limits.max_pending and self._pending() >= limits.max_pending:
            raise CallbackRefused("pending_all", limits.max_pending)
        if counted and limits.max_pending_per_queue and self._pending(counted) >= limits.max_pending_per_queue:
            raise CallbackRefused("pending_queue", limits.max_pending_per_queue)
        if day is not None and self.number_days.get(day[0], 0) >= limits.max_per_number_per_day:
            raise CallbackRefused("number_day", limits.max_per_number_per_day)
        self._seq += 1
        cb = _request_fields(str(self._seq), hotline=hotline, number=number, reason=reason, call_uid=call_uid,
                             program=program, queue=queue, priority=priority, position=position,
                             request_type=request_type, governorate=governorate, joined_at=joined_at, now=now,
                             due_at=now if due_at is None else due_at)
        self.callbacks[cb.id] = cb.to_fields()
        self.due[cb.id] = cb.next_at
        self.audit.append(_audit_request(cb))
        if call_uid:
            self.by_call[call_uid] = cb.id
        if counted:
            self.counted_in[cb.id] = counted
        if day is not None:
            self.number_days[day[0]] = self.number_days.get(day[0], 0) + 1
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
        raw.update({k: as_text(v) for k, v in (changes or {}).items()})
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

    async def pending_count(self, queue: str | None = None) -> int:
        return self._pending(queue)

    def _pending(self, queue: str | None = None) -> int:
        active = [i for i, raw in self.callbacks.items() if raw["state"] != "done"]
        if queue is None:
            return len(active)
        return sum(1 for i in active if self.counted_in.get(i) == queue)

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

# Register a callback, or refuse it, in one step: the limits are checked
# against the counts every worker shares, so two workers can never exceed one
# together (queues.callbacks.limits).
# KEYS: request marker, sequence, active set, the queue's active set, the
# number's day counter, due set, audit stream.
# ARGV: 1 hash key prefix, 2 marker in use ('1'/'0'), 3 seconds to keep the
# marker, 4 max pending in all, 5 max pending in the queue, 6 max for the
# number today (0 = no limit), 7 queue counted in ('' = none), 8 number counted
# ('1'/'0'), 9 seconds to keep the day counter, 10 due score, 11 audit stream
# max length, 12 oldest audit entry id to keep, 13 number of hash field/value
# pairs N, then the N pairs, then the audit entry's field/value pairs (the id
# is added here).
# Returns {'created'|'existing', id} or {'refused', limit name}.
_REQUEST = """
if ARGV[2] == '1' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return {'existing', existing} end
end
local max_all, max_queue, max_number = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if max_all > 0 and redis.call('SCARD', KEYS[3]) >= max_all then return {'refused', 'pending_all'} end
local queue_counted = ARGV[7] ~= ''
if queue_counted and max_queue > 0 and redis.call('SCARD', KEYS[4]) >= max_queue then
  return {'refused', 'pending_queue'}
end
local number_counted = ARGV[8] == '1'
if number_counted and max_number > 0 and tonumber(redis.call('GET', KEYS[5]) or '0') >= max_number then
  return {'refused', 'number_day'}
end
local id = tostring(redis.call('INCR', KEYS[2]))
local hash = ARGV[1] .. id
local pairs_end = 13 + 2 * tonumber(ARGV[13])
redis.call('HSET', hash, 'id', id)
for i = 14, pairs_end, 2 do
  redis.call('HSET', hash, ARGV[i], ARGV[i + 1])
end
redis.call('HSET', hash, 'counted_in', ARGV[7])
redis.call('SADD', KEYS[3], id)
if queue_counted then redis.call('SADD', KEYS[4], id) end
if number_counted then
  redis.call('INCR', KEYS[5])
  redis.call('EXPIRE', KEYS[5], tonumber(ARGV[9]))
end
redis.call('ZADD', KEYS[6], ARGV[10], id)
if ARGV[2] == '1' then redis.call('SET', KEYS[1], id, 'EX', tonumber(ARGV[3])) end
local entry = {'event', 'requested', 'id', id}
for i = pairs_end + 1, #ARGV do table.insert(entry, ARGV[i]) end
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[11], '*', unpack(entry))
redis.call('XTRIM', KEYS[7], 'MINID', '~', ARGV[12])
return {'created', id}
"""

# Compare-and-set transition. KEYS: hash, due set, active set.
# ARGV: id, allowed states (comma-separated), placement ('' = any), new state,
# due score ('' = leave the due set), seconds to keep a done hash, prefix of the
# queues' active sets, field/value pairs...
# A callback that ends leaves the active set and its queue's (``counted_in``;
# a callback stored before the limits has none).
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
for i = 8, #ARGV, 2 do
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
  local queue = redis.call('HGET', KEYS[1], 'counted_in')
  if queue and queue ~= '' then redis.call('SREM', ARGV[7] .. queue, ARGV[1]) end
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
end
return 1
"""


# Re-key one callback's number, if it is still what was read (a callback that
# ended and expired meanwhile is not brought back). KEYS: hash. ARGV: field read
# ('number_sealed', or 'number' for a callback stored in clear), its value, the
# new token. The clear field goes.
_RESEAL = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'number_sealed', ARGV[3])
redis.call('HDEL', KEYS[1], 'number')
return 1
"""

# The hash field of the encrypted number (Fernet); a hash stored before it
# has the number in clear in ``number`` instead, read as it is.
SEALED_NUMBER = "number_sealed"


class RedisCallbackStore:
    """Callbacks in Redis, shared by every engine worker and kept across restarts.

    The Lua scripts touch the callback hashes by name (not all in KEYS): fine on
    a single Redis server, which is what the engine runs; not Redis Cluster.
    """

    def __init__(self, client: aioredis.Redis, *, cipher: NumberCipher, prefix: str = "ivr:",
                 keep_done_seconds: int = 7 * 86400, stream_maxlen: int = 100_000,
                 audit_keep_seconds: int = 30 * 86400, limits: CallbackLimits = NO_LIMITS):
        """``cipher``: the callbacks' Fernet keys (``SecretStore.callbacks_keys``); numbers are
        stored encrypted with the newest and read with any. ``audit_keep_seconds``: the audit
        stream keeps entries this long (and ``stream_maxlen`` at most). ``limits``: checked at
        each request (``CallbackLimits.from_config``; none by default: the command-line tools
        register nothing)."""
        self._redis = client
        self._cipher = cipher
        self._audit_keep = audit_keep_seconds
        self.prefix = prefix
        self.key = f"{prefix}callbacks"  # the audit stream (the name it always had)
        self.seq_key = f"{prefix}callbacks:seq"
        self.due_key = f"{prefix}callbacks:due"
        self.active_key = f"{prefix}callbacks:active"
        self.uncounted_key = f"{prefix}callbacks:uncounted"  # ended outside the engine, to be counted
        self._keep_done = keep_done_seconds
        self._stream_maxlen = stream_maxlen
        self._limits = limits
        self._claim = client.register_script(_CLAIM)
        self._transition = client.register_script(_TRANSITION)
        self._request = client.register_script(_REQUEST)
        self._reseal = client.register_script(_RESEAL)

    @classmethod
    def for_config(cls, client: aioredis.Redis, config: Config, *, cipher: NumberCipher,
                   number_key: bytes) -> "RedisCallbackStore":
        """The store as a process that registers callbacks builds it: the
        configuration's key prefix, limits and audit retention."""
        return cls(client, cipher=cipher, prefix=config.service.redis.key_prefix,
                   audit_keep_seconds=config.distribution.callbacks.audit_keep_days * 86400,
                   limits=CallbackLimits.from_config(config, number_key=number_key))

    def queue_active_key(self, queue: str) -> str:
        """The callbacks not yet ended that will be placed in ``queue`` (max_pending_per_queue)."""
        return f"{self.prefix}callbacks:active:{queue}"

    def number_day_key(self, day_counter: str) -> str:
        """A number's callbacks of one local day: ``<date>:<keyed hash>``, never the number."""
        return f"{self.prefix}callbacks:number-day:{day_counter}"

    def hash_key(self, callback_id: str) -> str:
        return f"{self.prefix}callback:{callback_id}"

    async def request(self, *, hotline: str, number: str, reason: str, call_uid: str, program: str = "",
                      queue: str = "", priority: int = 0, position: int = 0, request_type: str = "",
                      governorate: str = "", joined_at: float | None = None, now: float | None = None,
                      due_at: float | None = None) -> str:
        now = time.time() if now is None else now
        limits = self._limits
        cb = _request_fields("", hotline=hotline, number=number, reason=reason, call_uid=call_uid,
                             program=program, queue=queue, priority=priority, position=position,
                             request_type=request_type, governorate=governorate, joined_at=joined_at, now=now,
                             due_at=now if due_at is None else due_at)
        stored = cb.to_fields()
        del stored["id"]   # the script's INCR gives it
        # Needed to dial, so kept; encrypted (item 16), decrypted when read.
        stored[SEALED_NUMBER] = self._cipher.encrypt(stored.pop("number")) or ""
        audit = _audit_request(cb)
        del audit["event"], audit["id"]
        # The record of the request keeps the number masked: enough to recognise
        # it with the citizen on the line, not to call it.
        audit["number"] = mask_number(cb.number) if cb.number else ""
        counted = limits.queue_counted(hotline=hotline, queue=queue)
        day = limits.number_day(_number_hash(cb.number, limits), reason=reason, now=now)
        day_counter, day_keep = day if day is not None else ("", 0)
        kind, value = (as_text(v) for v in await self._request(
            keys=[self.request_key(call_uid), self.seq_key, self.active_key, self.queue_active_key(counted),
                  self.number_day_key(day_counter), self.due_key, self.key],
            args=[f"{self.prefix}callback:", "1" if call_uid else "0", self._keep_done, limits.max_pending,
                  limits.max_pending_per_queue, limits.max_per_number_per_day, counted,
                  "1" if day is not None else "0", day_keep, f"{cb.next_at:.3f}", self._stream_maxlen,
                  self._oldest_audit_id(), len(stored), *_flat(stored), *_flat(audit)]))
        if kind == "refused":
            raise CallbackRefused(value, limits.limit_of(value))
        return value   # created, or asked again: the same callback

    def request_key(self, call_uid: str) -> str:
        return f"{self.prefix}callbacks:request:{call_uid}"

    async def get(self, callback_id: str) -> Callback | None:
        raw = await self._redis.hgetall(self.hash_key(callback_id))
        return self.from_stored(raw) if raw else None

    def from_stored(self, raw: Mapping[Any, Any]) -> Callback:
        """A callback from its hash as read (HGETALL), its number decrypted: for
        the dispatcher to dial it and ``ivr callbacks`` to show it masked. A hash
        stored before numbers were encrypted has it in clear: read as it is (it
        is ended and gone within ``keep_done_seconds``, or re-keyed by ``reseal``)."""
        fields = {as_text(k): as_text(v) for k, v in raw.items()}
        sealed = fields.pop(SEALED_NUMBER, None)
        if sealed is not None:
            fields["number"] = self._open(fields.get("id", "?"), sealed)
        return Callback.from_fields(fields)

    def _open(self, callback_id: str, sealed: str) -> str:
        try:
            return self._cipher.decrypt(sealed) or ""
        except InvalidToken:
            # Its key was retired before the callback ended: the number is lost,
            # and the dispatcher ends the callback as invalid_number.
            log.error("callback %s: its number does not decrypt with the callbacks keys (a retired key "
                      "dropped too early?)", callback_id)
            return ""

    async def reseal(self, *, dry_run: bool = False) -> tuple[int, int]:
        """Every callback's number under the newest key, those stored in clear
        too: after the ``fernet:callbacks`` key is rotated (``SecretStore.rotate``),
        before the old one is retired. Returns (re-keyed, unreadable: left as they are);
        ``dry_run``: (those that would be re-keyed, unreadable), nothing written."""
        head = self.hash_key("")
        resealed = unreadable = 0
        async for key in self._redis.scan_iter(match=glob_escape(head) + "*", count=1000):
            name = as_text(key)
            if not name[len(head):].isdigit():
                continue
            sealed, clear = await self._redis.hmget(name, [SEALED_NUMBER, "number"])
            try:
                if dry_run:
                    if sealed is not None:
                        self._cipher.decrypt(as_text(sealed))   # InvalidToken: unreadable
                    stale = clear is not None if sealed is None else not self._cipher.is_current(as_text(sealed))
                    resealed += int(stale)
                    continue
                if sealed is not None:
                    if self._cipher.is_current(as_text(sealed)):
                        continue  # already under the newest key: nothing to do (idempotent)
                    field, old, new = SEALED_NUMBER, as_text(sealed), self._cipher.reencrypt(as_text(sealed))
                elif clear is not None:
                    field, old, new = "number", as_text(clear), self._cipher.encrypt(as_text(clear)) or ""
                else:
                    continue
            except InvalidToken:
                unreadable += 1
                continue
            resealed += int(await self._reseal(keys=[name], args=[field, old, new]))
        return resealed, unreadable

    def _oldest_audit_id(self) -> str:
        """The audit stream's entries before this (ms since the epoch) are trimmed."""
        return f"{max(0, int((time.time() - self._audit_keep) * 1000))}-0"

    async def _audit(self, entry: Mapping[str, str]) -> None:
        # Trimmed by count and by age (XADD takes one of the two): whole radix
        # nodes go at once (~), so an entry may outlive the limits a little.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self.key, dict(entry), maxlen=self._stream_maxlen, approximate=True)
            pipe.xtrim(self.key, minid=self._oldest_audit_id(), approximate=True)
            await pipe.execute()

    async def claim_due(self, now: float, limit: int) -> list[Callback]:
        ids = await self._claim(keys=[self.due_key], args=[f"{now:.3f}", limit, f"{self.prefix}callback:"])
        claimed = []
        for callback_id in ids:
            cb = await self.get(as_text(callback_id))
            if cb is not None:
                claimed.append(cb)
        return claimed

    async def transition(self, callback_id: str, *, from_states: Iterable[str], state: str,
                         placement: int | None = None, due_at: float | None = None,
                         changes: Mapping[str, Any] | None = None, event: str = "") -> bool:
        done = await self._transition(
            keys=[self.hash_key(callback_id), self.due_key, self.active_key],
            args=[callback_id, ",".join(from_states), "" if placement is None else str(placement), state,
                  "" if due_at is None else f"{due_at:.3f}", self._keep_done, self.queue_active_key(""),
                  *_flat(changes or {})])
        if done and event:
            entry = {"event": event, "id": str(callback_id), "state": state}
            # What the record needs, read without the number (nothing to decrypt).
            names = ("outcome", "placement", "attempts")
            values = await self._redis.hmget(self.hash_key(callback_id), list(names))
            if any(v is not None for v in values):
                cb = Callback.from_fields(dict(zip(names, values)))
                entry.update(outcome=cb.outcome, placement=str(cb.placement), attempts=str(cb.attempts))
            await self._audit(entry)
        return bool(done)

    async def active_ids(self) -> list[str]:
        return sorted((as_text(i) for i in await self._redis.smembers(self.active_key)), key=int)

    async def pending_count(self, queue: str | None = None) -> int:
        return int(await self._redis.scard(self.active_key if queue is None else self.queue_active_key(queue)))

    async def defer_count(self, callback_id: str) -> None:
        await self._redis.rpush(self.uncounted_key, str(callback_id))

    async def take_uncounted(self, limit: int) -> list[str]:
        # LPOP with a count: each id goes to exactly one engine worker.
        return [as_text(i) for i in (await self._redis.lpop(self.uncounted_key, limit) or [])]
