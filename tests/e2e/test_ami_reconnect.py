"""AMI goes away and comes back: the engine reconnects and counts each call once."""

from __future__ import annotations

import pytest

from app.simulate.sipp import CallerScript

pytestmark = pytest.mark.e2e


def test_a_call_that_ends_while_ami_is_cut_is_counted_once_after_reconnecting(hotline):
    offered = hotline.metric("ivr_queue_offered_total", program="nasser_bank")
    abandoned = hotline.metric("ivr_queue_abandoned_total", program="nasser_bank")
    reconnects = hotline.metric("ivr_ami_reconnects_total")
    caller = hotline.sipp.call(CallerScript(number="1442", keys=((1200, "3"), (2000, "1")), hold_ms=16_000),
                               target=hotline.carrier)
    assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, program="nasser_bank") == offered + 1
    # The network between the engine and Asterisk fails while the caller waits...
    hotline.engine.run(hotline.ami_proxy.cut())
    assert hotline.wait_until(lambda: hotline.metric("ivr_ami_connected") == 0)
    # ...and the caller gives up meanwhile: no AMI event reaches the engine.
    assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
    assert hotline.metric("ivr_queue_abandoned_total", program="nasser_bank") == abandoned
    hotline.engine.run(hotline.ami_proxy.restore())
    assert hotline.wait_until(lambda: hotline.metric("ivr_ami_connected") == 1)
    # The journal read back after the login accounts for the abandon; the
    # re-sync does not count the offer a second time.
    assert hotline.wait_metric("ivr_queue_abandoned_total", abandoned + 1, timeout=20,
                               program="nasser_bank") == abandoned + 1
    assert hotline.metric("ivr_queue_offered_total", program="nasser_bank") == offered + 1
    assert hotline.metric("ivr_ami_reconnects_total") == reconnects + 1


def test_a_caller_waiting_across_a_reconnect_is_offered_once(hotline):
    offered = hotline.metric("ivr_queue_offered_total", program="forsa")
    abandoned = hotline.metric("ivr_queue_abandoned_total", program="forsa")
    duplicates = hotline.metric("ivr_ami_events_total", kind="duplicate")
    caller = hotline.sipp.call(CallerScript(number="1442", keys=((1200, "6"), (2000, "1")), hold_ms=20_000),
                               target=hotline.carrier)
    assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, program="forsa") == offered + 1
    hotline.engine.run(hotline.ami_proxy.cut())
    assert hotline.wait_until(lambda: hotline.metric("ivr_ami_connected") == 0)
    hotline.engine.run(hotline.ami_proxy.restore())
    assert hotline.wait_until(lambda: hotline.metric("ivr_ami_connected") == 1)
    # QueueStatus after the login lists the waiting caller again: a duplicate.
    assert hotline.wait_metric("ivr_ami_events_total", duplicates + 1, kind="duplicate") >= duplicates + 1
    assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
    assert hotline.wait_metric("ivr_queue_abandoned_total", abandoned + 1, timeout=15,
                               program="forsa") == abandoned + 1
    assert hotline.metric("ivr_queue_offered_total", program="forsa") == offered + 1


def test_the_engine_reconnects_by_itself_when_asterisk_restarts(hotline):
    offered = hotline.metric("ivr_queue_offered_total", program="abnaa_misr")
    hotline.asterisk.cli("core restart now")
    assert hotline.wait_until(lambda: hotline.metric("ivr_ami_connected") == 0, timeout=20)
    assert hotline.wait_until(lambda: hotline.metric("ivr_ami_connected") == 1, timeout=60)
    caller = hotline.sipp.call(CallerScript(number="1442", keys=((1200, "5"), (2000, "1")), hold_ms=14_000),
                               target=hotline.carrier)
    assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, program="abnaa_misr") == offered + 1
    assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
