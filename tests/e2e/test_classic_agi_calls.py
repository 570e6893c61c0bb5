"""Classic AGI (pyst2, one ivr-agi process per call) through real Asterisk.

The demo's Forsa line 14406 runs in classic mode: Asterisk executes the
ivr-agi script installed in its root; the FastAGI service is not involved.
"""

from __future__ import annotations

import pytest

from app.simulate.sipp import CallerScript, start_agent, stop_agent

pytestmark = pytest.mark.e2e


def test_a_classic_agi_line_routes_the_caller_and_tells_the_agent_what_for(hotline):
    answered = hotline.metric("ivr_queue_answered_total", program="forsa")
    fastagi_sessions = hotline.metric("ivr_fastagi_sessions_total")
    # agent1004 serves Forsa; its one call must carry what the classic flow set.
    agent = start_agent(hotline.sipp, user="agent1004", password=hotline.password("1004"),
                        target=hotline.agent_port, talk_ms=1500, calls=1,
                        expect_headers={"X-IVR-Request-Type": "complaint", "X-IVR-Program": "forsa"})
    try:
        caller = hotline.sipp.call(CallerScript(number="14406", keys=((3000, "2"),), hold_ms=60_000),
                                   target=hotline.carrier)
        assert hotline.wait_metric("ivr_queue_answered_total", answered + 1, timeout=60,
                                   program="forsa") == answered + 1
        assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
        assert agent.uas.wait(timeout=30) == 0, agent.uas.output()[-2000:]
    finally:
        stop_agent(hotline.sipp, agent, password=hotline.password("1004"), target=hotline.agent_port)
    # The FastAGI service never saw this call.
    assert hotline.metric("ivr_fastagi_sessions_total") == fastagi_sessions
