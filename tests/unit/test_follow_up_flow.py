"""Following up a case by its reference on the hotline: the state machine and
the talking, through the hotline's own handler (key 7 on 1442)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from scripted_channel import ScriptedChannel

from cases.reference import new_reference
from core.arabic.dates import date_fragments, text_of
from core.arabic.numbers import digit_fragments
from core.channel import CallerHungUp
from core.configuration import load_config
from core.contract import IvrAction, Var, prompt_path
from ivr.flow.follow_up import CaseStatus, FollowUpEntry, LookupUnavailable
from ivr.flow.hotline import HotlineHandler
from metrics.registry import EngineMetrics
from queues.calls.store import MemoryCallStateStore
from queues.callbacks import MemoryCallbackStore

DEMO = Path(__file__).resolve().parents[2] / "config"
CAIRO = ZoneInfo("Africa/Cairo")
SUNDAY_OPEN = datetime(2026, 11, 22, 10, 0, tzinfo=CAIRO)
UID = "1763800000.5"
REF = new_reference()
TYPO = REF[:-1] + str((int(REF[-1]) + 1) % 10)
DUE = datetime(2026, 11, 29, 22, 30, tzinfo=timezone.utc)   # 00:30 on Monday the 30th in Cairo


def p(name: str) -> str:
    return prompt_path(name)


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


def case(status="in_progress", *, overdue=False, resolved_at=None, is_open=True, program="takaful_karama"):
    return CaseStatus(reference=REF, status=status, program=program, resolution_due=DUE, resolved_at=resolved_at,
                      overdue=overdue, is_open=is_open)


def make(config, cases: dict | Exception):
    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry=registry)
    store = MemoryCallStateStore()
    looked_up = []

    async def case_status(tenant, reference):
        looked_up.append((tenant, reference))
        if isinstance(cases, Exception):
            raise cases
        return cases.get(reference)

    handler = HotlineHandler(config=config, metrics=metrics, store=store, callbacks=MemoryCallbackStore(),
                             national_id_key=b"k" * 32, case_status=case_status, clock=lambda: SUNDAY_OPEN)
    return handler, registry, store, looked_up


def results(registry) -> dict[str, float]:
    return {s.labels["result"]: s.value for m in registry.collect() for s in m.samples
            if s.name == "ivr_case_follow_ups_total"}


# Welcome cut short by 7 on 1442's main menu.
MENU = ["7"]


def test_the_state_machine_asks_again_then_gives_up():
    state, result = FollowUpEntry().on_digits("12345")
    assert result == "incomplete" and state.apology == "follow-up-incomplete" and not state.done
    state, result = state.on_digits(TYPO)
    assert result == "wrong_check_digit" and state.apology == "follow-up-wrong"
    state, result = state.on_digits(REF + "#")
    assert state.reference == REF and result == "looked_up"
    state, result = state.on_lookup(None)
    assert result == "not_found" and state.gave_up and state.reference is None


def test_the_date_is_said_in_arabic():
    assert text_of(date_fragments(date(2026, 11, 30), today=date(2026, 11, 22))) == "يوم الاثنين الثلاثون من نوفمبر"
    assert text_of(date_fragments(date(2027, 1, 1), today=date(2026, 11, 22))) == (
        "يوم الجمعة الأول من يناير عام ألفين وسبعة وعشرين")


async def test_a_case_in_progress_is_said_with_its_date_and_the_call_ends(config):
    handler, registry, store, looked_up = make(config, {REF: case()})
    # Welcome cut by 7, the reference typed, every status prompt heard, 2 to end.
    date_said = [p(f) for f in date_fragments(date(2026, 11, 30), today=date(2026, 11, 22))]
    status = [p("follow-up-request"), *[p(f) for f in digit_fragments(REF)], p("follow-up-status-in_progress"),
              p("follow-up-expected-by"), *date_said]
    session = ScriptedChannel([*MENU, REF, *[None] * len(status), "2", None],
                              env={"arg_1": "1442", "uniqueid": UID, "callerid": "0225550100"})
    await handler(session)
    assert looked_up == [("mss", REF)]
    assert session.prompts == [p("welcome-1442"), p("follow-up-enter"), *status, p("follow-up-agent-offer"),
                               p("follow-up-goodbye")]
    assert session.variables == {Var.ACTION: IvrAction.DONE}   # no queue: the IVR served the call
    assert (await store.facts(UID))["self_service"] == "follow_up"
    assert results(registry)["found"] == 1
    assert registry.get_sample_value("ivr_menu_node_exits_total",
                                     {"hotline": "1442", "node": "main-1442", "outcome": "follow_up"}) == 1


async def test_wrong_entries_are_said_wrong_and_asked_again_then_an_agent_of_the_sector(config):
    handler, registry, store, looked_up = make(config, {REF: case(overdue=True)})
    date_said = [p(f) for f in date_fragments(date(2026, 11, 30), today=date(2026, 11, 22))]
    status = [p("follow-up-request"), *[p(f) for f in digit_fragments(REF)], p("follow-up-status-in_progress"),
              p("follow-up-expected-by"), *date_said, p("follow-up-overdue")]
    session = ScriptedChannel([*MENU, "1234", None, TYPO, None, REF, *[None] * len(status), "1", None],
                              env={"arg_1": "1442", "uniqueid": UID, "callerid": "0225550100"})
    await handler(session)
    assert session.prompts[:6] == [p("welcome-1442"), p("follow-up-enter"), p("follow-up-incomplete"),
                                   p("follow-up-enter"), p("follow-up-wrong"), p("follow-up-enter")]
    assert looked_up == [("mss", REF)]   # the wrong ones never reach the database
    # 1: to the queue of the case's sector, as a follow-up.
    assert session.variables[Var.QUEUE] == "takaful_karama"
    assert session.variables["__" + Var.REQUEST_TYPE] == "follow_up"
    assert Var.ACTION not in session.variables
    assert results(registry) == {"found": 1, "not_found": 0, "wrong_check_digit": 1, "incomplete": 1,
                                 "unavailable": 0, "gave_up": 0}


async def test_a_reference_typed_during_the_wrong_apology_is_kept_whole(config):
    handler, registry, store, looked_up = make(config, {REF: case()})
    session = ScriptedChannel([*MENU, TYPO, REF[0], *REF[1:], "#", *[None] * 40],
                              env={"arg_1": "1442", "uniqueid": UID, "callerid": "0225550100"})
    await handler(session)
    assert session.prompts[:4] == [p("welcome-1442"), p("follow-up-enter"), p("follow-up-wrong"),
                                   p("follow-up-request")]
    assert looked_up == [("mss", REF)]
    assert results(registry)["found"] == 1 and results(registry)["wrong_check_digit"] == 1


async def test_an_unknown_reference_three_times_still_offers_an_agent(config):
    handler, registry, store, looked_up = make(config, {})
    others = [new_reference() for _ in range(3)]
    session = ScriptedChannel([*MENU, others[0], None, others[1], None, others[2], None, None, "1", None],
                              env={"arg_1": "1442", "uniqueid": UID, "callerid": "0225550100"})
    await handler(session)
    assert [r for _, r in looked_up] == others
    assert session.prompts.count(p("follow-up-not-found")) == 3
    assert session.variables[Var.QUEUE] == config.hotline("1442").fallback_queue
    assert results(registry)["not_found"] == 3 and results(registry)["gave_up"] == 1


async def test_with_the_database_away_the_caller_hears_so_and_may_reach_an_agent(config):
    handler, registry, store, looked_up = make(config, LookupUnavailable("down"))
    session = ScriptedChannel([*MENU, REF, None, "1", None],
                              env={"arg_1": "1442", "uniqueid": UID, "callerid": "0225550100"})
    await handler(session)
    assert p("follow-up-unavailable") in session.prompts
    assert session.variables[Var.QUEUE] == "shared"
    assert results(registry)["unavailable"] == 1


async def test_a_lookup_that_crashes_is_unavailable_not_a_dropped_call(config):
    handler, registry, store, looked_up = make(config, RuntimeError("bug"))
    session = ScriptedChannel([*MENU, REF, None, None, None, None],
                              env={"arg_1": "1442", "uniqueid": UID, "callerid": "0225550100"})
    await handler(session)
    assert p("follow-up-unavailable") in session.prompts
    assert session.variables == {Var.ACTION: IvrAction.DONE}   # silence at the offer: goodbye


async def test_a_resolved_case_says_when(config):
    resolved = datetime(2026, 11, 19, 9, 0, tzinfo=timezone.utc)
    handler, registry, store, looked_up = make(config, {REF: case("resolved", resolved_at=resolved, is_open=False)})
    date_said = [p(f) for f in date_fragments(date(2026, 11, 19), today=date(2026, 11, 22))]
    status = [p("follow-up-request"), *[p(f) for f in digit_fragments(REF)], p("follow-up-status-resolved"),
              p("follow-up-resolved-on"), *date_said]
    session = ScriptedChannel([*MENU, REF, *[None] * len(status), "2", None],
                              env={"arg_1": "1442", "uniqueid": UID, "callerid": "0225550100"})
    await handler(session)
    assert session.prompts[2:2 + len(status)] == status


async def test_a_hang_up_during_the_follow_up_is_remembered(config):
    handler, registry, store, looked_up = make(config, {REF: case()})
    session = ScriptedChannel([*MENU, CallerHungUp()], env={"arg_1": "1442", "uniqueid": UID, "callerid": "1"})
    with pytest.raises(CallerHungUp):
        await handler(session)
    assert (await store.facts(UID))["ivr_left"] == "main-1442"


def test_the_follow_up_option_needs_cases_its_request_type_and_its_prompts(config):
    where = ("menus", "main-1442", "options", "7", "action")
    assert config.cross_reference_errors() == []
    prompts = {k: v for k, v in config.prompts.items() if k != "follow-up-overdue"}
    # Both hotlines' main menus (1442 and 105) offer the follow-up.
    assert config.model_copy(update={"prompts": prompts}).cross_reference_errors() == [
        (where, "follow_up needs the prompts follow-up-overdue"),
        (("menus", "main-105", "options", "7", "action"), "follow_up needs the prompts follow-up-overdue")]
    types = tuple(r for r in config.request_types if r.id != "follow_up")
    assert (where, "follow_up needs the request type 'follow_up' (menus.yaml)") in config.model_copy(
        update={"request_types": types}).cross_reference_errors()
    assert (where, "follow_up needs cases (config/cases.yaml)") in config.model_copy(
        update={"cases": None}).cross_reference_errors()


async def test_a_key_during_the_status_answers_the_offer_at_once(config):
    handler, registry, store, looked_up = make(config, {REF: case()})
    # 1 pressed while the reference is being read back: straight to an agent.
    session = ScriptedChannel([*MENU, REF, None, None, "1", None],
                              env={"arg_1": "1442", "uniqueid": UID, "callerid": "0225550100"})
    await handler(session)
    plays = [c for c in session.calls if c[0] == "play"][1:4]
    assert [c[2] for c in plays] == ["12", "12", "12"]   # each status prompt listens for 1 and 2
    assert p("follow-up-agent-offer") not in session.prompts
    assert session.variables[Var.QUEUE] == "takaful_karama"
