"""The FastAGI route `agent` (feature codes), with a scripted softphone.

The environment is what the generated [agents] context passes:
agent,<action>,${CHANNEL(endpoint)},<reason code>,${CHANNEL(pjsip,remote_addr)}.
"""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError
from scripted_channel import ScriptedChannel
from test_agents import FakeAsterisk, FakeClock

from queues.agents.feature_codes import AgentCodeHandler
from core.channel import CallerHungUp
from metrics.registry import EngineMetrics
from queues.agents import AgentDesk, AgentState, MemoryAgentStateStore

PHONE = "192.0.2.10:5062"
OTHER_PHONE = "192.0.2.77:5062"
CALLER_ID = "1001"


@pytest.fixture
def setup(config_demo):
    config = config_demo
    store = MemoryAgentStateStore()
    ami = FakeAsterisk(q.id for q in config.queues)
    metrics = EngineMetrics(config, CollectorRegistry())
    desk = AgentDesk(ami=ami, store=store, config=config, metrics=metrics, clock=FakeClock())
    handler = AgentCodeHandler(config=config, desk=desk, reason_timeout=4.0)
    return type("Setup", (), {"config": config, "store": store, "ami": ami, "metrics": metrics, "desk": desk,
                                  "handler": handler})


@pytest.fixture(scope="module")
def config_demo():
    from pathlib import Path

    from core.configuration import load_config

    return load_config(Path(__file__).resolve().parents[2] / "config")


def code(action: str, endpoint: str = "agent1001", reason: str = "", remote: str = PHONE,
         script=(None,)) -> ScriptedChannel:
    return ScriptedChannel(list(script), env={"arg_1": action, "arg_2": endpoint, "arg_3": reason,
                                              "arg_4": remote, "callerid": CALLER_ID,
                                              "network_script": "agent"})


async def run(setup, channel: ScriptedChannel) -> list[str]:
    await setup.handler(channel)
    assert channel.remaining == 0
    return channel.prompts


async def state(setup, agent="1001"):
    return (await setup.desk.view(agent)).state


def counted(setup, action, result):
    return setup.metrics.registry.get_sample_value(
        "ivr_agent_actions_total", {"action": action, "source": "phone", "result": result})


async def test_login_then_already_then_moved(setup):
    assert await run(setup, code("login")) == ["ivr/agent-logged-in"]
    assert await state(setup) is AgentState.AVAILABLE
    assert (await setup.store.get("1001"))["device"] == PHONE
    assert await run(setup, code("login")) == ["ivr/agent-already-logged-in"]
    assert await run(setup, code("login", remote=OTHER_PHONE)) == ["ivr/agent-moved-phone"]
    assert (await setup.store.get("1001"))["device"] == OTHER_PHONE
    assert counted(setup, "login", "ok") == counted(setup, "login", "moved") == 1


async def test_logout(setup):
    assert await run(setup, code("logout")) == ["ivr/agent-not-logged-in"]
    await run(setup, code("login"))
    assert await run(setup, code("logout")) == ["ivr/agent-logged-out"]
    assert await state(setup) is AgentState.OFFLINE
    assert {a["Queue"] for a in setup.ami.of("QueueRemove")} >= {"shared", "takaful_karama"}


async def test_pause_with_the_reason_in_the_code(setup):
    await run(setup, code("login"))
    assert await run(setup, code("pause", reason="1")) == ["ivr/agent-paused"]
    view = await setup.desk.view("1001")
    assert (view.state, view.reason) == (AgentState.PAUSED, "break")
    assert await run(setup, code("resume")) == ["ivr/agent-resumed"]
    assert await state(setup) is AgentState.AVAILABLE


async def test_pause_alone_asks_for_the_reason(setup):
    await run(setup, code("login"))
    # The key cuts the question short.
    channel = code("pause", script=["2", None])
    assert await run(setup, channel) == ["ivr/agent-pause-reason", "ivr/agent-paused"]
    assert channel.calls[0][2] == "0123456789*#"
    assert (await setup.desk.view("1001")).reason == "training"


async def test_pause_reason_typed_after_the_question(setup):
    await run(setup, code("login"))
    channel = code("pause", script=[None, "3", None])
    assert await run(setup, channel) == ["ivr/agent-pause-reason", "ivr/agent-paused"]
    assert ("wait", 4.0) in channel.calls
    assert (await setup.desk.view("1001")).reason == "after_call_work"


@pytest.mark.parametrize("script", [[None, None, None], ["9", None]], ids=["silence", "wrong key"])
async def test_pause_without_a_valid_reason_does_not_pause(setup, script):
    await run(setup, code("login"))
    prompts = await run(setup, code("pause", script=script))
    assert prompts == ["ivr/agent-pause-reason", "ivr/agent-unknown-reason"]
    assert await state(setup) is AgentState.AVAILABLE
    assert setup.ami.of("QueuePause") == []


async def test_unknown_reason_code(setup):
    await run(setup, code("login"))
    assert await run(setup, code("pause", reason="8")) == ["ivr/agent-unknown-reason"]
    assert await state(setup) is AgentState.AVAILABLE


async def test_pause_when_logged_out_does_not_ask_for_a_reason(setup):
    assert await run(setup, code("pause")) == ["ivr/agent-not-logged-in"]
    assert await run(setup, code("pause", reason="1")) == ["ivr/agent-not-logged-in"]
    assert await run(setup, code("resume")) == ["ivr/agent-not-logged-in"]
    assert counted(setup, "pause", "not_logged_in") == 2


async def test_unknown_endpoint(setup):
    assert await run(setup, code("login", endpoint="carrier")) == ["ivr/agent-unknown"]
    assert setup.ami.actions == []


async def test_asterisk_unreachable(setup):
    setup.ami.down = True
    assert await run(setup, code("login")) == ["ivr/agent-service-unavailable"]
    assert counted(setup, "login", "unavailable") == 1


async def test_redis_unreachable(setup, monkeypatch):
    async def broken(agent_id):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(setup.store, "get", broken)
    assert await run(setup, code("login")) == ["ivr/agent-service-unavailable"]


async def test_a_bug_is_still_answered_then_raised(setup, monkeypatch):
    async def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(setup.desk, "login", boom)
    channel = code("login")
    with pytest.raises(RuntimeError):
        await setup.handler(channel)
    assert channel.prompts == ["ivr/agent-service-unavailable"]


async def test_hang_up_while_choosing_the_reason(setup):
    await run(setup, code("login"))
    channel = code("pause", script=[None, CallerHungUp("gone")])
    with pytest.raises(CallerHungUp):
        await setup.handler(channel)
    assert channel.prompts == ["ivr/agent-pause-reason"]
    assert await state(setup) is AgentState.AVAILABLE


async def test_logs_mask_the_caller_number(setup, caplog):
    class Plain(ScriptedChannel):
        describe = None  # a channel without describe(): the handler masks the number itself

    channel = Plain([None], env={"arg_1": "login", "arg_2": "agent1001", "arg_3": "", "arg_4": PHONE,
                                 "callerid": "01001234567"})
    with caplog.at_level(logging.INFO, logger="queues.agents.feature_codes"):
        await setup.handler(channel)
    assert channel.prompts == ["ivr/agent-logged-in"]
    assert "01001234567" not in caplog.text
    assert "*********67" in caplog.text
