"""Queue priority of a caller, from the configured priority rules.

A rule (``distribution.priorities``) matches when every condition it names
holds: the programme, a pending callback, a repeat call to the same hotline
within N hours. The highest priority among the matching rules wins (the
first rule listed on a tie); no match is priority 0. The priority becomes
app_queue's ``QUEUE_PRIO``: higher is answered first.

Repeat callers are recognised by a keyed hash of their number
(:func:`hash_caller`), never by the number itself: the store below holds
``<prefix>recent:<hotline>:<hash>`` -> time of the last call, expiring after
the longest ``repeat_within_hours`` of the rules, so nothing about a caller
outlives the longest window that needs it.

Order of calls for one incoming call: ``caller_priority`` (which reads the
*previous* call's time) first, then ``RecentCallers.record``.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.citizens.area_codes import normalize
from core.configuration import Config
from core.configuration.model import PriorityRule

log = logging.getLogger(__name__)

# Domain separation: the same secret may also key national ID hashes; a
# caller-number hash and an ID hash must never be comparable.
_DOMAIN = b"caller-number:"
HASH_HEX_CHARS = 32  # 128 bits: collisions are out of reach for any hotline's callers


# The key of callers' numbers when no national-ID key is configured (no
# programme asks for the ID): a fixed key still keeps numbers out of Redis.
DEFAULT_CALLER_KEY = b"ivr-caller-numbers"


def hash_caller(number: str | None, key: bytes) -> str | None:
    """Stored form of a caller number: HMAC-SHA256 of its normalised digits, hex.

    Same reasoning as :func:`core.citizens.national_id.hash_national_id`: the
    space of phone numbers is small enough to hash exhaustively, so only a
    keyed hash keeps a leaked table from being a list of numbers. Numbers are
    normalised first (``+20 100 123 4567``, ``00201001234567`` and
    ``01001234567`` are one caller). A withheld or empty number (no digits)
    gives None: such a caller can never be recognised as a repeat caller.
    """
    if not key:
        raise ValueError("hash_caller needs a non-empty secret key")
    if not number:
        return None
    national = normalize(number)
    digits = national if national is not None else "".join(c for c in str(number) if c.isdigit())
    if not digits:
        return None
    return hmac.digest(key, _DOMAIN + digits.encode("ascii"), "sha256").hex()[:HASH_HEX_CHARS]


class RecentCallers(Protocol):
    async def seen(self, hotline: str, caller_hash: str, now: float) -> float | None:
        """Time of this caller's last call to this hotline, if still remembered."""

    async def record(self, hotline: str, caller_hash: str, now: float) -> None: ...


def keep_seconds(config: Config) -> int:
    """How long a call must be remembered: the longest repeat window (0: none)."""
    hours = [r.repeat_within_hours for r in config.distribution.priorities if r.repeat_within_hours]
    return max(hours, default=0) * 3600


class MemoryRecentCallers:
    def __init__(self, *, keep_seconds: int) -> None:
        self._keep = keep_seconds
        self._last: dict[tuple[str, str], float] = {}

    async def seen(self, hotline: str, caller_hash: str, now: float) -> float | None:
        last = self._last.get((hotline, caller_hash))
        return last if last is not None and now - last < self._keep else None

    async def record(self, hotline: str, caller_hash: str, now: float) -> None:
        if self._keep > 0:
            self._last[(hotline, caller_hash)] = now


class RedisRecentCallers:
    def __init__(self, client: aioredis.Redis, *, prefix: str = "ivr:", keep_seconds: int):
        self._redis = client
        self._prefix = prefix
        self._keep = keep_seconds

    def key(self, hotline: str, caller_hash: str) -> str:
        return f"{self._prefix}recent:{hotline}:{caller_hash}"

    async def seen(self, hotline: str, caller_hash: str, now: float) -> float | None:
        raw = await self._redis.get(self.key(hotline, caller_hash))
        if raw is None:
            return None
        try:
            return float(raw)
        except ValueError:
            return None

    async def record(self, hotline: str, caller_hash: str, now: float) -> None:
        if self._keep > 0:  # no repeat rule: nothing to remember
            await self._redis.set(self.key(hotline, caller_hash), repr(float(now)), ex=self._keep)


def _matches(rule: PriorityRule, *, program: str | None, callback_pending: bool,
             last_call: float | None, now: float) -> bool:
    if rule.program is not None and rule.program != program:
        return False
    if rule.callback and not callback_pending:
        return False
    return rule.repeat_within_hours is None or (
        last_call is not None and now - last_call <= rule.repeat_within_hours * 3600)


async def caller_priority(*, config: Config, program: str | None, caller_hash: str | None, hotline: str,
                          recent_store: RecentCallers, callback_pending: bool,
                          now: float | None = None) -> tuple[int, str | None]:
    """(priority, name of the rule that gave it); (0, None) when no rule matches.

    ``program`` is the programme the caller chose (None: the fallback queue).
    ``caller_hash`` is :func:`hash_caller` of the caller's number (None when
    withheld). The recent-callers store is read only if a rule needs it; when
    it cannot be read (Redis away) the caller is taken for a first-time
    caller, and every other rule still applies (a Services Card caller keeps
    their priority).
    """
    now = time.time() if now is None else now
    rules = config.distribution.priorities
    last_call = None
    if caller_hash and any(r.repeat_within_hours for r in rules):
        try:
            last_call = await recent_store.seen(hotline, caller_hash, now)
        except (RedisError, OSError) as exc:
            log.warning("repeat callers unknown now (%s): the repeat-caller rule is skipped", type(exc).__name__)
    best: tuple[int, str | None] = (0, None)
    for rule in rules:
        if rule.priority > best[0] and _matches(rule, program=program, callback_pending=callback_pending,
                                                last_call=last_call, now=now):
            best = (rule.priority, rule.name)
    return best


def count_priority(metrics, *, queue: str, rule: str | None) -> None:
    """Count a caller queued with a raised priority (``ivr_queue_priority_calls``;
    the ``program`` label is the queue id, as for every queue metric)."""
    if rule is not None:
        metrics.queue_priority_calls.labels(program=queue, rule=rule).inc()
