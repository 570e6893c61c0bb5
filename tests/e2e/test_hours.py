"""Outside opening hours: the closed path, said in Arabic, with a callback offer."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis

from app.simulate.sipp import CallerScript

pytestmark = pytest.mark.e2e

FRIDAY = datetime(2026, 11, 27, 10, 0, tzinfo=ZoneInfo("Africa/Cairo"))


def test_a_call_on_friday_hears_the_closed_path_and_can_ask_for_a_callback(hotline):
    closed = hotline.metric("ivr_closed_calls_total", hotline="1442")
    callbacks = hotline.metric("ivr_callback_requests_total", hotline="1442", reason="closed")
    offered = sum(hotline.metric("ivr_queue_offered_total", program=q.id) for q in hotline.config.queues)
    r = hotline.config.service.redis
    client = redis.Redis(host=r.host, port=r.port)
    stream = f"{r.key_prefix}callbacks"
    last = client.xrevrange(stream, count=1)
    since = last[0][0] if last else b"0"
    hotline.clock.now = FRIDAY
    dispatcher = hotline.engine.engine.dispatcher
    try:
        # The closed message, the hours, the offer: 1 accepts it. The IVR then
        # ends the call itself (the caller receives the BYE).
        caller = hotline.sipp.call(CallerScript(number="1442", keys=((12_000, "1"),), hold_ms=60_000,
                                                caller_id="0862345678"), target=hotline.carrier)
        assert caller.wait(timeout=90) == 0, caller.output()[-2000:]
        assert hotline.metric("ivr_closed_calls_total", hotline="1442") == closed + 1
        assert hotline.metric("ivr_callback_requests_total", hotline="1442", reason="closed") == callbacks + 1
        requests = [fields for _, fields in client.xrange(stream, min=f"({since.decode()}")
                    if fields.get(b"event") == b"requested"]
        assert len(requests) == 1, requests
        entry = requests[0]
        assert entry[b"number"] == b"0862345678" and entry[b"reason"] == b"closed"
        # Closed means closed: nobody was queued, and the callback waits for
        # the line to open (the dispatcher ticks every second).
        time.sleep(2.5)
        assert sum(hotline.metric("ivr_queue_offered_total", program=q.id)
                   for q in hotline.config.queues) == offered
        callback = client.hgetall(f"{r.key_prefix}callback:{entry[b'id'].decode()}")
        assert callback[b"state"] == b"waiting", callback
    finally:
        # Not this test's business to call the citizen back once the line opens.
        if "entry" in locals():
            hotline.engine.run(dispatcher.cancel(entry[b"id"].decode()))
        hotline.clock.now = hotline.clock.OPEN


def test_a_direct_line_without_a_schedule_is_open_on_friday(hotline):
    offered = hotline.metric("ivr_queue_offered_total", program="forsa")
    hotline.clock.now = FRIDAY
    try:
        # 14406 runs classic AGI: a process starts per call, so the key waits
        # for its first prompt (as in test_classic_agi_calls); a key sent
        # before the script plays anything is lost and the caller would run
        # out of time in the menu (seen once on a loaded machine).
        caller = hotline.sipp.call(CallerScript(number="14406", keys=((3000, "1"),), hold_ms=16_000),
                                   target=hotline.carrier)
        assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, program="forsa") == offered + 1
        assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
    finally:
        hotline.clock.now = hotline.clock.OPEN
