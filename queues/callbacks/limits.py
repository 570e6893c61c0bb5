"""Abuse limits on callbacks (issue 12, item 15): how many may wait, in all and
per queue, and how many one number may ask for in a day.

The callback store applies them when a callback is registered, inside the
same atomic step that registers it (a Lua script on Redis), so two engine
workers can never exceed a limit together; a request over a limit raises
:class:`CallbackRefused` naming it, and nothing is stored. The routes' own
look before they offer a callback (``queues.callbacks.menu``) only spares a
caller a question whose answer would be refused.

* ``pending_all``: callbacks not yet ended (``max_pending``);
* ``pending_queue``: those to be placed in one queue
  (``max_pending_per_queue``). A callback counts in the queue it will be
  placed in: its own, else (after hours, a sector without a programme) its
  hotline's fallback queue, as the dispatcher places it;
* ``number_day``: callbacks registered for one number in one local day
  (``max_per_number_per_day``). The day is the hotlines' (Cairo time,
  midnight to midnight), not a rolling 24 hours: it is the day a citizen
  and a supervisor count in, and it needs one counter per number that
  expires with the day, where a rolling window would keep the time of every
  request per number (a request history) for a day. The counter is kept
  under a keyed hash of the number (the caller-number HMAC key,
  ``queues.priority.hash_caller``), never the number. Only what citizens ask
  for counts (reasons ``queue``, ``overflow``, ``closed``): the abuse it
  stops is someone making the hotline call a number, their own or another
  person's, over and over. The service check's callback (reason ``case``)
  is the ministry's own call about a resolved case.

No I/O here: the store does the counting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone, tzinfo
from typing import Mapping

from core.configuration import Config
from core.configuration.model import CALLBACK_LIMITS
from core.hours import local_timezone

REFUSAL_REASONS = tuple(CALLBACK_LIMITS)
# The reasons of the callbacks a citizen asks for (queues.callbacks.model.REASONS but `case`).
NUMBER_LIMITED_REASONS = ("queue", "overflow", "closed")
# A day's counter outlives the day by this much: a worker whose clock is a
# little behind still counts in the right day's counter.
DAY_COUNTER_MARGIN_SECONDS = 3600


class CallbackRefused(Exception):
    """A callback request over one of the limits: nothing was registered."""

    def __init__(self, reason: str, limit: int):
        super().__init__(f"callback refused: {reason} (limit {limit})")
        self.reason = reason
        self.limit = limit


@dataclass(frozen=True)
class CallbackLimits:
    """What the store checks at registration; 0 means no such limit
    (:data:`NO_LIMITS`: unit tests of other things, the command-line tools,
    which register nothing)."""

    max_pending: int = 0
    max_pending_per_queue: int = 0
    max_per_number_per_day: int = 0
    day_zone: tzinfo = timezone.utc
    fallback_queues: Mapping[str, str] = field(default_factory=dict)   # hotline -> its fallback queue
    number_key: bytes = field(default=b"", repr=False)                 # HMAC key of the per-number counter

    @classmethod
    def from_config(cls, config: Config, *, number_key: bytes) -> "CallbackLimits":
        policy = config.distribution.callbacks
        if not number_key:
            raise ValueError("the per-number callback limit needs the caller-number key "
                             "(SecretStore.caller_number_keys)")
        return cls(max_pending=policy.max_pending, max_pending_per_queue=policy.max_pending_per_queue,
                   max_per_number_per_day=policy.max_per_number_per_day, day_zone=local_timezone(config),
                   fallback_queues={h.number: h.fallback_queue for h in config.hotlines}, number_key=number_key)

    def queue_counted(self, *, hotline: str, queue: str) -> str:
        """The queue a callback counts in: where it will be placed ("" if nowhere known)."""
        return queue or self.fallback_queues.get(hotline, "")

    def limit_of(self, reason: str) -> int:
        """The limit a refusal names (its fields are named as the configuration's)."""
        return getattr(self, CALLBACK_LIMITS[reason])

    def number_day(self, number_hash: str | None, *, reason: str, now: float) -> tuple[str, int] | None:
        """The per-number counter a request counts in: (its name, seconds it
        is kept from ``now``); None when the request is not limited per number
        (no such limit, the service check's reason, a number with no digits)."""
        if not self.max_per_number_per_day or reason not in NUMBER_LIMITED_REASONS or not number_hash:
            return None
        local = datetime.fromtimestamp(now, self.day_zone)
        # The next local midnight, as a wall time: Cairo's summer-time jump
        # (at midnight, the last Friday of April) only moves it by an hour.
        end = datetime.combine(local.date() + timedelta(days=1), time(0), self.day_zone)
        keep = max(1, int(end.timestamp() - now)) + DAY_COUNTER_MARGIN_SECONDS
        return f"{local.date().isoformat()}:{number_hash}", keep


NO_LIMITS = CallbackLimits()
