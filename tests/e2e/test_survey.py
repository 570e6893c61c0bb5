"""The post-call survey: after the agent hangs up, the caller rates the service."""

from __future__ import annotations

import pytest

from app.simulate.sipp import CallerScript, start_agent, stop_agent

pytestmark = pytest.mark.e2e


def test_after_the_agent_hangs_up_the_caller_rates_the_service(hotline):
    rated = hotline.metric("ivr_survey_ratings_total", program="nasser_bank", score="4")
    answered = hotline.metric("ivr_queue_answered_total", program="nasser_bank")
    abandoned = hotline.metric("ivr_queue_abandoned_total", program="nasser_bank")
    agent = start_agent(hotline.sipp, user="agent1002", password=hotline.password("1002"),
                        target=hotline.agent_port, talk_ms=1500, calls=1)
    try:
        # 3 Nasser Social Bank, 1 inquiry; the transfer prompt (~8 s), the
        # agent answers and hangs up after 1.5 s; 4 during the survey question.
        caller = hotline.sipp.call(CallerScript(number="1442", keys=((1200, "3"), (2000, "1"), (12_500, "4")),
                                                hold_ms=60_000), target=hotline.carrier)
        assert hotline.wait_metric("ivr_queue_answered_total", answered + 1, program="nasser_bank") == answered + 1
        assert hotline.wait_metric("ivr_survey_ratings_total", rated + 1, timeout=40, program="nasser_bank",
                                   score="4") == rated + 1
        # The IVR ends the call after thanking the caller.
        assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
    finally:
        stop_agent(hotline.sipp, agent, password=hotline.password("1002"), target=hotline.agent_port)
    # An answered call whose caller stayed for the survey is not an abandon.
    assert hotline.metric("ivr_queue_abandoned_total", program="nasser_bank") == abandoned
