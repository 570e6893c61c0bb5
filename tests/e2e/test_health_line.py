"""The second tenant through the real Asterisk: the Ministry of Health's
unified line 105 on the same engine. A caller hears a recorded vaccination
answer and finds it useful (the IVR ends the call); another finds theirs
useless and reaches the health ministry's agent. Every figure carries the
tenant `moh`, and none reaches the social-solidarity ministry's series."""

from __future__ import annotations

import time

import pytest

from app.simulate.sipp import CallerScript

pytestmark = pytest.mark.e2e


def answers(hotline, answer: str, useful: str) -> float:
    return hotline.metric("ivr_self_service_answers_total", tenant="moh", answer=answer, useful=useful)


def test_a_vaccination_answer_found_useful_ends_the_call_in_the_ivr(hotline):
    since = time.time() - 5
    useful = answers(hotline, "vaccination_where", "yes")
    not_useful = answers(hotline, "vaccination_where", "no")
    served = hotline.metric("ivr_calls_ended_total", hotline="105", outcome="self_service")
    # 4 (vaccination) during the welcome, 1 (where to get vaccinated) in its
    # menu, then 1 ("useful") while the answer is said: a key cuts it short.
    caller = hotline.sipp.call(CallerScript(number="105", keys=((1200, "4"), (2500, "1"), (5000, "1")),
                                            hold_ms=60_000, caller_id="0225550210"), target=hotline.carrier)
    assert hotline.wait_metric("ivr_self_service_answers_total", useful + 1, timeout=60, tenant="moh",
                               answer="vaccination_where", useful="yes") == useful + 1
    # The IVR thanked the caller and hung up (within the caller's 60 s hold).
    assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
    assert hotline.wait_metric("ivr_calls_ended_total", served + 1, timeout=30, hotline="105",
                               outcome="self_service") == served + 1
    assert answers(hotline, "vaccination_where", "no") == not_useful
    # Its call record names the ministry of the line called.
    records = hotline.engine.run(hotline.engine.engine.records.read(since, time.time() + 60, late_seconds=None))
    mine = [r for r in records if r.hotline == "105" and r.outcome == "self_service"]
    assert mine and {r.tenant for r in mine} == {"moh"}, records


def test_an_answer_that_did_not_help_reaches_the_health_ministrys_agent(hotline, phones):
    not_useful = answers(hotline, "vaccination_register", "no")
    moh_answered = hotline.metric("ivr_queue_answered_total", tenant="moh", program="moh_vaccination")
    mss_offered = hotline.metric("ivr_queue_offered_total", tenant="mss")
    agent = phones("2002", talk_ms=2000)
    # 4, 2 (how to register), then 2 ("not useful") during the answer.
    caller = hotline.sipp.call(CallerScript(number="105", keys=((1200, "4"), (2500, "2"), (5000, "2")),
                                            hold_ms=60_000, caller_id="0225550211"), target=hotline.carrier)
    assert hotline.wait_metric("ivr_queue_answered_total", moh_answered + 1, timeout=90, tenant="moh",
                               program="moh_vaccination") == moh_answered + 1
    assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
    assert answers(hotline, "vaccination_register", "no") == not_useful + 1
    # The health ministry's agent took it, shown what the call is about.
    assert len(agent.callers()) == 1
    offered = hotline.metric("ivr_queue_offered_total", tenant="moh", hotline="105", program="moh_vaccination",
                             request_type="inquiry")
    assert offered >= 1
    # Nothing of it in the other ministry's figures.
    assert hotline.metric("ivr_queue_offered_total", tenant="mss") == mss_offered
    assert hotline.metric("ivr_queue_offered_total", tenant="mss", hotline="105") == 0
