"""The engine's live figures for wait estimates and kept places, on a real Redis:
agents serving a queue (and idle), and a waiting caller's place."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from ivr.configuration import load_config
from ivr.engine import Engine
from metrics.registry import EngineMetrics

from ivr.paths import REPO_ROOT

DEMO = REPO_ROOT / "config"


@pytest.fixture
def engine(redis_client):
    config = load_config(DEMO)
    now = time.time()
    return Engine(config=config, ami_secret=None, enable_agi=False, enable_ami=False,
                  metrics=EngineMetrics(config, registry=CollectorRegistry()), redis_client=redis_client,
                  clock=lambda: datetime.fromtimestamp(now, timezone.utc)), now


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
    assert await engine.agents_counts("nasser_bank") == (2, 1)
    # A ringing agent is about to take the head of the queue: counted as idle.
    await store.update("1003", {"in_call": "0", "ringing": "1", "ringing_until": str(now + 10)})
    assert await engine.agents_counts("nasser_bank") == (2, 2)
    # A logged-in agent whose phone is not registered serves nobody.
    await store.update("1002", {"device_status": "5"})
    assert await engine.agents_counts("nasser_bank") == (1, 1)
    # Nobody serves Forsa: no estimate can be given.
    assert await engine.agents_counts("forsa") == (0, 0)


async def test_place_of_a_caller_who_left_the_queue(engine):
    engine, now = engine
    queue = "nasser_bank"
    joins = [("a.1", now - 100, 0), ("b.2", now - 50, 0), ("c.3", now - 40, 3), ("d.4", now - 10, 0)]
    for uid, joined, priority in joins:
        await engine.store.set_fact(uid, f"offered:{queue}", f"{joined:.3f}")
        await engine.store.set_fact(uid, "priority", str(priority))
        await engine.waiting.handle({"Event": "QueueCallerJoin", "Queue": queue, "Uniqueid": uid,
                                     "Channel": f"PJSIP/anonymous-{uid}", "Position": "1", "Count": "1"},
                                    now=joined)
    # b.2 pressed 1 and left Queue(): ahead of them are a.1 (earlier) and c.3
    # (a repeat caller, higher priority); d.4 joined later.
    await engine.waiting.handle({"Event": "QueueCallerLeave", "Queue": queue, "Uniqueid": "b.2",
                                 "Position": "3", "Count": "3"}, now=now)
    assert await engine.place_of(queue, "b.2") == 3
    # A caller the engine never saw join has no place to keep.
    assert await engine.place_of(queue, "z.9") is None
