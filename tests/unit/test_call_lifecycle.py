"""A call's states and transitions (queues/calls/lifecycle.py): pure functions, no store."""

from __future__ import annotations

from queues.calls import lifecycle as L
from queues.calls.lifecycle import CallState, state_of

T0 = 1_772_323_200.0


def apply(facts: dict, step: L.Step) -> dict:
    """What the store does with a step: marks set once, sets written."""
    out = dict(facts)
    for k, v in step.marks.items():
        out.setdefault(k, v)
    out.update(step.sets)
    return out


def test_a_call_goes_through_every_state_to_its_end():
    facts: dict = {}
    assert state_of(facts) is CallState.IN_IVR
    facts = apply(facts, L.arrived(facts, hotline="1442", at=T0))
    assert state_of(facts) is CallState.IN_IVR and facts["hotline"] == "1442"
    facts = apply(facts, L.joined(facts, queue="forsa", at=T0 + 10))
    assert state_of(facts) is CallState.QUEUED
    facts = apply(facts, L.rang(facts, queue="forsa", at=T0 + 15))
    assert state_of(facts) is CallState.RINGING
    facts = apply(facts, L.connected(facts, queue="forsa", at=T0 + 18))
    assert state_of(facts) is CallState.CONNECTED and facts["in_queue"] == ""
    wait, skew = L.measured_wait(facts["offered:forsa"], T0 + 18, 8.0)
    assert (wait, skew) == (8.0, None)
    facts["wait"] = L.stamp(wait)  # accounting notes the measured wait with the answer
    facts = apply(facts, L.completed(facts, at=T0 + 100))
    assert state_of(facts) is CallState.WRAPUP
    ending = L.ended(facts, queue="forsa", member="PJSIP/agent1001", hotline="1442", at=T0 + 130, answer_at=T0 + 130,
                     short_abandon_seconds=5, known_queue=True)
    facts = apply(facts, ending.step)
    assert state_of(facts) is CallState.ENDED
    assert not ending.abandon and not ending.recovered_answer and ending.in_queue == "forsa"
    fields, talk = L.record_fields("u", facts, in_queue=ending.in_queue, hotlines={"1442": "mss"},
                                   request_types={"none"}, now=T0 + 200)
    assert fields["outcome"] == "answered" and talk == 82.0 and fields["wait_seconds"] == "8.000"
    # The record keeps the ministry of the line called.
    assert (fields["hotline"], fields["tenant"]) == ("1442", "mss")
    # A line the configuration does not know: no tenant is made up.
    unknown, _ = L.record_fields("u", facts | {"hotline": "999"}, in_queue=ending.in_queue, hotlines={"1442": "mss"},
                                 request_types={"none"}, now=T0 + 200)
    assert (unknown["hotline"], unknown["tenant"]) == (L.UNKNOWN_HOTLINE, "")


def test_leaving_a_queue_alive_is_back_in_the_ivr_and_a_new_queue_queues_again():
    facts = apply({}, L.joined({}, queue="forsa", at=T0))
    facts = apply(facts, L.left_queue(facts, queue="forsa", status="TIMEOUT", callback=False))
    assert state_of(facts) is CallState.IN_IVR and facts["exit:forsa"] == "TIMEOUT"
    facts = apply(facts, L.joined(facts, queue="shared", at=T0 + 30))
    assert state_of(facts) is CallState.QUEUED and facts["in_queue"] == "shared"


def test_a_hang_up_while_waiting_is_an_abandon_short_or_not():
    facts = apply({}, L.joined({}, queue="forsa", at=T0))
    short = L.ended(facts, queue="forsa", member="", hotline="", at=T0 + 4, answer_at=T0 + 4,
                    short_abandon_seconds=5, known_queue=True)
    assert short.abandon == "short_abandoned" and short.wait == 4.0 and short.step.marks["wait"] == "4.000"
    full = L.ended(facts, queue="forsa", member="", hotline="", at=T0 + 40, answer_at=T0 + 40,
                   short_abandon_seconds=5, known_queue=True)
    assert full.abandon == "abandoned" and full.step.marks["abandoned:forsa"] == "abandoned"
    # When the hang-up time is unknown (a journal entry), never a short abandon.
    unknown = L.ended(facts, queue="forsa", member="", hotline="", at=None, answer_at=T0 + 999,
                      short_abandon_seconds=5, known_queue=True)
    assert unknown.abandon == "abandoned" and unknown.wait is None and unknown.step.marks["ended"] == ""


def test_an_end_proves_what_an_outage_hid():
    ending = L.ended({}, queue="forsa", member="PJSIP/agent1001", hotline="1442", at=T0, answer_at=T0,
                     short_abandon_seconds=5, known_queue=True)
    assert ending.recovered_arrival and ending.recovered_offer and ending.recovered_answer
    assert ending.step.marks["offered:forsa"] == "" and ending.step.marks["answered:forsa"] == f"{T0:.3f}"


def test_a_clock_jump_is_reported_not_measured():
    facts = apply({}, L.joined({}, queue="forsa", at=T0))
    ending = L.ended(facts, queue="forsa", member="", hotline="", at=T0 - 3600, answer_at=T0,
                     short_abandon_seconds=5, known_queue=True)
    assert ending.wait is None and ending.skew == -3600 and ending.abandon == "abandoned"
    assert L.measured_wait(f"{T0:.3f}", T0 + 90_000, 12.0) == (12.0, 90_000.0)
    assert L.measured_wait(f"{T0:.3f}", T0 + 12.5, 12.0) == (12.5, None)


def test_an_end_retried_carries_again_what_it_proved_and_a_normal_end_carries_none_of_it():
    kw = dict(queue="forsa", member="PJSIP/agent1001", hotline="1442", at=T0, answer_at=T0,
              short_abandon_seconds=5, known_queue=True)
    first = L.ended({}, **kw)
    proved = {"received", "hotline", "offered:forsa", "answered:forsa"}
    assert proved <= set(first.step.marks)
    # Its reply lost, the same end again: the facts hold what it wrote; the
    # marks are offered again (the store finds them its own: new, counted once).
    retried = L.ended(apply({}, first.step), **kw)
    assert proved <= set(retried.step.marks)
    assert not retried.recovered_arrival and not retried.recovered_offer
    # A retry whose end time differs (no Timestamp: the engine's clock) still
    # carries the answer, with the value its first try wrote.
    later = L.ended(apply({}, first.step), **(kw | {"at": T0 + 5, "answer_at": T0 + 5}))
    assert later.step.marks["answered:forsa"] == f"{T0:.3f}"
    # The call's own events were seen: their times are in the facts; the end
    # carries neither the arrival nor the offer, and the answer only with the
    # value AgentConnect wrote (set once: not new for this end).
    facts = apply({}, L.arrived({}, hotline="1442", at=T0 - 60))
    facts = apply(facts, L.joined(facts, queue="forsa", at=T0 - 50))
    facts = apply(facts, L.connected(facts, queue="forsa", at=T0 - 40))
    normal = L.ended(facts, **kw)
    assert not ({"received", "hotline", "offered:forsa"} & set(normal.step.marks)), normal.step.marks
    assert normal.step.marks["answered:forsa"] == facts["answered:forsa"] != f"{T0:.3f}"
