"""The second tenant's self-service: the vaccination answers on the Ministry
of Health's line (105 → 4), "was this answer useful? 1 yes, 2 no" counted per
answer, and a caller it did not help on to an agent of the programme; the
tenant label of the metrics and the checks that keep two ministries apart."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from scripted_channel import ScriptedChannel

from core.channel import CallerHungUp
from core.configuration import load_config
from core.contract import IvrAction, Var, prompt_path
from ivr.flow.answers import ask_useful
from ivr.flow.hotline import HotlineHandler
from ivr.flow.menu import MenuWalk
from metrics.registry import EngineMetrics
from queues.calls.store import MemoryCallStateStore
from queues.callbacks import MemoryCallbackStore

DEMO = Path(__file__).resolve().parents[2] / "config"
SUNDAY_OPEN = datetime(2026, 11, 22, 10, 0, tzinfo=ZoneInfo("Africa/Cairo"))
UID = "1763800000.7"


def p(name: str) -> str:
    return prompt_path(name)


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


def make(config):
    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry=registry)
    store = MemoryCallStateStore()
    handler = HotlineHandler(config=config, metrics=metrics, store=store, callbacks=MemoryCallbackStore(),
                             national_id_key=b"k" * 32, clock=lambda: SUNDAY_OPEN)
    return handler, registry, store


def answers(registry, answer="vaccination_where"):
    return {s.labels["useful"]: s.value for m in registry.collect() for s in m.samples
            if s.name == "ivr_self_service_answers_total" and s.labels["answer"] == answer}


def env():
    return {"arg_1": "105", "uniqueid": UID, "callerid": "0225550199"}


# 4 during the welcome (vaccination), 1 in its menu (where to get vaccinated).
TO_THE_ANSWER = ["4", "1"]


async def test_a_useful_answer_is_counted_and_the_ivr_ends_the_call(config):
    handler, registry, store = make(config)
    session = ScriptedChannel([*TO_THE_ANSWER, None, "1", None], env=env())
    await handler(session)
    assert session.prompts == [p("welcome-105"), p("vaccination-menu"), p("answer-vaccination-where"),
                               p("answer-useful-question"), p("answer-thanks")]
    assert session.variables == {Var.ACTION: IvrAction.DONE}
    assert answers(registry) == {"yes": 1, "no": 0, "none": 0}
    assert answers(registry, "vaccination_register") == {"yes": 0, "no": 0, "none": 0}
    # The call record says the IVR served it (outcome self_service).
    assert (await store.facts(UID))["self_service"] == "answer"
    exits = registry.get_sample_value("ivr_menu_node_exits_total",
                                      {"hotline": "105", "node": "moh_vaccination", "outcome": "answer"})
    assert exits == 1


async def test_an_answer_that_did_not_help_goes_to_an_agent_of_its_programme(config):
    handler, registry, store = make(config)
    # 2 pressed during the answer itself: it is the reply.
    session = ScriptedChannel([*TO_THE_ANSWER, "2", None, None], env=env())
    await handler(session)
    assert session.prompts == [p("welcome-105"), p("vaccination-menu"), p("answer-vaccination-where"),
                               p("answer-to-agent")]
    assert session.variables[Var.QUEUE] == "moh_vaccination"
    assert session.variables[f"__{Var.REQUEST_TYPE}"] == "inquiry"
    assert answers(registry) == {"yes": 0, "no": 1, "none": 0}
    facts = await store.facts(UID)
    assert (facts["program"], facts["request_type"]) == ("moh_vaccination", "inquiry")
    assert registry.get_sample_value("ivr_menu_exits_total", {
        "tenant": "moh", "hotline": "105", "program": "moh_vaccination", "request_type": "inquiry",
        "outcome": "answer"}) == 1


async def test_no_reply_twice_counts_none_and_ends_politely(config):
    handler, registry, _ = make(config)
    session = ScriptedChannel([*TO_THE_ANSWER, None, None, None, None, None, None, None], env=env())
    await handler(session)
    assert session.prompts == [p("welcome-105"), p("vaccination-menu"), p("answer-vaccination-where"),
                               p("answer-useful-question"), p("invalid-option"), p("answer-useful-question"),
                               p("answer-thanks")]
    assert answers(registry) == {"yes": 0, "no": 0, "none": 1}


async def test_a_hang_up_during_the_answer_is_counted_once_as_no_reply(config):
    handler, registry, store = make(config)
    session = ScriptedChannel([*TO_THE_ANSWER, CallerHungUp()], env=env())
    with pytest.raises(CallerHungUp):
        await handler(session)
    assert answers(registry) == {"yes": 0, "no": 0, "none": 1}
    assert (await store.facts(UID))["ivr_left"] == "moh_vaccination"


async def test_ask_useful_takes_only_1_or_2():
    session = ScriptedChannel([None, "5", None, "2"])
    assert await ask_useful(session, answer_prompt="answer-vaccination-where") == "no"
    assert session.prompts == [p("answer-vaccination-where"), p("answer-useful-question"), p("invalid-option"),
                               p("answer-useful-question")]


def test_the_menu_walk_routes_an_answer_to_the_self_service(config):
    walk = MenuWalk.start(config, config.hotline("105")).on_key("4").on_key("2")
    assert walk.route.outcome == "answer" and walk.route.answer == "vaccination_register"
    assert walk.route.queue == "moh_vaccination"


# --- two ministries on one engine ------------------------------------------------


def test_every_programme_labelled_metric_carries_its_tenant(config):
    registry = CollectorRegistry()
    EngineMetrics(config, registry=registry)
    seen: dict[str, set[str]] = {}
    for metric in registry.collect():
        for s in metric.samples:
            if "program" in s.labels:
                assert "tenant" in s.labels, s.name
                seen.setdefault(s.labels["program"], set()).add(s.labels["tenant"])
    # One tenant per programme (queue), from the configuration.
    assert seen["takaful_karama"] == {"mss"} and seen["shared"] == {"mss"}
    assert seen["moh_vaccination"] == {"moh"} and seen["moh_shared"] == {"moh"}
    assert all(len(tenants) == 1 for tenants in seen.values()), seen
    # The health line's calls are offered to the health queues only.
    offered = {(s.labels["hotline"], s.labels["tenant"]) for m in registry.collect() for s in m.samples
               if s.name == "ivr_queue_offered_total"}
    assert {t for h, t in offered if h == "105"} == {"moh"}
    assert {t for h, t in offered if h != "105"} == {"mss"}


def test_one_ministry_never_reaches_the_others_queues_or_agents(config):
    """The checks that keep two tenants apart, each naming its field."""
    agents = list(config.agents)
    agents[0] = agents[0].model_copy(update={"skills": {**agents[0].skills, "moh_vaccination": "secondary"}})
    queues = [q.model_copy(update={"overflow_queue": "shared"}) if q.id == "moh_hospitals" else q
              for q in config.queues]
    menus = dict(config.menus)
    menus["main-105"] = menus["main-105"].model_copy(update={"options": {
        **menus["main-105"].options, "6": menus["main-1442"].options["1"]}})
    broken = config.model_copy(update={"agents": tuple(agents), "queues": tuple(queues), "menus": menus})
    errors = dict(broken.cross_reference_errors())
    assert errors[("agents", 0, "skills", "moh_vaccination")] == (
        "programme 'moh_vaccination' is tenant 'moh''s, not the agent's ('mss')")
    index = next(i for i, q in enumerate(config.queues) if q.id == "moh_hospitals")
    assert errors[("queues", index, "overflow_queue")] == "overflow queue 'shared' is tenant 'mss''s, not 'moh''s"
    hotline = next(i for i, h in enumerate(config.hotlines) if h.number == "105")
    assert "its menus reach programme 'takaful_karama' of tenant 'mss', not the hotline's ('moh')" in \
        errors[("hotlines", hotline, "menu")]
    assert config.cross_reference_errors() == []
