"""DTMF fuzzed through the menus (issue 12, item 9, the unit half): random
key streams through the hotline's flow, no I/O.

A caller is a stream Hypothesis draws: keys during a prompt (barge-in),
silence (the prompt ends, the wait times out), keys after it, keys no menu
has (``*``, ``#``, ``A``), digit strings where an entry is read (a national
ID, a case reference, a callback number: right, wrong, empty), and a hang-up
anywhere. When the stream runs out the caller says nothing more. Every line
of the demo configuration is called, open and closed.

What must hold for every stream: the call ends in a queue that exists
(``IVR_QUEUE``), a callback or the closed message (``IVR_ACTION=closed``),
a served self-service (``IVR_ACTION=done``), or the caller's own hang-up
(``CallerHungUp``, and only when the stream hung up); never another
exception, and never an endless loop (a caller who says nothing more is
done with within ``MAX_STEPS`` prompts). The menu state machine alone: from
any state, ``retries`` silences reach a route.

Replay: derandomised (the same streams every run, so a failure fails
again); a failure prints its ``@reproduce_failure(...)`` blob: paste it above
the test to replay that stream.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from scripted_channel import ScriptedChannel

from cases.reference import new_reference
from core.channel import CallerHungUp
from core.configuration import load_config
from core.contract import IvrAction, Var
from ivr.flow.follow_up import CaseStatus, LookupUnavailable
from ivr.flow.hotline import HotlineHandler
from ivr.flow.menu import MenuWalk
from metrics.registry import EngineMetrics
from queues.callbacks.store import MemoryCallbackStore
from queues.calls.store import MemoryCallStateStore

DEMO = Path(__file__).resolve().parents[2] / "config"
MAX_STEPS = 400            # prompts, waits and entries after the stream ran out
OPEN = datetime(2025, 6, 1, 7, 0, tzinfo=timezone.utc)      # Sunday 10:00 in Cairo
CLOSED = datetime(2025, 6, 6, 7, 0, tzinfo=timezone.utc)    # Friday: the ministry's lines are closed
VALID_ID = "29001012500015"
REFERENCE = new_reference(lambda n: n // 7)           # a case the lookup knows
MISSING = new_reference(lambda n: n // 5)             # a well-formed reference of no case
BROKEN = new_reference(lambda n: n // 2)              # the lookup fails (database away)
KEY = b"unit-fuzz-national-id-key"

fuzzed = settings(max_examples=300, derandomize=True, print_blob=True, database=None, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


@pytest.fixture(scope="module")
def metrics(config):
    return EngineMetrics(config, registry=CollectorRegistry())


class Hangup(Exception):
    """Stands for the caller's hang-up in a drawn stream (made a fresh CallerHungUp when used)."""


# What the caller does at one prompt, wait or entry.
STEPS = st.one_of(
    st.none(),
    st.sampled_from(list("0123456789*#")),
    st.sampled_from(["A", "D"]),                                  # DTMF keys no menu has
    st.sampled_from([VALID_ID, VALID_ID + "#", REFERENCE, MISSING, BROKEN, "01001234567", "0225550100",
                     "29013312500015", "0" * 14, ""]),
    st.text("0123456789*#", min_size=2, max_size=20),
    st.just(Hangup()),
)
STREAMS = st.lists(STEPS, max_size=60)
CALLERS = st.sampled_from(["01001234567", "0862345678", "", "anonymous", "+201001234567", "٠١٠٠١٢٣٤٥٦٧"])


def caller(stream: list) -> ScriptedChannel:
    """The stream, then silence; more than MAX_STEPS after it is an endless flow."""
    script = [CallerHungUp("the caller hung up") if isinstance(s, Hangup) else s for s in stream]
    return script + [None] * MAX_STEPS


async def case_status(tenant: str, reference: str) -> CaseStatus | None:
    if reference == BROKEN:
        raise LookupUnavailable("database away")
    if reference != REFERENCE:
        return None
    return CaseStatus(reference=REFERENCE, status="in_progress", program="takaful_karama",
                      resolution_due=datetime(2025, 6, 20, tzinfo=timezone.utc), resolved_at=None, overdue=False,
                      is_open=True)


def key_paths(config, menu_id: str, seen: tuple[str, ...] = ()) -> list[list[str]]:
    """Every sequence of keys from ``menu_id`` to one of its leaves (a queue,
    a follow-up, a self-service answer): so that random streams start deep
    in the tree as often as at its top."""
    paths = []
    for key, option in config.menus[menu_id].options.items():
        if option.menu is not None and option.menu not in seen:
            paths += [[key, *rest] for rest in key_paths(config, option.menu, (*seen, menu_id))]
        else:
            paths.append([key])
    return paths


@st.composite
def calls(draw, config):
    number = draw(st.sampled_from(["1442", "14401", "14402", "14403", "14404", "14405", "14406", "105"]))
    path = draw(st.one_of(st.just([]), st.sampled_from(key_paths(config, config.hotline(number).menu))))
    return number, path + draw(STREAMS)


@fuzzed
@given(call=st.data(), closed=st.booleans(), callerid=CALLERS)
async def test_every_call_ends_in_a_queue_a_callback_an_end_or_the_callers_hang_up(config, metrics, call, closed,
                                                                                   callerid):
    number, stream = call.draw(calls(config))
    handler = HotlineHandler(config=config, metrics=metrics, store=MemoryCallStateStore(),
                             callbacks=MemoryCallbackStore(), national_id_key=KEY, case_status=case_status,
                             clock=lambda: CLOSED if closed else OPEN)
    script = caller(stream)
    channel = ScriptedChannel(script, env={"arg_1": number, "uniqueid": "1733000000.1", "callerid": callerid})
    try:
        await handler(channel)
    except CallerHungUp:
        used = len(script) - channel.remaining
        assert any(isinstance(s, CallerHungUp) for s in script[:used]), "a hang-up the caller did not make"
        return
    assert channel.remaining > 0, "the caller's silence never ended the call"
    queue = channel.variables.get(Var.QUEUE)
    action = channel.variables.get(Var.ACTION)
    if queue is not None:
        assert config.queue(queue) is not None, f"IVR_QUEUE={queue!r}: no such queue"
        assert action is None, channel.variables
    else:
        assert action in (IvrAction.CLOSED, IvrAction.DONE), f"a dead end: {channel.variables}, {channel.calls[-5:]}"


@fuzzed
@given(number=st.sampled_from(["1442", "14401", "14403", "105"]),
       keys=st.lists(st.one_of(st.none(), st.sampled_from(list("0123456789*#AD"))), max_size=40))
def test_from_any_menu_state_its_retries_in_silence_reach_a_route(config, number, keys):
    hotline = config.hotline(number)
    walk = MenuWalk.start(config, hotline)
    for key in keys:
        if walk.route is not None:
            break
        walk = walk.on_key(key)
        assert walk.menu_id in config.menus
    for _ in range(walk.menu.retries):
        if walk.route is not None:
            break
        walk = walk.on_key(None)
    assert walk.route is not None, f"{walk.menu.retries} silences in {walk.menu_id} reached no route"
    assert config.queue(walk.route.queue) is not None
