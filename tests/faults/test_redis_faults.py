"""Redis stopped for 60 s while real callers come in, then started again with
its append-only file (issue 12, fault 3)."""

from __future__ import annotations

import time

from fault_stack import FORSA_INQUIRY, QUEUE, clear_members, ivr_seconds, report, wait_until


def test_redis_stopped_for_60_s_loses_no_caller_and_no_fact(stack):
    """Callers still reach the queue they chose (Forsa, not the fallback), with
    no wait on Redis in the menus; the live figures say they are stale; once
    Redis is back every call is counted once, with the programme it chose."""
    clear_members(stack)
    since = time.time()
    traffic = stack.callers(calls=60, rate=1, keys=FORSA_INQUIRY, hold_ms=30_000, name="redis-down")
    assert wait_until(lambda: len(stack.channels()) >= 10, 60)
    stack.redis_server.stop()
    stopped_at = time.time()
    try:
        assert wait_until(lambda: stack.engine.metric("ivr_live_figures_up") == 0, 30)
        assert wait_until(lambda: time.time() - stopped_at >= 60, 70, interval=1.0)
    finally:
        stack.redis_server.start()
    back_at = time.monotonic()
    assert wait_until(lambda: stack.engine.metric("ivr_live_figures_up") == 1, 60)
    assert traffic.wait(timeout=180) is not None
    assert wait_until(lambda: len(stack.records_since(since)) >= 60, 180), len(stack.records_since(since))
    recovered = time.monotonic() - back_at
    held = ivr_seconds(stack, since)
    during = [s for uid, s in held.items() if stopped_at + 1 <= float(uid) <= stopped_at + 58]
    outside = [s for uid, s in held.items() if not stopped_at <= float(uid) <= stopped_at + 60]
    entered = {f[2] for f in stack.queue_log() if len(f) > 4 and f[4] == "ENTERQUEUE" and f[0].isdigit()
               and int(f[0]) >= int(since) - 1}
    figures = stack.figures("Redis stopped 60 s during 60 calls", placed=60, since=since, traffic=traffic)
    figures.recover_seconds = round(recovered, 1)
    figures.notes = (f"IVR hold during the outage: at most {max(during, default=0):.0f} s "
                     f"(outside it: at most {max(outside, default=0):.0f} s); queues entered: {sorted(entered)}")
    report(figures)
    assert figures.dropped == 0
    assert figures.reached_queue == 60
    assert entered == {QUEUE}, entered          # the queue they chose, never the fallback
    assert during and max(during) <= max(outside) + 1, (during, outside)
    assert figures.distinct_calls == 60 and figures.records == 60
    assert set(figures.counted) <= {"abandoned", "short_abandoned"}
    records = stack.records_since(since)
    assert {r.program for r in records} == {QUEUE}
    assert {r.request_type for r in records} == {"inquiry"}
