"""A callback's states, and every way between them: one function per transition.

States, and the only ways between them::

    waiting --claim--> placing --QueueCallerJoin--> queued --AgentConnect--> dialling
       ^                  |  Originate error           |  placeholder left           |  dial result
       |                  v  (same placement)          v  the queue                  v
       +------------------+----------------------------+-----------------------  done (outcome)
                    retry or re-place (next placement)

Each function here is pure: it says, as a :class:`Transition`, from which
states the callback may move, to which, on which placement, with which
changes and under which audit-stream event. The store applies it as one
atomic compare-and-set (a Lua script on Redis), so a transition whose
preconditions no longer hold (another worker got there first, a stale
event of an older placement) changes nothing and reports it. ``claim``
(``waiting`` -> ``placing``) is the store's own bulk operation
(``CallbackStore.claim_due``).

*Placement* vs *attempt*: a placement is one Originate of the placeholder
(channel ids ``cbd<id>a<placement>`` / ``cbq<id>a<placement>``); an attempt
is one call to the citizen. A placeholder that leaves the queue unanswered
(queue timeout, Originate failure) is placed again without using an attempt;
``distribution.callbacks.attempts`` counts calls to the citizen only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .model import DIAL_OUTCOMES, FINAL_OUTCOMES, LIVE_STATES, Callback

ACTIVE_STATES = ("waiting",) + LIVE_STATES


@dataclass(frozen=True)
class Transition:
    """What the store's compare-and-set applies (``CallbackStore.transition``)."""

    from_states: tuple[str, ...]
    state: str
    event: str
    placement: int | None = None        # only if the callback is still on this placement
    due_at: float | None = None         # when to place it (waiting); None takes it off the due list
    changes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ends(self) -> bool:
        return self.state == "done"

    @property
    def outcome(self) -> str:
        return str(self.changes.get("outcome", ""))

    def arguments(self) -> dict[str, Any]:
        return {"from_states": self.from_states, "state": self.state, "placement": self.placement,
                "due_at": self.due_at, "changes": dict(self.changes), "event": self.event}


def defer(*, due_at: float) -> Transition:
    """The hotline is closed: back to waiting until it opens."""
    return Transition(("placing",), "waiting", "deferred", due_at=due_at)


def originate_failed(cb: Callback, *, retry_at: float) -> Transition:
    """The Originate got an error or no answer. It may still have reached
    Asterisk, so the placement stays: events of a placeholder that did start
    still match (and move it to queued)."""
    return Transition(("placing",), "waiting", "originate_error", placement=cb.placement, due_at=retry_at,
                      changes={"last_status": "ORIGINATE_ERROR"})


def joined_queue(placement: int) -> Transition:
    """The placeholder is in the queue (QueueCallerJoin)."""
    return Transition(("waiting", "placing"), "queued", "queued", placement=placement)


def agent_answered(placement: int) -> Transition:
    """An agent took the placeholder (AgentConnect, or OriginateResponse Success):
    the citizen is being called."""
    return Transition(("waiting", "placing", "queued"), "dialling", "agent", placement=placement)


def placeholder_left(cb: Callback, status: str, *, due_at: float) -> Transition:
    """The placeholder left (or never reached) the queue without an agent:
    place it again, without using an attempt."""
    return Transition(("placing", "queued"), "waiting", "replace", placement=cb.placement, due_at=due_at,
                      changes={"placement": cb.placement + 1, "last_status": status})


def finish(cb: Callback, outcome: str, *, status: str, from_states: tuple[str, ...],
           attempts: int | None = None) -> Transition:
    """The callback ends with ``outcome``."""
    changes: dict[str, Any] = {"outcome": outcome, "last_status": status}
    if attempts is not None:
        changes = {"attempts": attempts, **changes}
    return Transition(from_states, "done", outcome, placement=cb.placement, changes=changes)


def dial_ended(cb: Callback, status: str, *, placement_known: bool, max_attempts: int,
               retry_at: float) -> Transition:
    """The call to the citizen ended with ``status`` (DIALSTATUS): done, or
    retried on the next placement while attempts remain.

    With a known placement the placeholder may be alive although the store
    saw it as waiting (its Originate looked failed); with an unknown one only
    a live callback can be meant.
    """
    from_states = ACTIVE_STATES if placement_known else LIVE_STATES
    outcome = DIAL_OUTCOMES.get(status, "failed")
    # An attempt is a call to the citizen: an invalid number was never dialled.
    attempts = cb.attempts if outcome == "invalid_number" else cb.attempts + 1
    if outcome in FINAL_OUTCOMES or attempts >= max_attempts:
        return finish(cb, outcome, status=status, from_states=from_states, attempts=attempts)
    return Transition(from_states, "waiting", "retry", placement=cb.placement, due_at=retry_at,
                      changes={"attempts": attempts, "placement": cb.placement + 1, "last_status": status})


def cancel() -> Transition:
    """A supervisor ends it (``ivr callbacks cancel``), whatever placement it is on."""
    return Transition(ACTIVE_STATES, "done", "cancelled", changes={"outcome": "cancelled", "last_status": "CANCELLED"})


def found_alive(cb: Callback) -> Transition:
    """After a restart: a waiting callback whose placeholder is in fact alive."""
    return Transition(("waiting",), "queued", "recovered", placement=cb.placement)


def lost(cb: Callback, *, now: float) -> Transition:
    """After a restart: a live callback whose placeholder is gone; placed again now."""
    return Transition((cb.state,), "waiting", "recovered", placement=cb.placement, due_at=now,
                      changes={"placement": cb.placement + 1, "last_status": f"LOST_{cb.state.upper()}"})
