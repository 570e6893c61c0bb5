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

# The names below are loaded on first use (PEP 562): a classic-AGI process
# (one per call) needs the store and the limits, not the dispatcher and the
# AMI actions it brings, and pays for every module it imports.
_HOMES = {
    "next_opening": "core.hours",
    **dict.fromkeys(("NO_OPENING_RETRY_SECONDS", "ORIGINATE_MARGIN_SECONDS", "ORIGINATE_RETRY_SECONDS",
                     "PLACEHOLDER_QUEUE_TIMEOUT", "REPLACE_AFTER_SECONDS", "CallbackDispatcher"), ".dispatcher"),
    **dict.fromkeys(("CallbackLimits", "CallbackRefused"), ".limits"),
    **dict.fromkeys(("DIAL_OUTCOMES", "FINAL_OUTCOMES", "LIVE_STATES", "REASONS", "STATES", "Callback", "queue_of"),
                    ".model"),
    **dict.fromkeys(("CallbackStore", "MemoryCallbackStore", "RedisCallbackStore"), ".store"),
}


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(home, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DIAL_OUTCOMES", "FINAL_OUTCOMES", "LIVE_STATES", "NO_OPENING_RETRY_SECONDS", "ORIGINATE_MARGIN_SECONDS",
    "ORIGINATE_RETRY_SECONDS", "PLACEHOLDER_QUEUE_TIMEOUT", "REASONS", "REPLACE_AFTER_SECONDS", "STATES", "Callback",
    "CallbackDispatcher", "CallbackLimits", "CallbackRefused", "CallbackStore", "MemoryCallbackStore",
    "RedisCallbackStore", "next_opening", "queue_of",
]
