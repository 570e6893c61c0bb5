"""Queued callbacks through the real Asterisk, beyond the one that connects
at the first try (tests/e2e/test_distribution.py): a number typed by the
caller (after a wrong one), a citizen who never answers, and a callback
that outlives a restart of the service.

The e2e configuration (conftest.e2e_config) calls the citizen twice, 5 s
apart, ringing 8 s each time. Citizens' phones are SIPp behind the outbound
carrier endpoint (127.0.0.1:5090).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import re

import pytest

from app.tools import callbacks_tool
from core.paths import Paths
from app.simulate import random_phone_number
from app.simulate.sipp import CallerScript, start_citizen_phone, typed_keys
from queues.callbacks import Callback

pytestmark = pytest.mark.e2e

# On the Nasser Social Bank direct line: key 1 (inquiry) puts the caller in
# the queue; the join announcement ends with the callback offer (key 1).
ASK_FOR_A_CALLBACK = ((1200, "1"), (14_000, "1"))


def callbacks_to(hotline, number: str) -> list[Callback]:
    """The callbacks (Redis) to ``number``, oldest first."""
    engine = hotline.engine.engine

    async def find() -> list[Callback]:
        found = []
        async for key in engine.redis.scan_iter(match=engine.callbacks.hash_key("*")):
            cb = engine.callbacks.from_stored(await engine.redis.hgetall(key))   # the number decrypted
            if cb.number == number:
                found.append(cb)
        return sorted(found, key=lambda cb: int(cb.id))

    return hotline.engine.run(find())


def the_callback_to(hotline, number: str) -> Callback | None:
    found = callbacks_to(hotline, number)
    assert len(found) <= 1, [cb.id for cb in found]
    return found[0] if found else None


def state_of(hotline, number: str) -> str | None:
    cb = the_callback_to(hotline, number)
    return cb.state if cb else None


def audit_events(hotline, callback_id: str) -> list[str]:
    """What the audit stream says happened to one callback, in order."""
    engine = hotline.engine.engine

    async def read() -> list[str]:
        entries = await engine.redis.xrange(engine.callbacks.key)
        return [fields.get(b"event", b"requested").decode() for _, fields in entries
                if fields.get(b"id", b"").decode() == callback_id]

    return hotline.engine.run(read())


def callbacks_cli(hotline, action: str, callback_id: str | None = None, state: str = "recent"):
    """``ivr callbacks <action>`` against the test's Redis and Asterisk: (exit status, stdout, stderr)."""
    args = argparse.Namespace(action=action, callback_id=callback_id, state=state, program=None, limit=50,
                              format="text")
    out, err = io.StringIO(), io.StringIO()
    code = asyncio.run(callbacks_tool(args, hotline.config, Paths.from_environment(), out=out, err=err))
    return code, out.getvalue(), err.getvalue()


def ask_for_a_callback(hotline, caller_id: str, then: tuple[tuple[int, str], ...]):
    """A caller on 14403 who asks for a callback while waiting, does ``then``,
    and is hung up on by the service once the callback is registered."""
    requested = hotline.metric("ivr_callback_requests_total", hotline="14403", reason="queue")
    caller = hotline.sipp.call(CallerScript(number="14403", keys=ASK_FOR_A_CALLBACK + then, hold_ms=80_000,
                                            caller_id=caller_id), target=hotline.carrier)
    assert hotline.wait_metric("ivr_callback_requests_total", requested + 1, timeout=120, hotline="14403",
                               reason="queue") == requested + 1, caller.output()[-2000:]
    # The service ends the call after "your request is registered" (SIPp exits 0
    # on the service's BYE; it would fail on its own hold timeout).
    assert caller.wait(timeout=60) == 0, caller.output()[-2000:]


@pytest.mark.long
def test_a_typed_number_nobody_answers_is_tried_again_then_ends_no_answer(hotline, phones):
    """The caller's own number is not callable, so they are asked for one.
    They type 0123 (not an Egyptian number: said so, asked again), then a
    mobile number, which is read back and confirmed. When an agent takes the
    callback, the engine calls that number; nobody answers, the agent is
    told, and the callback is tried once more (attempts: 2 in these tests)
    before it ends as no_answer. Nothing is lost: every step is in Redis."""
    mobile = random_phone_number(mobile=True)
    no_answer = hotline.metric("ivr_callbacks_total", program="nasser_bank", outcome="no_answer")
    # The caller ID "12345" cannot be called back: the service asks for a number.
    ask_for_a_callback(hotline, "12345", then=typed_keys("0123", 3000) + typed_keys(mobile, 7000)
                       + ((4000, "1"),))
    cb = the_callback_to(hotline, mobile)
    assert cb is not None, "the typed number is not the callback's number"
    assert (cb.hotline, cb.reason, cb.queue) == ("14403", "queue", "nasser_bank")
    citizen = start_citizen_phone(hotline.sipp, port=hotline.config.service.carrier_outbound.port,
                                  answer=False, calls=2)
    try:
        agent = phones("1002", talk_ms=60_000)
        assert hotline.wait_metric("ivr_callbacks_total", no_answer + 1, timeout=150, program="nasser_bank",
                                   outcome="no_answer") == no_answer + 1, audit_events(hotline, cb.id)
        assert citizen.wait(timeout=30) == 0, citizen.output()[-2000:]
    finally:
        citizen.stop()
    # Two calls to the typed number, each shown as coming from the hotline;
    # the agent's phone rang for each.
    assert citizen.invites() == [(mobile, "14403"), (mobile, "14403")]
    assert len(agent.callers()) == 2
    done = the_callback_to(hotline, cb.number)
    assert (done.state, done.outcome, done.attempts, done.last_status) == ("done", "no_answer", 2, "NOANSWER")
    events = audit_events(hotline, cb.id)
    assert events[0] == "requested" and events[-1] == "no_answer", events
    assert events.count("agent") == 2 and "retry" in events, events
    # A supervisor sees it, masked, with its history.
    code, out, err = callbacks_cli(hotline, "show", cb.id)
    assert code == 0, err
    assert "no_answer" in out and "retry" in out and mobile not in out, out


def _hang_up_placeholders(hotline) -> list[str]:
    """Hang up every callback placeholder in Asterisk, as a crash would lose them."""
    names = [line.split("!", 1)[0] for line in hotline.asterisk.cli("core show channels concise").splitlines()
             if re.match(r"Local/\d+a\d+@ivr-callback-hold-", line)]
    for name in names:
        hotline.asterisk.cli(f"channel request hangup {name}")
    return names


def test_a_callback_survives_restarts_of_the_service(hotline, phones):
    """A callback waits in the queue for an agent (its placeholder holds the
    citizen's place) while the service restarts twice: once with the
    placeholder kept by Asterisk (it is left alone), once with the
    placeholder gone as well (it is placed again). Then an agent is free and
    the citizen is called back: both legs connected."""
    mobile = random_phone_number(mobile=True)
    # The caller's own mobile number is offered: 1 confirms it.
    ask_for_a_callback(hotline, mobile, then=((14_000, "1"),))
    assert hotline.wait_until(lambda: state_of(hotline, mobile) == "queued", 30)
    cb = the_callback_to(hotline, mobile)

    # 1. The service restarts; Asterisk keeps the placeholder in the queue.
    engine = hotline.engine.restart()
    assert hotline.wait_until(lambda: engine.resync.count >= 1, 30)
    kept = the_callback_to(hotline, mobile)
    assert (kept.state, kept.placement) == ("queued", cb.placement), kept

    # 2. The service restarts and the placeholder is lost meanwhile.
    lost = []
    engine = hotline.engine.restart(while_down=lambda: lost.extend(_hang_up_placeholders(hotline)))
    assert len(lost) == 2, lost   # the two halves of the Local channel
    assert hotline.wait_until(lambda: engine.resync.count >= 1, 30)
    assert hotline.wait_until(lambda: the_callback_to(hotline, mobile).placement == cb.placement + 1
                              and the_callback_to(hotline, mobile).state == "queued", 30), \
        audit_events(hotline, cb.id)
    assert "recovered" in audit_events(hotline, cb.id)

    # 3. An agent is free: the agent first, then the citizen.
    citizen = start_citizen_phone(hotline.sipp, port=hotline.config.service.carrier_outbound.port,
                                  talk_ms=4000, calls=1)
    try:
        agent = phones("1002", talk_ms=8000)
        # A new service, new counters: this is its first connected callback.
        assert hotline.wait_metric("ivr_callbacks_total", 1, timeout=90, program="nasser_bank",
                                   outcome="connected") == 1, audit_events(hotline, cb.id)
        assert citizen.wait(timeout=30) == 0, citizen.output()[-2000:]
    finally:
        citizen.stop()
    assert citizen.invites() == [(mobile, "14403")]
    assert len(agent.callers()) == 1
    done = the_callback_to(hotline, mobile)
    assert (done.state, done.outcome, done.attempts) == ("done", "connected", 1), done


def test_a_supervisor_cancels_a_waiting_callback(hotline):
    """``ivr callbacks cancel``: the placeholder leaves the queue in Asterisk,
    the engine counts the cancellation, and nobody is called."""
    mobile = random_phone_number(mobile=True)
    cancelled = hotline.metric("ivr_callbacks_total", program="nasser_bank", outcome="cancelled")
    ask_for_a_callback(hotline, mobile, then=((14_000, "1"),))
    assert hotline.wait_until(lambda: state_of(hotline, mobile) == "queued", 30)
    cb = the_callback_to(hotline, mobile)
    assert "nasser_bank has 1 calls" in hotline.asterisk.cli("queue show nasser_bank")
    code, out, err = callbacks_cli(hotline, "cancel", cb.id)
    assert code == 0, err
    assert "cancelled (was queued)" in out and mobile not in out, out
    assert hotline.wait_until(lambda: "nasser_bank has 0 calls" in hotline.asterisk.cli("queue show nasser_bank"),
                              15)
    assert hotline.wait_metric("ivr_callbacks_total", cancelled + 1, timeout=15, program="nasser_bank",
                               outcome="cancelled") == cancelled + 1
    assert (state_of(hotline, mobile), the_callback_to(hotline, mobile).outcome) == ("done", "cancelled")
    code, out, err = callbacks_cli(hotline, "cancel", cb.id)
    assert code == 2 and "cancelled" in err, err
