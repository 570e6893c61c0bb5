"""The engine's live figures for wait estimates and kept places, on a real Redis:
agents serving a queue (and idle), and a waiting caller's place."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from core.configuration import load_config
from app.engine import Engine
from metrics.registry import EngineMetrics

from core.paths import REPO_ROOT
from queues.ami.events import parse_event
from core.privacy import NumberCipher

# The callbacks' Fernet key (fernet:callbacks): the engine keeps numbers with it.
CALLBACK_KEYS = [NumberCipher.generate_key()]

DEMO = REPO_ROOT / "config"


@pytest.fixture
def engine(redis_client):
    config = load_config(DEMO)
    now = time.time()
    return Engine(config=config, ami_secret=None, callback_keys=CALLBACK_KEYS, enable_agi=False, enable_ami=False,
                  metrics=EngineMetrics(config, registry=CollectorRegistry()), redis_client=redis_client,
                  clock=lambda: datetime.fromtimestamp(now, timezone.utc), wall_clock=lambda: now), now


def member(queues: dict[str, int], **fields: str) -> dict[str, str]:
    return {"logged_in": "1", **{f"queue:{q}": str(p) for q, p in queues.items()}, **fields}


async def test_agents_counts_serving_and_idle(engine):
    engine, now = engine
    store = engine.agent_store
    # 1002 and 1003 serve Nasser Social Bank: one free, one on a call.
    await store.update("1002", member({"nasser_bank": 0, "shared": 0}))
    await store.update("1003", member({"nasser_bank": 0, "shared": 0}, in_call="1", call_start=str(now - 30)))
    # 1004 serves it as a secondary skill, but is paused.
    await store.update("1004", member({"nasser_bank": 1, "shared": 0}, paused="1", pause_reason="break"))
    assert await engine.agent_tracker.serving_counts("nasser_bank") == (2, 1)
    # A ringing agent is about to take the head of the queue: counted as idle.
    await store.update("1003", {"in_call": "0", "ringing": "1", "ringing_until": str(now + 10)})
    assert await engine.agent_tracker.serving_counts("nasser_bank") == (2, 2)
    # A logged-in agent whose phone is not registered serves nobody.
    await store.update("1002", {"device_status": "5"})
    assert await engine.agent_tracker.serving_counts("nasser_bank") == (1, 1)
    # Nobody serves Forsa: no estimate can be given.
    assert await engine.agent_tracker.serving_counts("forsa") == (0, 0)


async def test_place_of_a_caller_who_left_the_queue(engine):
    engine, now = engine
    queue = "nasser_bank"
    joins = [("a.1", now - 100, 0), ("b.2", now - 50, 0), ("c.3", now - 40, 3), ("d.4", now - 10, 0)]
    for uid, joined, priority in joins:
        await engine.store.set_fact(uid, f"offered:{queue}", f"{joined:.3f}")
        await engine.store.set_fact(uid, "priority", str(priority))
        await engine.waiting.handle(parse_event({"Event": "QueueCallerJoin", "Queue": queue, "Uniqueid": uid,
                                     "Channel": f"PJSIP/anonymous-{uid}", "Position": "1", "Count": "1"}),
                                    now=joined)
    # b.2 pressed 1 and left Queue(): ahead of them are a.1 (earlier) and c.3
    # (a repeat caller, higher priority); d.4 joined later.
    await engine.waiting.handle(parse_event({"Event": "QueueCallerLeave", "Queue": queue, "Uniqueid": "b.2",
                                 "Position": "3", "Count": "3"}), now=now)
    assert await engine.place_of(queue, "b.2") == 3
    # A caller the engine never saw join has no place to keep.
    assert await engine.place_of(queue, "z.9") is None


async def _one_answered_and_one_abandoned(engine, now):
    """Two calls through the engine's own accounting (records go to Redis)."""
    async def handle(raw):  # the AMI connection parses at the edge
        return await engine.accounting.handle(parse_event(raw))
    for uid, answered in (("x.1", True), ("x.2", False)):
        t0 = now - 600
        await handle({"Event": "UserEvent", "UserEvent": "IvrCallStart", "Uniqueid": uid, "CallUid": uid,
                      "Hotline": "14403", "Timestamp": f"{t0:.6f}"})
        await handle({"Event": "UserEvent", "UserEvent": "IvrRoute", "Uniqueid": uid, "Hotline": "14403",
                      "Queue": "nasser_bank", "Program": "nasser_bank", "RequestType": "inquiry",
                      "Governorate": "minya", "Timestamp": f"{t0 + 1:.6f}"})
        await handle({"Event": "QueueCallerJoin", "Uniqueid": uid, "Queue": "nasser_bank",
                      "Timestamp": f"{t0 + 10:.6f}"})
        if answered:
            await handle({"Event": "AgentConnect", "Uniqueid": uid, "Queue": "nasser_bank", "HoldTime": "15",
                          "Interface": "PJSIP/agent1002", "Timestamp": f"{t0 + 25:.6f}"})
        await handle({"Event": "UserEvent", "UserEvent": "IvrCallEnd", "Uniqueid": uid, "CallUid": uid,
                      "Hotline": "14403", "Queue": "nasser_bank", "Member": "PJSIP/agent1002" if answered else "",
                      "Timestamp": f"{t0 + 205:.6f}"})


async def test_the_wallboard_snapshot_from_records_and_live_state(engine):
    engine, now = engine
    await _one_answered_and_one_abandoned(engine, now)
    await engine.agent_store.update("1002", member({"nasser_bank": 0, "shared": 0}))
    await engine.waiting.handle(parse_event({"Event": "QueueCallerJoin", "Queue": "nasser_bank", "Uniqueid": "w.1",
                                 "Channel": "PJSIP/carrier-1", "Position": "1"}), now=now - 42)
    snap = await engine.live.snapshot()
    nasser = next(p for p in snap["programs"] if p["id"] == "nasser_bank")
    assert (nasser["offered"], nasser["answered"], nasser["abandoned"]) == (2, 1, 1)
    assert nasser["answer_ratio"] == 0.5 and nasser["service_level_ratio"] == 0.5
    assert nasser["waiting"] == 1 and nasser["longest_wait_seconds"] == pytest.approx(42, abs=1)
    assert nasser["agents"]["available"] == 1 and nasser["name"] == "بنك ناصر الاجتماعي"
    assert snap["totals"]["received"] == 2 and snap["live"] is True
    forsa = next(p for p in snap["programs"] if p["id"] == "forsa")
    assert forsa["answer_ratio"] is None  # no call: no ratio, not 0 %
    # One ministry's board: the social-solidarity calls are its own; the
    # health ministry's board has its queues only and none of these calls.
    mss = await engine.live.snapshot("mss")
    assert mss["tenant"] == "mss" and mss["totals"]["received"] == 2
    assert not any(p["id"].startswith("moh_") for p in mss["programs"])
    moh = await engine.live.snapshot("moh")
    assert moh["totals"]["received"] == 0 and moh["totals"]["waiting"] == 0
    assert {p["id"] for p in moh["programs"]} == {q.id for q in engine.config.tenant_queues("moh")}


async def test_a_scrape_during_a_redis_outage_withholds_the_live_figures(tmp_path):
    """A real outage: the engine's own redis-server is stopped. Scrapes then
    say the live figures are down and show none of them (never stale ones as
    current); the counters, kept by the engine, are still there. When Redis
    comes back the figures come back."""
    import urllib.request

    import redis.asyncio as aioredis
    from app.redis_server import RedisServer
    from metrics.exporter import MetricsExporter

    server = RedisServer(port=free_port(), data_dir=tmp_path, persist=False)
    server.start()
    # Retries as the engine's own client makes them (app/engine.py): redis-py's
    # default, ten retries with a backoff of up to 10 s, could still be asleep
    # long after Redis came back.
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialWithJitterBackoff

    client = aioredis.Redis(host=server.host, port=server.port, socket_timeout=2, socket_connect_timeout=2,
                            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.25), 2))
    config = load_config(DEMO)
    now = time.time()
    engine = Engine(config=config, ami_secret=None, callback_keys=CALLBACK_KEYS, enable_agi=False, enable_ami=False,
                    enable_wallboard=False,
                    metrics=EngineMetrics(config, registry=CollectorRegistry()), redis_client=client,
                    clock=lambda: datetime.fromtimestamp(now, timezone.utc), wall_clock=lambda: now)
    engine.metrics.live._max_age = 1.0  # stale after 1 s (10 s in production), to keep the test short
    port = free_port()
    exporter = MetricsExporter(registry=engine.metrics.registry, host="127.0.0.1", port=port)
    exporter.start()

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()

    try:
        await _one_answered_and_one_abandoned(engine, now)
        await engine.live.refresh()
        text = scrape()
        assert "ivr_live_figures_up 1.0" in text
        assert 'ivr_staffing_offered_per_hour{program="nasser_bank",tenant="mss"} 2.0' in text
        assert 'ivr_queue_callers_waiting{program="nasser_bank",tenant="mss"} 0.0' in text

        server.stop()  # Redis goes away
        with pytest.raises(Exception):  # redis-py retries twice, then gives up
            await engine.live.refresh()
        loop_task = asyncio.create_task(engine.live.run(interval=0.2))
        assert await _eventually(lambda: engine.metrics.live.failures >= 2, timeout=20)
        assert not loop_task.done()  # the loop carries on
        text = scrape()
        assert "ivr_live_figures_up 0.0" in text
        for gauge in ("ivr_queue_callers_waiting{", "ivr_queue_longest_wait_seconds{", "ivr_agents{",
                      "ivr_staffing_agents_needed{"):
            assert gauge not in text, gauge
        assert 'ivr_calls_received_total{hotline="14403"} 2.0' in text
        # The wallboard's snapshot fails loudly too (its page then says "unavailable").
        engine.live.forget_snapshot()
        with pytest.raises(Exception):
            await engine.live.snapshot()

        server.start()  # Redis is back (empty: no persistence here)
        assert await _eventually(lambda: engine.metrics.live.fresh, timeout=10)
        assert "ivr_live_figures_up 1.0" in scrape()
        loop_task.cancel()
    finally:
        exporter.stop()
        await client.aclose()
        server.stop()


def free_port() -> int:
    # Not imported from conftest: with several conftest.py files in the run,
    # `import conftest` may give another folder's.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _eventually(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return False


async def test_place_of_is_counted_on_real_time_whatever_the_ivr_clock_says(redis_client):
    """Found on the way: the kept place was counted on the IVR's clock (which
    the e2e tests pin to an open Sunday, days away from Asterisk's real
    time), so every caller of the same priority looked ahead of the one who
    left. Join times are Asterisk's: the place is counted on real time."""
    config = load_config(DEMO)
    now = time.time()
    sunday = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
    engine = Engine(config=config, ami_secret=None, callback_keys=CALLBACK_KEYS, enable_agi=False, enable_ami=False,
                    enable_wallboard=False,
                    metrics=EngineMetrics(config, registry=CollectorRegistry()), redis_client=redis_client,
                    clock=lambda: sunday, wall_clock=lambda: now)
    queue = "nasser_bank"
    for uid, joined in (("a.1", now - 100), ("b.2", now - 50), ("d.4", now - 10)):
        await engine.store.set_fact(uid, f"offered:{queue}", f"{joined:.3f}")
        await engine.waiting.handle(parse_event({"Event": "QueueCallerJoin", "Queue": queue, "Uniqueid": uid,
                                                 "Channel": f"PJSIP/anonymous-{uid}", "Position": "1"}), now=joined)
    await engine.waiting.handle(parse_event({"Event": "QueueCallerLeave", "Queue": queue, "Uniqueid": "b.2"}),
                                now=now)
    assert await engine.place_of(queue, "b.2") == 2  # behind a.1 only; d.4 came later
