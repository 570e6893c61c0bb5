"""The case's state machine, deadlines and reference numbers (pure, no database)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cases import model
from cases.model import Action, Status, TransitionRefused
from cases.reference import BadReference, check_reference, new_reference, spoken_groups
from core.configuration import ConfigError, load_config

DEMO = Path(__file__).resolve().parents[2] / "config"
T0 = datetime(2026, 3, 8, 9, 30, tzinfo=timezone.utc)
CONFIG = load_config(DEMO).cases

STEPS = {
    Action.ASSIGN: lambda c: model.assign(c, assignee="agent02", actor="sup", at=T0),
    Action.START: lambda c: model.start(c, actor="agent01", at=T0),
    Action.WAIT_FOR_CITIZEN: lambda c: model.wait_for_citizen(c, actor="agent01", at=T0),
    Action.RESOLVE: lambda c: model.resolve(c, actor="agent01", at=T0),
    Action.CLOSE: lambda c: model.close(c, actor="agent01", at=T0),
    Action.REOPEN: lambda c: model.reopen(c, actor="agent01", at=T0),
    Action.CONFIRM: lambda c: model.confirm(c, at=T0),
    Action.DISPUTE: lambda c: model.dispute(c, at=T0),
}


def new_case(severity="normal", **over) -> model.Case:
    fields = dict(reference="123456780", tenant="mss", sector="takaful_karama", kind="grievance",
                  severity=severity, actor="agent01", at=T0)
    fields.update(over)
    return model.register(CONFIG, **fields).case


def test_every_action_from_every_status_is_allowed_exactly_as_the_table_says():
    assert set(STEPS) == set(model.TRANSITIONS)
    for action, status in itertools.product(STEPS, Status):
        case = model.replace(new_case(), status=status)
        sources, target = model.TRANSITIONS[action]
        if status in sources:
            change = STEPS[action](case)
            assert change.case.status is target
            assert (change.event.action, change.event.from_status, change.event.to_status) == (
                action, status, target)
        else:
            with pytest.raises(TransitionRefused) as err:
                STEPS[action](case)
            assert f"cannot {action.value} a case that is {status.value}" in str(err.value)
            assert "123456780" in str(err.value)


def _reachable(start: Status) -> set[Status]:
    seen, todo = {start}, [start]
    while todo:
        status = todo.pop()
        for sources, target in model.TRANSITIONS.values():
            if status in sources and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_every_status_can_be_reached_from_new_and_every_open_case_can_be_resolved():
    assert _reachable(Status.NEW) == set(Status)
    for status in model.OPEN_STATUSES:     # no open status is a dead end
        assert Status.RESOLVED in _reachable(status), status


@pytest.mark.parametrize("severity,first,resolution", [
    ("critical", 1, 24), ("high", 4, 72), ("normal", 24, 240), ("low", 72, 720)])
def test_deadlines_come_from_the_severity(severity, first, resolution):
    case = new_case(severity)
    assert case.first_response_due == T0 + timedelta(hours=first)
    assert case.resolution_due == T0 + timedelta(hours=resolution)


def test_first_response_is_the_first_start_and_reopen_clears_the_resolution():
    case = new_case()
    case = model.start(case, actor="agent01", at=T0 + timedelta(hours=1)).case
    case = model.wait_for_citizen(case, actor="agent01", at=T0 + timedelta(hours=2)).case
    case = model.start(case, actor="agent01", at=T0 + timedelta(hours=3)).case
    assert case.first_response_at == T0 + timedelta(hours=1) and case.assignee == "agent01"
    case = model.resolve(case, actor="agent01", at=T0 + timedelta(hours=4)).case
    case = model.close(case, actor="agent01", at=T0 + timedelta(hours=5)).case
    case = model.reopen(case, actor="ivr", at=T0 + timedelta(days=2), note="no").case
    assert (case.status, case.resolved_at, case.closed_at, case.reopened_count) == (Status.REOPENED, None, None, 1)


def test_reclassifying_moves_the_deadlines_from_the_registration():
    case = new_case("low")
    change = model.reclassify(CONFIG, case, actor="sup", at=T0 + timedelta(hours=5), severity="critical")
    assert change.case.first_response_due == T0 + timedelta(hours=1)
    assert change.event.details == "severity: low -> critical" and change.event.to_status is Status.NEW
    with pytest.raises(model.InvalidCase, match="nothing to reclassify"):
        model.reclassify(CONFIG, case, actor="sup", at=T0, severity="low")
    with pytest.raises(model.InvalidCase, match="unknown severity"):
        model.reclassify(CONFIG, case, actor="sup", at=T0, severity="urgent")
    closed = model.replace(case, status=Status.CLOSED)
    with pytest.raises(TransitionRefused):
        model.reclassify(CONFIG, closed, actor="sup", at=T0, severity="high")


def test_overdue_and_escalation():
    case = new_case("critical")
    assert model.overdue(case, T0 + timedelta(minutes=59)) == frozenset()
    assert model.escalate(case, at=T0 + timedelta(minutes=59)) is None
    late = model.escalate(case, at=T0 + timedelta(hours=2))
    assert late.case.escalated == {"first_response"} and late.event.actor == model.SYSTEM_ACTOR
    assert model.escalate(late.case, at=T0 + timedelta(hours=3)) is None
    started = model.start(late.case, actor="a", at=T0 + timedelta(hours=3)).case
    assert model.overdue(started, T0 + timedelta(hours=25)) == {"resolution"}
    resolved = model.resolve(started, actor="a", at=T0 + timedelta(hours=4)).case
    assert model.overdue(resolved, T0 + timedelta(days=30)) == frozenset()


@pytest.mark.parametrize("fields,message", [
    ({"tenant": "mosh"}, "unknown tenant 'mosh'"),
    ({"sector": "health"}, "unknown sector 'health'"),
    ({"kind": "suggestion"}, "unknown kind 'suggestion'"),
    ({"severity": "urgent"}, "unknown severity 'urgent'"),
])
def test_registration_checks_the_configuration(fields, message):
    with pytest.raises(model.InvalidCase, match=message):
        new_case(**fields)


def test_a_note_needs_text():
    with pytest.raises(model.InvalidCase):
        model.add_note(new_case(), actor="a", at=T0, note="  ")


def test_references_have_a_damm_check_digit_that_catches_typing_mistakes():
    draws = iter(range(0, 10 ** 9, 7_654_321))
    for _ in range(100):
        ref = new_reference(randbelow=lambda n: next(draws) % n)
        assert len(ref) == 9 and ref[0] != "0" and check_reference(ref) == ref
        for i in range(9):                      # every single wrong digit
            for d in "0123456789":
                if d != ref[i]:
                    with pytest.raises(BadReference):
                        check_reference(ref[:i] + d + ref[i + 1:])
        for i in range(8):                      # every swap of neighbours
            if ref[i] != ref[i + 1]:
                with pytest.raises(BadReference) as err:
                    check_reference(ref[:i] + ref[i + 1] + ref[i] + ref[i + 2:])
                assert err.value.reason == "check_digit"


def test_typed_references_are_cleaned_and_bad_lengths_named():
    ref = new_reference()
    assert check_reference(f" {ref[:3]}-{ref[3:6]} {ref[6:]}#") == ref
    for bad in ("", "12345678", "1234567890", "12345678a"):
        with pytest.raises(BadReference) as err:
            check_reference(bad)
        assert err.value.reason == "length"
    assert spoken_groups("123456789") == ("123", "456", "789")


def test_a_bad_cases_section_is_refused_with_file_line_and_field(tmp_path):
    for path in DEMO.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    text = (tmp_path / "cases.yaml").read_text(encoding="utf-8")
    (tmp_path / "cases.yaml").write_text(
        text.replace("{id: forsa, tenant: mss,", "{id: forsa, tenant: msss,")
            .replace("    low: {first_response_hours: 72, resolution_hours: 720}\n",
                     "    low: {first_response_hours: 800, resolution_hours: 720}\n"),
        encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    low = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith("    low:"))
    assert [str(p) for p in err.value.problems] == [
        f"{tmp_path / 'cases.yaml'}:{low}: cases.deadlines.low: first_response_hours (800.0) is after "
        "resolution_hours (720.0)"]
    # pydantic stops at the first section error; fix it and the cross-reference shows.
    (tmp_path / "cases.yaml").write_text(text.replace("{id: forsa, tenant: mss,", "{id: forsa, tenant: msss,"),
                                         encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "{id: forsa, tenant: mss," in l)
    assert [str(p) for p in err.value.problems] == [
        f"{tmp_path / 'cases.yaml'}:{line}: cases.sectors[5].tenant: unknown tenant 'msss'"]


def test_with_two_tenants_every_agent_and_hotline_names_an_existing_one(tmp_path):
    import re

    for path in DEMO.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    # The demo has two tenants (mss, moh): take every agent's and hotline's away.
    for name in ("agents.yaml", "hotlines.yaml"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        text = re.sub(r"^    tenant: [a-z]+\n", "", text, flags=re.M).replace("tenant: mss, ", "")
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    problems = [str(p) for p in err.value.problems]
    demo = load_config(DEMO)
    assert len(demo.cases.tenants) == 2
    agents = [p for p in problems if "agents.yaml" in p]
    hotlines = [p for p in problems if "hotlines.yaml" in p]
    assert len(agents) == len(demo.agents) and len(hotlines) == len(demo.hotlines)
    assert len(problems) == len(agents) + len(hotlines)
    assert all("each of the agents must name one" in p and ".tenant" in p for p in agents)
    assert all("each of the hotlines must name one" in p and ".tenant" in p for p in hotlines)
    for path in DEMO.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    agents = (tmp_path / "agents.yaml").read_text(encoding="utf-8")
    (tmp_path / "agents.yaml").write_text(agents.replace("    name: Mona Adel\n    tenant: mss\n",
                                                         "    name: Mona Adel\n    tenant: mosh\n")
                                          .replace("    name: Youssef Kamal\n    tenant: mss\n",
                                                   "    name: Youssef Kamal\n"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    problems = [str(p) for p in err.value.problems]
    assert any("unknown tenant 'mosh'" in p for p in problems), problems
    assert sum("each of the agents must name one" in p for p in problems) == 1   # only 1004 left without one
