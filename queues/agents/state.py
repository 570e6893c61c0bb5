"""An agent's state, derived from the facts of its record (pure: no I/O).

The record of an agent is a flat hash of strings, ``<prefix>agent:<id>`` in
Redis (``queues.agents.store``), shared by every engine worker and the
command line:

==================  ==========================================================
``logged_in``       ``1`` while the agent is a member of at least one queue
``queue:<id>``      one field per queue the agent is a member of (its penalty)
``login_at``        when the agent logged in (epoch seconds)
``logout_at``       when the agent last logged out
``device``          the softphone's address the agent logged in from
``paused``          ``1`` while paused; ``pause_reason``, ``paused_at``
``resumed_at``      when the agent last came back from a pause
``ringing``         ``1`` while a queue call rings the agent; ``ringing_at``,
                    ``ringing_until`` (a ring whose end was never reported,
                    e.g. the caller hung up, stops counting then)
``in_call``         ``1`` while connected to a queue caller; ``call_start``
``last_call_end``   when the last queue call ended; ``wrapup_until``
``missed_in_row``   calls that rang out in a row; ``last_missed_attempt``
``device_status``   the member's last device state (app_queue ``Status``)
==================  ==========================================================

:func:`derive_state` reads the state (offline, available, ringing, on_call,
wrapup, paused) off such a record; the clock is an argument.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum

from metrics.registry import AGENT_STATES

class AgentState(str, Enum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAPUP = "wrapup"
    PAUSED = "paused"


assert tuple(s.value for s in AgentState) == AGENT_STATES

QUEUE_FIELD = "queue:"
# app_queue's Status is the member's device state: 4 invalid, 5 unavailable
# (softphone not registered). The agent stays "available" to app_queue, but a
# supervisor wants to see it.
UNREACHABLE_DEVICE = ("4", "5")
DEVICE_NOT_INUSE = "1"
DEVICE_RINGING = ("6", "7")  # ringing, ringing while in use
# A ring whose end is never reported (the caller hung up while it rang: no
# AgentRingNoAnswer) stops counting this long after the queue's ring timeout.
RING_GRACE_SECONDS = 5.0
# Fields cleared when an agent goes offline.
OFFLINE_FIELDS = {"logged_in": "0", "paused": "0", "pause_reason": "", "ringing": "0", "in_call": "0"}


def flag(record: Mapping[str, str], field: str) -> bool:
    return record.get(field, "") == "1"


def ts(record: Mapping[str, str], field: str, default: float = 0.0) -> float:
    try:
        return float(record.get(field) or default)
    except ValueError:
        return default


def stamp(t: float) -> str:
    return f"{t:.3f}"


def queues_of(record: Mapping[str, str]) -> set[str]:
    """The queues the record says the agent is a member of."""
    return {f[len(QUEUE_FIELD):] for f in record if f.startswith(QUEUE_FIELD)}


def derive_state(record: Mapping[str, str], now: float) -> tuple[AgentState, str]:
    """The agent's state and its reason, from the raw record.

    A call in progress wins over everything (an agent may pause during a
    call; the pause reason is then returned as the reason and applies once
    the call ends). The reason is the pause reason when paused, and
    ``unreachable`` for an available agent whose softphone is not registered.
    """
    if not flag(record, "logged_in"):
        return AgentState.OFFLINE, ""
    paused = flag(record, "paused")
    reason = record.get("pause_reason", "") if paused else ""
    if flag(record, "in_call"):
        return AgentState.ON_CALL, reason
    if flag(record, "ringing") and ts(record, "ringing_until", math.inf) > now:
        return AgentState.RINGING, reason
    if paused:
        return AgentState.PAUSED, reason
    if ts(record, "wrapup_until") > now:
        return AgentState.WRAPUP, ""
    if record.get("device_status") in UNREACHABLE_DEVICE:
        return AgentState.AVAILABLE, "unreachable"
    return AgentState.AVAILABLE, ""


def state_since(record: Mapping[str, str], state: AgentState, now: float) -> float | None:
    """When the agent entered ``state`` (epoch seconds), or None if unknown."""
    if state is AgentState.OFFLINE:
        field = "logout_at"
    elif state is AgentState.ON_CALL:
        field = "call_start"
    elif state is AgentState.RINGING:
        field = "ringing_at"
    elif state is AgentState.PAUSED:
        field = "paused_at"
    elif state is AgentState.WRAPUP:
        field = "last_call_end"
    else:
        # Available since the latest of: login, end of a pause, end of wrap-up, a ring-out.
        candidates = [ts(record, f) for f in ("login_at", "resumed_at", "wrapup_until", "last_call_end",
                                                "last_missed_at")]
        candidates = [c for c in candidates if 0 < c <= now]
        return max(candidates) if candidates else None
    value = ts(record, field)
    return value or None
