"""Callbacks: citizens who asked to be called back, kept and placed.

One home for the feature:

* ``model``      -- :class:`Callback` as stored; states, reasons, outcomes.
* ``machine``    -- the state machine: one pure function per transition.
* ``store``      -- the callbacks in Redis (shared, kept; numbers encrypted) or in memory.
* ``limits``     -- the abuse limits the store applies at registration.
* ``dispatcher`` -- :class:`CallbackDispatcher`, the AMI side: places due
  callbacks as placeholders in their queue and follows each to an outcome.
* ``menu``       -- the caller's side: the FastAGI routes that offer a
  callback in a queue, at a queue's limit and outside opening hours.
* ``cli``        -- ``ivr callbacks list|show|cancel``.
"""

from core.hours import next_opening

from .dispatcher import (NO_OPENING_RETRY_SECONDS, ORIGINATE_MARGIN_SECONDS, ORIGINATE_RETRY_SECONDS,
                         PLACEHOLDER_QUEUE_TIMEOUT, REPLACE_AFTER_SECONDS, CallbackDispatcher)
from .limits import CallbackLimits, CallbackRefused
from .model import DIAL_OUTCOMES, FINAL_OUTCOMES, LIVE_STATES, REASONS, STATES, Callback, queue_of
from .store import CallbackStore, MemoryCallbackStore, RedisCallbackStore

__all__ = [
    "DIAL_OUTCOMES", "FINAL_OUTCOMES", "LIVE_STATES", "NO_OPENING_RETRY_SECONDS", "ORIGINATE_MARGIN_SECONDS",
    "ORIGINATE_RETRY_SECONDS", "PLACEHOLDER_QUEUE_TIMEOUT", "REASONS", "REPLACE_AFTER_SECONDS", "STATES", "Callback",
    "CallbackDispatcher", "CallbackLimits", "CallbackRefused", "CallbackStore", "MemoryCallbackStore",
    "RedisCallbackStore", "next_opening", "queue_of",
]
