"""A callback's transitions (queues/callbacks/machine.py): pure, then applied by the store."""

from __future__ import annotations

import pytest

from queues.callbacks import machine
from queues.callbacks.model import Callback
from queues.callbacks.store import MemoryCallbackStore


def cb(**fields) -> Callback:
    return Callback(id="7", number="01001234567", hotline="1442", reason="queue", **fields)


def test_the_placeholder_joins_then_an_agent_takes_it():
    assert machine.joined_queue(1) == machine.Transition(("waiting", "placing"), "queued", "queued", placement=1)
    t = machine.agent_answered(2)
    assert (t.from_states, t.state, t.placement) == (("waiting", "placing", "queued"), "dialling", 2)


def test_a_placeholder_that_left_unanswered_is_placed_again_without_an_attempt():
    t = machine.placeholder_left(cb(state="queued", placement=2, attempts=1), "TIMEOUT", due_at=100.0)
    assert t.state == "waiting" and t.due_at == 100.0 and t.placement == 2
    assert t.changes == {"placement": 3, "last_status": "TIMEOUT"}  # attempts unchanged


@pytest.mark.parametrize("status, outcome, ends", [("ANSWER", "connected", True), ("INVALIDNUMBER", "invalid_number", True),
                                                   ("NOANSWER", "no_answer", False), ("BUSY", "busy", False),
                                                   ("CANCEL", "no_answer", False), ("WHATEVER", "failed", False)])
def test_a_dial_result_ends_the_callback_or_retries_it(status, outcome, ends):
    t = machine.dial_ended(cb(state="dialling", placement=1, attempts=0), status, placement_known=True,
                           max_attempts=3, retry_at=50.0)
    assert t.ends is ends
    if ends:
        assert t.outcome == outcome and t.changes["last_status"] == status
    else:
        assert t.state == "waiting" and t.due_at == 50.0 and t.changes["placement"] == 2
    # An invalid number was never dialled: no attempt used.
    assert t.changes["attempts"] == (0 if outcome == "invalid_number" else 1)


def test_the_last_attempt_ends_it_with_the_last_outcome():
    t = machine.dial_ended(cb(state="dialling", attempts=2), "NOANSWER", placement_known=False, max_attempts=3,
                           retry_at=0.0)
    assert t.ends and t.outcome == "no_answer" and t.changes["attempts"] == 3
    assert "waiting" not in t.from_states  # an unknown placement: only a live callback can be meant


def test_recovery_after_a_restart():
    alive = machine.found_alive(cb(state="waiting", placement=3))
    assert (alive.from_states, alive.state, alive.placement) == (("waiting",), "queued", 3)
    lost = machine.lost(cb(state="dialling", placement=3), now=10.0)
    assert lost.state == "waiting" and lost.due_at == 10.0
    assert lost.changes == {"placement": 4, "last_status": "LOST_DIALLING"}


async def test_a_refused_transition_changes_nothing():
    store = MemoryCallbackStore()
    callback_id = await store.request(hotline="1442", number="01001234567", reason="queue", call_uid="u")
    # waiting -> dialling is allowed (an Originate that looked failed may still have
    # started the placeholder); dialling -> queued is not.
    assert await store.transition(callback_id, **machine.agent_answered(1).arguments())
    assert not await store.transition(callback_id, **machine.joined_queue(1).arguments())
    assert (await store.get(callback_id)).state == "dialling"
    # An event of an older placement is stale.
    assert not await store.transition(callback_id, **machine.agent_answered(5).arguments())
    assert await store.transition(callback_id, **machine.cancel().arguments())
    assert not await store.transition(callback_id, **machine.cancel().arguments())  # done is done
    assert (await store.get(callback_id)).outcome == "cancelled"


async def test_the_memory_store_is_idempotent_by_call_like_the_redis_one():
    store = MemoryCallbackStore()
    first = await store.request(hotline="1442", number="01001234567", reason="case", call_uid="case-X-1")
    assert await store.request(hotline="1442", number="01001234567", reason="case", call_uid="case-X-1") == first
    assert len(store.requests) == 1 and list(store.due) == [first]
    other = await store.request(hotline="1442", number="01001234567", reason="case", call_uid="case-X-2")
    assert other != first and len(store.requests) == 2
    assert await store.request(hotline="1442", number="0225551234", reason="closed", call_uid="") != \
        await store.request(hotline="1442", number="0225551234", reason="closed", call_uid="")
