"""Real calls through Asterisk: SIPp callers on 5080, SIPp agents on 5060.

Each test reads counters before and after its call, so the tests are
independent of each other and of their order.
"""

from __future__ import annotations

import asyncio

import pytest

from app.simulate.sipp import CallerScript, start_agent, stop_agent, typed_keys

pytestmark = pytest.mark.e2e


def test_a_caller_presses_1_and_an_agent_answers(hotline):
    offered = hotline.metric("ivr_queue_offered_total", program="takaful_karama")
    answered = hotline.metric("ivr_queue_answered_total", program="takaful_karama")
    abandoned = hotline.metric("ivr_queue_abandoned_total", program="takaful_karama")
    agent = start_agent(hotline.sipp, user="agent1001", password=hotline.password("1001"),
                        target=hotline.agent_port, talk_ms=2000)
    try:
        # 1 Takaful & Karama, 1 inquiry, the national ID and #, 1 to confirm it.
        keys = ((1200, "1"), (2000, "1")) + typed_keys("29001012500015", 2500) + ((2500, "1"),)
        caller = hotline.sipp.call(CallerScript(number="1442", keys=keys, hold_ms=60_000), target=hotline.carrier)
        assert hotline.wait_metric("ivr_queue_answered_total", answered + 1, timeout=90,
                                   program="takaful_karama") == answered + 1
        # The agent hangs up after talking; the caller's scenario ends cleanly.
        assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
    finally:
        stop_agent(hotline.sipp, agent, password=hotline.password("1001"), target=hotline.agent_port)
    assert hotline.metric("ivr_queue_offered_total", program="takaful_karama") == offered + 1
    # A call that was answered is not an abandon when it ends.
    assert hotline.metric("ivr_queue_abandoned_total", program="takaful_karama") == abandoned


def test_b_caller_presses_3_and_hangs_up_while_waiting(hotline):
    offered = hotline.metric("ivr_queue_offered_total", program="nasser_bank")
    abandoned = hotline.metric("ivr_queue_abandoned_total", program="nasser_bank")
    answered = hotline.metric("ivr_queue_answered_total", program="nasser_bank")
    # No Nasser Bank agent is logged in: the caller waits, then gives up.
    caller = hotline.sipp.call(CallerScript(number="1442", keys=((1200, "3"), (2000, "1")), hold_ms=16_000),
                               target=hotline.carrier)
    assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, program="nasser_bank") == offered + 1
    assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
    assert hotline.wait_metric("ivr_queue_abandoned_total", abandoned + 1, timeout=15,
                               program="nasser_bank") == abandoned + 1
    assert hotline.metric("ivr_queue_answered_total", program="nasser_bank") == answered


def test_c_wrong_key_then_right_key_reaches_the_queue(hotline):
    offered = hotline.metric("ivr_queue_offered_total", program="addiction_fund")
    exits = hotline.metric("ivr_menu_exits_total", hotline="1442", program="addiction_fund", outcome="choice")
    # 9 is not on the menu: the caller hears the invalid-option prompt and the
    # menu again, and presses 4 during it, then 1 (inquiry) in the next menu.
    caller = hotline.sipp.call(CallerScript(number="1442", keys=((1200, "9"), (5000, "4"), (2000, "1")),
                                            hold_ms=18_000),
                               target=hotline.carrier)
    assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, program="addiction_fund") == offered + 1
    assert hotline.metric("ivr_menu_exits_total", hotline="1442", program="addiction_fund",
                          outcome="choice") == exits + 1
    assert caller.wait(timeout=60) == 0, caller.output()[-2000:]


def test_d_with_the_fastagi_service_stopped_the_call_reaches_the_default_queue(hotline):
    offered = hotline.metric("ivr_queue_offered_total", program="shared")
    abandoned = hotline.metric("ivr_queue_abandoned_total", program="shared")
    fastagi = hotline.engine.engine.fastagi
    hotline.engine.run(fastagi.close())
    try:
        caller = hotline.sipp.call(CallerScript(number="1442", hold_ms=6_000), target=hotline.carrier)
        assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, program="shared") == offered + 1
        assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
        assert hotline.wait_metric("ivr_queue_abandoned_total", abandoned + 1, timeout=15,
                                   program="shared") == abandoned + 1
    finally:
        hotline.engine.run(fastagi.start())


def test_a_fastagi_peer_that_dies_mid_call_still_leaves_the_caller_queued(hotline):
    """Our service's socket closes in the middle of the menu: the dialplan falls back."""
    offered = hotline.metric("ivr_queue_offered_total", program="shared")
    fastagi = hotline.engine.engine.fastagi
    port = hotline.config.service.fastagi.port

    async def broken(reader, writer):
        while (await reader.readline()).strip():
            pass  # the AGI environment
        writer.write(b'STREAM FILE "ivr/welcome-1442" "0123456789*#"\n')
        await writer.drain()
        await reader.readline()
        writer.close()  # crash mid-prompt

    async def start_broken():
        return await asyncio.start_server(broken, "127.0.0.1", port, reuse_address=True)

    hotline.engine.run(fastagi.close())
    server = hotline.engine.run(start_broken())
    try:
        # The welcome prompt lasts about 6.5 s; the caller stays longer.
        caller = hotline.sipp.call(CallerScript(number="1442", hold_ms=14_000), target=hotline.carrier)
        assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, program="shared") == offered + 1
        assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
    finally:
        server.close()
        hotline.engine.run(server.wait_closed())
        hotline.engine.run(fastagi.start())


def test_a_number_that_is_not_a_hotline_is_refused_with_404(hotline):
    caller = hotline.sipp.call(CallerScript(number="5555", expect="404"), target=hotline.carrier)
    assert caller.wait(timeout=30) == 0, caller.output()[-2000:]


def test_an_anonymous_call_on_the_agent_port_is_refused(hotline):
    caller = hotline.sipp.call(CallerScript(number="1442", expect="403"), target=hotline.agent_port)
    assert caller.wait(timeout=30) == 0, caller.output()[-2000:]


def test_a_caller_who_hangs_up_during_the_menu_is_logged_and_never_queued(hotline):
    offered = sum(hotline.metric("ivr_queue_offered_total", program=q.id) for q in hotline.config.queues)
    hangups = hotline.metric("ivr_fastagi_sessions_total", route="hotline", outcome="hangup")
    # Hangs up 2.5 s into the 6.5 s welcome prompt.
    caller = hotline.sipp.call(CallerScript(number="1442", hold_ms=2_500), target=hotline.carrier)
    assert caller.wait(timeout=30) == 0, caller.output()[-2000:]
    assert hotline.wait_metric("ivr_fastagi_sessions_total", hangups + 1, timeout=15,
                               route="hotline", outcome="hangup") == hangups + 1
    assert sum(hotline.metric("ivr_queue_offered_total", program=q.id) for q in hotline.config.queues) == offered
