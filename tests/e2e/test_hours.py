"""Outside opening hours: the closed path, said in Arabic, with a callback offer."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis

from app.simulate.sipp import CallerScript, typed_keys

pytestmark = pytest.mark.e2e

FRIDAY = datetime(2026, 11, 27, 10, 0, tzinfo=ZoneInfo("Africa/Cairo"))


class ClosedFriday:
    """The engine's clock on a Friday (1442 closed); the callback requests
    made meanwhile, read from the audit stream, are cancelled afterwards (not
    this test's business to call the citizen back once the line opens)."""

    def __init__(self, hotline):
        self.hotline = hotline
        r = hotline.config.service.redis
        self.prefix = r.key_prefix
        self.client = redis.Redis(host=r.host, port=r.port)
        self.stream = f"{r.key_prefix}callbacks"
        last = self.client.xrevrange(self.stream, count=1)
        self.since = last[0][0] if last else b"0"

    def __enter__(self):
        self.hotline.clock.now = FRIDAY
        return self

    def requests(self) -> list[dict]:
        return [fields for _, fields in self.client.xrange(self.stream, min=f"({self.since.decode()}")
                if fields.get(b"event") == b"requested"]

    def number_of(self, entry: dict) -> str:
        """The number a requested callback will call, decrypted as the engine reads it."""
        raw = self.client.hgetall(f"{self.prefix}callback:{entry[b'id'].decode()}")
        return self.hotline.engine.engine.callbacks.from_stored(raw).number

    def __exit__(self, *exc):
        dispatcher = self.hotline.engine.engine.dispatcher
        for entry in self.requests():
            self.hotline.engine.run(dispatcher.cancel(entry[b"id"].decode()))
        self.hotline.clock.now = self.hotline.clock.OPEN


@pytest.mark.long
def test_a_call_on_friday_hears_the_closed_path_and_can_ask_for_a_callback(hotline):
    closed = hotline.metric("ivr_closed_calls_total", hotline="1442")
    callbacks = hotline.metric("ivr_callback_requests_total", hotline="1442", reason="closed")
    offered = sum(hotline.metric("ivr_queue_offered_total", program=q.id) for q in hotline.config.queues)
    with ClosedFriday(hotline) as friday:
        # The closed message, the hours, the offer: 1 accepts it; "we will call
        # you on 0 8 6 ...": 1 confirms. The IVR then ends the call itself (the
        # caller receives the BYE).
        caller = hotline.sipp.call(CallerScript(number="1442", keys=((12_000, "1"), (3_000, "1")), hold_ms=60_000,
                                                caller_id="0862345678"), target=hotline.carrier)
        assert caller.wait(timeout=90) == 0, caller.output()[-2000:]
        assert hotline.metric("ivr_closed_calls_total", hotline="1442") == closed + 1
        assert hotline.metric("ivr_callback_requests_total", hotline="1442", reason="closed") == callbacks + 1
        requests = friday.requests()
        assert len(requests) == 1, requests
        entry = requests[0]
        # The record keeps the number masked; the callback keeps it encrypted (issue 12, item 16).
        assert entry[b"number"] == b"********78" and entry[b"reason"] == b"closed"
        assert friday.number_of(entry) == "0862345678"
        # Closed means closed: nobody was queued, and the callback waits for
        # the line to open (the dispatcher ticks every second).
        time.sleep(2.5)
        assert sum(hotline.metric("ivr_queue_offered_total", program=q.id)
                   for q in hotline.config.queues) == offered
        callback = friday.client.hgetall(f"{friday.prefix}callback:{entry[b'id'].decode()}")
        assert callback[b"state"] == b"waiting", callback


def test_a_withheld_caller_id_outside_hours_is_asked_for_the_number_to_call(hotline):
    """Found reading the code: outside hours an ``anonymous`` caller heard
    "callback registered" and the request was stored as ``number: anonymous``."""
    callbacks = hotline.metric("ivr_callback_requests_total", hotline="1442", reason="closed")
    with ClosedFriday(hotline) as friday:
        # 1 accepts the offer; asked for a number, the caller types it and #,
        # hears it read back and confirms with 1.
        keys = ((12_000, "1"),) + typed_keys("01112223334", 3_000) + ((2_500, "1"),)
        caller = hotline.sipp.call(CallerScript(number="1442", keys=keys, hold_ms=60_000, caller_id="anonymous"),
                                   target=hotline.carrier)
        assert caller.wait(timeout=120) == 0, caller.output()[-2000:]
        assert hotline.metric("ivr_callback_requests_total", hotline="1442", reason="closed") == callbacks + 1
        requests = friday.requests()
        assert len(requests) == 1, requests
        assert requests[0][b"number"] == b"*********34" and requests[0][b"reason"] == b"closed"
        assert friday.number_of(requests[0]) == "01112223334"


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
