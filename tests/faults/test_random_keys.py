"""Random key scripts through real calls (issue 12, item 9, end to end).

50 callers each press a random script of keys (any of 0-9 * #, at random
gaps, some long silences) and hang up after a random time. Every call must
end in a queue, a callback, the IVR's own answer (a follow-up or a
self-service answer), or the caller's hang-up: never a dead end (Asterisk
hanging up on a caller it did not serve, or a call left in the IVR). The
seed is printed; IVR_KEYS_SEED=<seed> replays a run.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

from core.paths import REPO_ROOT

from fault_stack import PREFIX, clear_members, report, wait_until


def cancel_callback(stack, callback_id: str) -> None:
    subprocess.run([sys.executable, "-m", "app.cli", "callbacks", "cancel", callback_id, "--config",
                    str(stack.config_dir)], cwd=REPO_ROOT, capture_output=True, timeout=60)

CALLS = 50
KEYS = "0123456789*#"
# What a finished call's record may say: a queue (its caller hung up while
# waiting), a callback, the IVR served it, or the caller left the IVR.
SERVED = {"abandoned", "short_abandoned", "callback", "overflow_callback", "self_service", "ivr_hangup"}


def script(rng: random.Random) -> tuple[tuple[int, str], ...]:
    presses = []
    for _ in range(rng.randint(0, 12)):
        gap = rng.choice((rng.randint(200, 1500), rng.randint(1500, 6000), rng.randint(6000, 15000)))
        presses.append((gap, rng.choice(KEYS)))
    return tuple(presses)


def test_fifty_random_key_scripts_never_reach_a_dead_end(stack):
    clear_members(stack)
    seed = int(os.environ.get("IVR_KEYS_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"\nrandom key scripts: IVR_KEYS_SEED={seed}")
    rng = random.Random(seed)
    since = time.time()
    callers = []
    for n in range(CALLS):
        keys = script(rng)
        hold = rng.randint(5_000, 60_000)
        callers.append(stack.callers(calls=1, rate=1, keys=keys, hold_ms=hold, name=f"random{n}",
                                     number=rng.choice(["1442", "1442", "14401", "14403", "105"]),
                                     caller_prefix=f"0100{rng.randrange(10**6):06d}"))
        time.sleep(0.3)
    for traffic in callers:
        traffic.wait(timeout=240)
    # Asterisk hung up first: right only where the IVR served the caller.
    hung_up_by_asterisk = sum(traffic.dropped() for traffic in callers)
    assert wait_until(lambda: len(stack.records_since(since)) >= CALLS, 120), len(stack.records_since(since))
    # No caller is left in the IVR (a callback's placeholder waiting in a
    # queue for an agent is where it should be).
    assert wait_until(lambda: not [c for c in stack.channels() if c[0].startswith("PJSIP/anonymous")
                                   and c[1].startswith("ivr-") and c[5] != "Queue"], 60), stack.channels()
    records = stack.records_since(since)
    outcomes: dict[str, int] = {}
    for r in records:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    figures = stack.figures(f"{CALLS} random key scripts (seed {seed})", placed=CALLS, since=since)
    figures.dropped = hung_up_by_asterisk
    figures.notes = f"outcomes {outcomes}; calls Asterisk ended after serving them: {hung_up_by_asterisk}"
    report(figures)
    # A script ends with the caller's own BYE unless Asterisk served the call
    # (a follow-up or answer it gave, a callback registered) and hung up.
    dead_ends = [r for r in records if r.outcome not in SERVED]
    assert dead_ends == [], (seed, dead_ends)
    assert len({r.uid for r in records}) == CALLS and len(records) == CALLS, seed
    served_by_ivr = outcomes.get("self_service", 0) + outcomes.get("callback", 0) + outcomes.get(
        "overflow_callback", 0)
    assert hung_up_by_asterisk <= served_by_ivr, (seed, hung_up_by_asterisk, outcomes)
    # The callbacks the scripts asked for are cancelled: later tests start with none.
    for callback_id in stack.redis.smembers(f"{PREFIX}callbacks:active"):
        cancel_callback(stack, callback_id.decode())
    stack.hang_up_all()
