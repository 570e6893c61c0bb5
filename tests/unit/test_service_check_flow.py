"""The service check: its transitions (pure) and its call over a scripted channel."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from scripted_channel import ScriptedChannel

from cases import model
from cases.model import Action, Status, TransitionRefused
from core.arabic.numbers import digit_fragments
from core.configuration import load_config
from ivr.service_check import flow
from ivr.service_check.flow import ServiceCheckHandler, ask

DEMO = Path(__file__).resolve().parents[2] / "config"
CONFIG = load_config(DEMO)
T0 = datetime(2026, 3, 8, 9, 30, tzinfo=timezone.utc)
REF = "684917109"   # a valid check digit (cases.reference)
INTRO = [f"ivr/{p}" for p in ("service-check-intro", *digit_fragments(REF))]
QUESTION = "ivr/service-check-question"


def resolved_case() -> model.Case:
    case = model.register(CONFIG.cases, reference=REF, tenant="mss", sector="takaful_karama", kind="grievance",
                          severity="normal", actor="agent01", at=T0, number_encrypted="token").case
    case = model.start(case, actor="agent01", at=T0).case
    return model.resolve(case, actor="agent01", at=T0 + timedelta(hours=1)).case


def test_yes_closes_the_case_as_the_citizen():
    change = model.confirm(resolved_case(), at=T0 + timedelta(hours=2))
    assert change.case.status is Status.CLOSED and change.case.check_result == "yes"
    assert (change.event.actor, change.event.action, change.event.from_status) == (
        "citizen", Action.CONFIRM, Status.RESOLVED)


def test_no_reopens_the_case_and_counts_the_reopening():
    change = model.dispute(resolved_case(), at=T0 + timedelta(hours=2))
    assert change.case.status is Status.REOPENED and change.case.check_result == "no"
    assert change.case.reopened_count == 1 and change.case.resolved_at is None
    # Resolved again: the check starts afresh.
    again = model.resolve(model.start(change.case, actor="a", at=T0).case, actor="a", at=T0).case
    assert (again.check_attempts, again.check_due_at, again.check_result) == (0, None, None)


def test_each_attempt_is_recorded_with_the_next_one_due_then_unreached():
    case = resolved_case()
    retry = T0 + timedelta(hours=3)
    called = model.check_called(case, at=T0, retry_at=retry)
    assert (called.case.check_attempts, called.case.check_due_at, called.case.status) == (1, retry, Status.RESOLVED)
    assert called.event.action is Action.CHECK_CALL and called.event.details == "call: attempt 1"
    ended = model.unreached(called.case, at=retry)
    assert ended.case.check_result == "unreached" and ended.case.status is Status.RESOLVED
    with pytest.raises(TransitionRefused, match="service check already ended: unreached"):
        model.confirm(ended.case, at=retry)
    with pytest.raises(TransitionRefused):
        model.check_called(ended.case, at=retry, retry_at=retry)


def test_a_callback_hands_the_check_to_an_agent():
    called = model.check_called(resolved_case(), at=T0, retry_at=T0, how="callback")
    assert (called.case.check_result, called.case.check_due_at) == ("callback", None)


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.RESOLVED])
def test_only_a_resolved_case_is_checked(status):
    case = model.replace(resolved_case(), status=status)
    for step in (lambda c: model.confirm(c, at=T0), lambda c: model.dispute(c, at=T0),
                 lambda c: model.check_called(c, at=T0, retry_at=T0), lambda c: model.unreached(c, at=T0)):
        with pytest.raises(TransitionRefused):
            step(case)


async def test_a_key_during_the_intro_answers_at_once():
    channel = ScriptedChannel([None, "2"])
    assert await ask(channel, reference=REF, intro_prompt="service-check-intro") is False
    assert channel.prompts == INTRO[:2]
    assert all(c[2] == "12" for c in channel.calls)


async def test_a_wrong_key_and_silence_are_asked_again_three_times_in_all():
    # 1st: the intro, the question, then "9"; 2nd: invalid, question, silence; 3rd: invalid, question, "1".
    script = [None] * (len(INTRO) + 1) + ["9", None, None, None, None, None, "1"]
    channel = ScriptedChannel(script)
    assert await ask(channel, reference=REF, intro_prompt="service-check-intro") is True
    assert channel.prompts == [*INTRO, QUESTION, "ivr/invalid-option", QUESTION, "ivr/invalid-option", QUESTION]
    assert channel.remaining == 0


async def test_no_answer_after_three_tries_is_none():
    channel = ScriptedChannel([None] * (len(INTRO) + 2) + [None] * 6)
    assert await ask(channel, reference=REF, intro_prompt="service-check-intro") is None
    assert channel.remaining == 0


class Answers:
    def __init__(self, outcome):
        self.outcome, self.calls = outcome, []

    async def __call__(self, tenant, reference, got):
        self.calls.append((tenant, reference, got))
        return self.outcome


@pytest.mark.parametrize("key,outcome,said", [
    ("1", flow.RECORDED, "ivr/service-check-thanks"), ("2", flow.RECORDED, "ivr/service-check-reopened"),
    ("2", flow.UNAVAILABLE, "ivr/service-check-unavailable"), ("1", flow.ENDED, "ivr/service-check-goodbye")])
async def test_the_route_records_the_answer_and_says_what_became_of_it(key, outcome, said):
    answers = Answers(outcome)
    channel = ScriptedChannel([key, None], env={"arg_1": REF, "arg_2": "mss"})
    await ServiceCheckHandler(config=CONFIG, answer=answers)(channel)
    assert answers.calls == [("mss", REF, key == "1")]
    assert channel.prompts[-1] == said and channel.remaining == 0


@pytest.mark.parametrize("env", [{"arg_1": "123456789", "arg_2": "mss"}, {"arg_1": REF, "arg_2": "nobody"},
                                 {"arg_1": "", "arg_2": ""}])
async def test_a_bad_reference_or_tenant_plays_nothing_and_records_nothing(env):
    answers = Answers(flow.RECORDED)
    channel = ScriptedChannel([], env=env)
    await ServiceCheckHandler(config=CONFIG, answer=answers)(channel)
    assert answers.calls == [] and channel.calls == []
