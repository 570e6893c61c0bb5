"""Menu trees, request types and direct lines, through real Asterisk."""

from __future__ import annotations

import pytest

from app.simulate.sipp import CallerScript, start_agent, typed_keys

pytestmark = pytest.mark.e2e

TAKAFUL_TYPES = {"1": "inquiry", "2": "complaint", "3": "service_request", "4": "grievance"}


def test_each_request_type_reaches_the_queue_with_its_label(hotline):
    before = {t: hotline.metric("ivr_queue_offered_total", program="takaful_karama", request_type=t)
              for t in TAKAFUL_TYPES.values()}
    # Takaful & Karama asks for the national ID after the request type.
    callers = [hotline.sipp.call(CallerScript(number="1442", keys=((1200, "1"), (2000, key))
                                              + typed_keys("29001012500015", 2500) + ((2500, "1"),),
                                              hold_ms=16_000, caller_id=f"022555020{key}"), target=hotline.carrier)
               for key in TAKAFUL_TYPES]
    for request_type in TAKAFUL_TYPES.values():
        assert hotline.wait_metric("ivr_queue_offered_total", before[request_type] + 1, timeout=90,
                                   program="takaful_karama",
                                   request_type=request_type) == before[request_type] + 1, request_type
    for caller in callers:
        assert caller.wait(timeout=60) == 0, caller.output()[-2000:]


def test_a_direct_line_skips_the_main_menu_and_the_agent_sees_the_request_type(hotline):
    answered = hotline.metric("ivr_queue_answered_total", program="nasser_bank", request_type="complaint")
    # agent1002 serves Nasser Social Bank only; its one call must carry the headers.
    agent = start_agent(hotline.sipp, user="agent1002", password=hotline.password("1002"), target=hotline.agent_port,
                        talk_ms=1500, calls=1, expect_headers={"X-IVR-Request-Type": "complaint",
                                                               "X-IVR-Program": "nasser_bank"})
    try:
        # 14403 starts in the Nasser Social Bank menu: one key (2, complaint) suffices.
        caller = hotline.sipp.call(CallerScript(number="14403", keys=((1200, "2"),), hold_ms=60_000),
                                   target=hotline.carrier)
        assert hotline.wait_metric("ivr_queue_answered_total", answered + 1, program="nasser_bank",
                                   request_type="complaint") == answered + 1
        assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
        assert agent.uas.wait(timeout=30) == 0, agent.uas.output()[-2000:]
    finally:
        from app.simulate.sipp import stop_agent
        stop_agent(hotline.sipp, agent, password=hotline.password("1002"), target=hotline.agent_port)


def test_star_goes_back_to_the_main_menu(hotline):
    offered = hotline.metric("ivr_queue_offered_total", program="forsa", request_type="service_request")
    # Into Takaful & Karama's menu, * back to the main menu, then Forsa, service request.
    caller = hotline.sipp.call(CallerScript(number="1442", keys=((1200, "1"), (2000, "*"), (2000, "6"), (2000, "3")),
                                            hold_ms=16_000), target=hotline.carrier)
    assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, program="forsa",
                               request_type="service_request") == offered + 1
    assert caller.wait(timeout=60) == 0, caller.output()[-2000:]


def test_three_wrong_keys_fall_back_to_the_programmes_queue_not_a_hang_up(hotline):
    label = dict(program="abnaa_misr", request_type="none")
    offered = hotline.metric("ivr_queue_offered_total", **label)
    exhausted = hotline.metric("ivr_menu_exits_total", hotline="14405", outcome="retries_exhausted")
    # The Abnaa Misr line's menu offers 1-3; 9 three times exhausts the retries.
    # A fourth 9: a key sent at a fixed delay can fall between two prompts on
    # a loaded machine and be lost (seen once in CI); once the caller is
    # queued, 9 does nothing there (only the callback key 1 leaves the queue).
    caller = hotline.sipp.call(CallerScript(number="14405", keys=((1200, "9"), (4500, "9"), (4500, "9"), (4500, "9")),
                                            hold_ms=12_000), target=hotline.carrier)
    assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, **label) == offered + 1
    assert hotline.metric("ivr_menu_exits_total", hotline="14405", outcome="retries_exhausted") == exhausted + 1
    assert caller.wait(timeout=60) == 0, caller.output()[-2000:]


@pytest.mark.long
def test_silence_re_prompts_then_falls_back_to_the_programmes_queue(hotline):
    label = dict(program="addiction_fund", request_type="none")
    offered = hotline.metric("ivr_queue_offered_total", **label)
    # A caller on the Addiction Fund line who never presses a key: the menu,
    # "no input", the menu again... after the third silence, the queue.
    # About 65 s of menus; the caller hangs up (BYE) at 80 s, from the queue.
    caller = hotline.sipp.call(CallerScript(number="14404", hold_ms=80_000), target=hotline.carrier)
    assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, timeout=120, **label) == offered + 1
    assert hotline.metric("ivr_menu_exits_total", hotline="14404", program="addiction_fund",
                          request_type="none", outcome="retries_exhausted") >= 1
    assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
