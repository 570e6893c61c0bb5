"""The engine killed, or hung, while real callers come in (issue 12, faults 1 and 2).

No agent answers in these tests: every caller who reaches a queue waits
there until they hang up themselves, so each call must end as exactly one
``abandoned`` record, and a BYE from Asterisk before the caller's own
hang-up is a dropped call.
"""

from __future__ import annotations

import time

from fault_stack import FORSA_INQUIRY, QUEUE, clear_members, ivr_seconds, report, wait_until

def test_kill_9_of_the_engine_during_a_burst_of_100_calls(stack):
    """Fault 1: the engine is killed (-9) while 100 callers arrive at 5 a
    second, and started again 10 s later. Callers in the menus when it died,
    and those who arrive while it is down, go to the fallback queue (the
    dialplan's own way); each of the 100 is counted exactly once: by the
    engine that saw it end, or by the new one from the journal and the
    re-sync."""
    clear_members(stack)
    since = time.time()
    traffic = stack.callers(calls=100, rate=5, keys=FORSA_INQUIRY, hold_ms=30_000, name="kill9")
    # Kill it once 30 callers are on the line, many of them in the menus.
    assert wait_until(lambda: len(stack.channels()) >= 30, 60)
    stack.engine.kill9()
    down_at = time.monotonic()
    assert wait_until(lambda: len(stack.channels()) >= 70, 60)
    recover = stack.engine.start()
    assert traffic.wait(timeout=180) is not None
    assert wait_until(lambda: len(stack.records_since(since)) >= 100, 90), len(stack.records_since(since))
    figures = stack.figures("engine kill -9 during 100 calls", placed=100, since=since, traffic=traffic)
    figures.recover_seconds = round(time.monotonic() - down_at, 1)
    # Announcements resume with the new engine: callers who joined the queue
    # after it started heard their position (whispered by call file).
    announced = stack.engine.metric("ivr_queue_announcements_total", program=QUEUE, kind="join") or 0
    figures.notes = (f"engine down {round(figures.recover_seconds - recover, 1)} s, then {recover:.1f} s to serve; "
                     f"{announced:.0f} join announcements by the restarted engine")
    report(figures)
    assert announced >= 1
    assert figures.dropped == 0
    assert figures.reached_queue == 100
    # Exactly once: one record per call, no call without one, none twice.
    assert figures.distinct_calls == 100
    assert figures.records == 100
    assert sum(figures.counted.values()) == 100
    assert set(figures.counted) <= {"abandoned", "short_abandoned"}


def test_a_waiting_caller_who_presses_the_callback_key_without_the_engine_keeps_their_place(stack):
    """Fault 1, as a new user found it: with the engine killed, a caller who
    pressed 1 in the queue left it (EXITWITHKEY) and was put back at the tail
    (3 -> 5). The dialplan now puts them back where Queue() said they were."""
    clear_members(stack)
    stack.engine.kill9()
    queue = stack.config.hotline("1442").fallback_queue  # no engine: every caller waits there
    since = time.time()
    try:
        stack.callers(calls=2, rate=2, keys=(), hold_ms=120_000, name="ahead")
        assert wait_until(lambda: len(stack.queue_callers(queue)) == 2, 30)
        # The third caller presses the callback key 9 s after the answer.
        stack.callers(calls=1, rate=1, keys=((9000, "1"),), hold_ms=120_000, name="presses")
        assert wait_until(lambda: len(stack.queue_callers(queue)) == 3, 30)
        third = stack.queue_callers(queue)[2]
        stack.callers(calls=2, rate=2, keys=(), hold_ms=120_000, name="behind")
        assert wait_until(lambda: len(stack.queue_callers(queue)) == 5, 30)
        before = stack.queue_callers(queue)
        assert before[2] == third

        def pressed_and_back() -> bool:
            exits = [f for f in stack.queue_log() if f[0].isdigit() and int(f[0]) >= int(since) - 1
                     and len(f) > 4 and f[4] == "EXITWITHKEY"]
            return bool(exits) and len(stack.queue_callers(queue)) == 5

        assert wait_until(pressed_and_back, 30)
        after = stack.queue_callers(queue)
        assert after == before, (before, after)
        # queue_log says so too: left at 3, back at 3.
        log = [f for f in stack.queue_log() if f[0].isdigit() and int(f[0]) >= int(since) - 1]
        exit_line = next(f for f in log if f[4] == "EXITWITHKEY")
        assert exit_line[5:7] == ["1", "3"], exit_line      # key 1, position 3
    finally:
        stack.hang_up_all()
        stack.engine.start()


def test_a_hung_engine_holds_no_caller_in_silence(stack):
    """Fault 2: the engine stopped (SIGSTOP) for 30 s while 40 callers arrive.
    Asterisk waits for an AGI peer for ever; the deadline on every AGI step
    (the dialplan's, re-armed by the engine) moves each caller on to a queue
    within seconds: the one they chose if the IVR had set it, else the
    fallback. After SIGCONT every call is counted once."""
    from core.contract import AGI_FIRST_COMMAND_SECONDS, AGI_STEP_SLACK_SECONDS

    clear_members(stack)
    since = time.time()
    traffic = stack.callers(calls=40, rate=2, keys=FORSA_INQUIRY, hold_ms=45_000, name="sigstop")
    assert wait_until(lambda: len(stack.channels()) >= 8, 60)
    stack.engine.pause()
    stopped_at = time.time()
    try:
        assert wait_until(lambda: time.time() - stopped_at >= 30, 40, interval=1.0)
    finally:
        stack.engine.resume()
    assert traffic.wait(timeout=180) is not None
    assert wait_until(lambda: len(stack.records_since(since)) >= 40, 120), len(stack.records_since(since))
    held = ivr_seconds(stack, since)
    during = {uid: s for uid, s in held.items() if stopped_at + 1 <= float(uid) <= stopped_at + 28}
    before = {uid: s for uid, s in held.items() if float(uid) < stopped_at}
    figures = stack.figures("engine hung (SIGSTOP 30 s) during 40 calls", placed=40, since=since, traffic=traffic)
    figures.recover_seconds = max(held.values()) if held else None
    figures.notes = (f"longest IVR hold {max(held.values()):.0f} s; callers arriving while it was stopped: "
                     f"{len(during)}, held at most {max(during.values(), default=0):.0f} s")
    report(figures)
    assert figures.dropped == 0
    assert figures.reached_queue == 40
    assert figures.distinct_calls == 40 and figures.records == 40
    assert set(figures.counted) <= {"abandoned", "short_abandoned"}
    # Callers who arrived while the engine was stopped reached the fallback
    # queue after the first command's deadline (queue_log has whole seconds).
    assert during, "no caller arrived while the engine was stopped"
    assert max(during.values()) <= AGI_FIRST_COMMAND_SECONDS + 2, during
    # Callers in the menus when it stopped waited for the step in progress
    # and the slack, never for the whole stop.
    assert max(before.values()) < 30 - AGI_STEP_SLACK_SECONDS, before
