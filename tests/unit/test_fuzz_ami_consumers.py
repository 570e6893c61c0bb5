"""AMI events fuzzed into every consumer (issue 12, item 8).

The sessions recorded from the real Asterisk (``tests/data/ami/``) are
replayed through ``parse_event`` and the consumers as ``ivr serve`` wires
them (accounting, the agents' tracker, who waits where, the callbacks'
dispatcher, the desktop's pops; tests/unit/recorded_replay.py), with
Hypothesis changing the stream:

* **noise**: mutated copies of recorded events put anywhere in the stream,
  about calls, agents and callbacks that are *not* the recorded ones (their
  ids, channels, interfaces and callback ids replaced), with fields dropped,
  values of the wrong type (numbers, None, lists, bytes), huge values (100,000
  characters, 1e308, nan, negative times), other event names, the same noise
  event twice. Nothing may raise, and the recorded calls come out exactly as
  in the clean replay: their facts, their call records, the callbacks'
  outcomes, the agents' records, the pops on the agents' screens.
* **the recorded calls' own events, again and out of order**: events
  delivered twice (the same delivery retried, or a new delivery as after an
  AMI reconnect), and neighbouring events swapped. Exactly-once counting:
  every counter, every call record, every outcome is the clean replay's.

Replay: derandomised (the same examples every run, so a failure fails
again); a failure prints its ``@reproduce_failure(...)`` blob: paste it above
the test to replay that stream.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from recorded_replay import SESSIONS, Replay, recorded_config, session

from desktop.pops import CallPops, PopHub
from metrics.registry import EngineMetrics
from queues.ami.recording import read_session
from queues.priority import DEFAULT_CALLER_KEY, hash_caller

NAMES = [p.stem for p in SESSIONS]
# The identity of a call, a channel, an agent or a callback in an event.
CALL_IDS = ("Uniqueid", "Linkedid", "CallUid", "DestUniqueid", "DestLinkedid")
OTHER_IDS = ("Channel", "DestChannel", "Interface", "MemberName", "StateInterface", "Location", "Name",
             "CallbackId", "ActionID", "CallerIDNum", "DestCallerIDNum", "Member", "Key")
WRONG = [None, 0, -1, 3.5, float("nan"), [], ["x"], {"a": 1}, b"\xff", True, "", " ", "nan", "inf", "-inf", "1e400",
         "-1", "0", "١٢", "²", "0x10", "1" * 5000, "x" * 100_000, "1e308", "-1796239279.7", "\x00"]

fuzzed = settings(max_examples=60, derandomize=True, print_blob=True, database=None, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                         HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def config():
    return recorded_config()


@dataclass
class Recording:
    name: str
    records: list[dict]
    events: list[int]          # positions of the events among the records
    call_ids: frozenset[str]   # every call id the recording has


def recording(name: str) -> Recording:
    records = list(read_session(session(name)))
    events = [i for i, r in enumerate(records) if r["kind"] == "event"]
    ids = set()
    for r in records:
        for headers in [r.get("headers", {}), *r.get("messages", [])]:
            ids.update(str(headers[k]) for k in CALL_IDS if headers.get(k))
    return Recording(name, records, events, frozenset(ids))


RECORDINGS = {name: recording(name) for name in NAMES}


class CountingSpy:
    """Stands for EngineMetrics in a replay: each count and each observation
    goes to the real metric and is tallied in ``counts`` by metric and labels.
    (One EngineMetrics serves every example: building one, with its label
    sets filled in, and reading it back each cost a third of a second.)"""

    def __init__(self, metrics: EngineMetrics):
        self._metrics = metrics
        self.counts: Counter = Counter()

    def __getattr__(self, name: str):
        real = getattr(self._metrics, name)
        kind = getattr(getattr(real, "_metric", real), "_type", None)
        if kind not in ("counter", "histogram"):
            return real
        return _Family(name, real, self.counts)


class _Family:
    def __init__(self, name: str, real, counts: Counter):
        self._name, self._real, self._counts = name, real, counts

    def labels(self, *args, **labels):
        return _Child((self._name, args, tuple(sorted(labels.items()))), self._real.labels(*args, **labels),
                      self._counts)

    def inc(self, amount: float = 1) -> None:
        _Child((self._name,), self._real, self._counts).inc(amount)

    def __getattr__(self, name: str):
        return getattr(self._real, name)


class _Child:
    def __init__(self, key, real, counts: Counter):
        self._key, self._real, self._counts = key, real, counts

    def inc(self, amount: float = 1) -> None:
        self._counts[self._key] += amount
        self._real.inc(amount)

    def observe(self, value: float) -> None:
        self._counts[self._key] += 1
        self._real.observe(value)

    def __getattr__(self, name: str):
        return getattr(self._real, name)


@pytest.fixture(scope="module")
def metrics(config):
    return EngineMetrics(config, CollectorRegistry())


async def replay_of(config, metrics, name: str, records: list[dict]) -> Replay:
    """The replay of one recorded session, with the e2e test's own start (tests/unit/test_recorded_sessions.py)."""
    replay = Replay(config, CountingSpy(metrics))
    replay.hub = PopHub()
    replay.extra.append(CallPops(config=config, hub=replay.hub, call_state=replay.calls, open_cases=None,
                                 number_hash=lambda n: hash_caller(n, DEFAULT_CALLER_KEY), clock=lambda: replay.now))
    if name in ("answered_call", "agent_auto_paused"):
        await replay.shift_starts()
    if name == "queued_callback_connected":
        await replay.seed_callback("4", hotline="14403", number="01013959070", reason="queue",
                                   call_uid="1796240077.118", program="nasser_bank", queue="nasser_bank")
    if name == "callback_not_answered_then_retried":
        await replay.seed_callback("1", hotline="14403", number="01020162598", reason="queue",
                                   call_uid="1796239376.22", program="nasser_bank", queue="nasser_bank")
    await replay.run_records(records)
    return replay


async def outcomes(replay: Replay, call_ids: frozenset[str]) -> dict:
    """What the recorded calls came to: their facts and records, the
    callbacks, the agents, the pops (the noise's calls left out)."""
    agents = {a.id: await replay.agent_store.get(a.id) for a in replay.config.agents}
    return {
        "facts": {uid: await replay.calls.facts(uid) for uid in sorted(call_ids)},
        "records": [r for r in replay.records.records if r.uid in call_ids],
        "callbacks": {cb: await replay.callbacks.get(cb) for cb in ("1", "4")},
        "agents": agents,
        "pops": {a.id: replay.hub.current(a.id) for a in replay.config.agents},
    }


def counters(replay: Replay) -> dict:
    """Every count and every histogram's observations of the replay (the
    kinds of AMI events aside: a duplicate is counted as one)."""
    return {key: n for key, n in replay.metrics.counts.items() if key[0] != "ami_events"}


_clean: dict[str, tuple[dict, dict]] = {}


async def clean(config, metrics, name: str) -> tuple[dict, dict]:
    if name not in _clean:
        replay = await replay_of(config, metrics, name, RECORDINGS[name].records)
        _clean[name] = (await outcomes(replay, RECORDINGS[name].call_ids), counters(replay))
    return _clean[name]


async def against_clean(config, metrics, name: str, records: list[dict]) -> tuple[Replay, dict, dict]:
    """The replay of ``records`` (nothing may raise), and what the clean replay came to."""
    replay = await replay_of(config, metrics, name, records)
    return (replay, *await clean(config, metrics, name))


# --- noise: other calls' events, mutated ----------------------------------------------------------


@st.composite
def noise(draw, rec: Recording) -> list[dict]:
    """The recording with mutated copies of its events put in, about other calls."""
    records = list(rec.records)
    for n in range(draw(st.integers(1, 12))):
        source = rec.records[draw(st.sampled_from(rec.events))]
        headers = copy.deepcopy(source["headers"])
        # Another call, channel, agent and callback, consistently within this copy.
        other = draw(st.sampled_from([f"fuzz{n}.1", f"cbq{9000 + n}a1", f"1796299999.{n}"]))
        for key in CALL_IDS:
            if key in headers:
                headers[key] = other
        for key in OTHER_IDS:
            if key in headers:
                headers[key] = f"{key}-fuzz{n}" if key != "Interface" else f"PJSIP/agent9{n:03d}"
        for _ in range(draw(st.integers(0, 4))):
            key = draw(st.sampled_from(sorted(headers) + ["Event", "UserEvent", "Timestamp"]))
            action = draw(st.sampled_from(["drop", "wrong", "huge", "rename"]))
            if action == "drop":
                headers.pop(key, None)
            elif action == "wrong" and key not in CALL_IDS + OTHER_IDS:
                headers[key] = draw(st.sampled_from(WRONG))
            elif action == "huge" and key not in CALL_IDS + OTHER_IDS:
                headers[key] = draw(st.sampled_from(["9" * 100_000, "1e308", "-5", "0", "x" * 100_000]))
            elif action == "rename" and key == "Event":
                headers["Event"] = draw(st.sampled_from(["UserEvent", "QueueEntry", "QueueMember", "Nosuch", ""]))
        record = {"kind": "event", "headers": headers, "noise": True}
        at = draw(st.integers(0, len(records)))
        records.insert(at, record)
        if draw(st.integers(0, 4)) == 0:   # the same noise twice, later
            records.insert(draw(st.integers(at + 1, len(records))), dict(record))
    return records


@fuzzed
@given(data=st.data())
@pytest.mark.parametrize("name", NAMES)
async def test_noise_changes_nothing_of_the_recorded_calls(config, metrics, name, data):
    replay, expected, _ = await against_clean(config, metrics, name, data.draw(noise(RECORDINGS[name])))
    assert await outcomes(replay, RECORDINGS[name].call_ids) == expected


# --- the recorded calls' own events, again and out of order ---------------------------------------


@st.composite
def redelivered(draw, rec: Recording) -> list[dict]:
    """The recording with some of its events delivered twice (the same
    delivery retried, or a new one as after a reconnect) and neighbouring
    events swapped."""
    records = [dict(r, ref=f"rec:{i}") for i, r in enumerate(rec.records)]
    for _ in range(draw(st.integers(1, 10))):
        event = [i for i, r in enumerate(records) if r["kind"] == "event"]
        kind = draw(st.sampled_from(["again", "redelivered", "swap"]))
        at = draw(st.sampled_from(event))
        if kind == "swap":
            nxt = next((i for i in event if i > at), None)
            if nxt is not None and not _swap_changes_meaning(records[at], records[nxt]):
                records[at], records[nxt] = records[nxt], records[at]
            continue
        copy_ = dict(records[at])
        if kind == "redelivered":
            copy_["ref"] = f"again:{at}:{len(records)}"
        records.insert(draw(st.integers(at + 1, min(len(records), at + 20))), copy_)
    return records


def _swap_changes_meaning(a: dict, b: dict) -> bool:
    """Two events of one call in the order Asterisk sent them (a join before
    its answer, an answer before the hang-up) are cause and effect, not a race:
    only events of different channels may come the other way round."""
    ids = lambda r: {r["headers"].get(k) for k in CALL_IDS} - {None, ""}  # noqa: E731
    return bool(ids(a) & ids(b))


@fuzzed
@given(data=st.data())
@pytest.mark.parametrize("name", NAMES)
async def test_events_again_or_out_of_order_are_counted_once(config, metrics, name, data):
    replay, expected, expected_counts = await against_clean(config, metrics, name,
                                                            data.draw(redelivered(RECORDINGS[name])))
    assert counters(replay) == expected_counts
    got = await outcomes(replay, RECORDINGS[name].call_ids)
    assert got["records"] == expected["records"]
    assert got["callbacks"] == expected["callbacks"]
