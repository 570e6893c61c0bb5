"""The case store on a real database: SQLite (a file) and PostgreSQL (a real
server started for the session), the same code and the same assertions."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from cases import model
from cases.database import check_schema, current_revision, downgrade, head_revision, migrate, DatabaseUnavailable
from cases.model import Status, TransitionRefused
from cases.reference import check_reference
from cases.schema import metadata
from cases.store import CaseConflict, CaseNotFound, CaseStore
from core.configuration.model import Cases
from core.privacy import NumberCipher

T0 = datetime(2026, 3, 8, 9, 30, tzinfo=timezone.utc)

TWO_TENANTS = Cases.model_validate({
    "tenants": [{"id": "mss", "name": "التضامن", "name_en": "Social Solidarity"},
                {"id": "moh", "name": "الصحة", "name_en": "Health"}],
    "sectors": [{"id": "takaful_karama", "tenant": "mss", "name": "تكافل وكرامة", "name_en": "T&K"},
                {"id": "forsa", "tenant": "mss", "name": "فرصة", "name_en": "Forsa"},
                {"id": "hospitals", "tenant": "moh", "name": "المستشفيات", "name_en": "Hospitals"}],
    "kinds": {k: {"name": k, "name_en": k} for k in ("report", "inquiry", "complaint", "grievance")},
    "deadlines": {"critical": {"first_response_hours": 1, "resolution_hours": 24},
                  "high": {"first_response_hours": 4, "resolution_hours": 72},
                  "normal": {"first_response_hours": 24, "resolution_hours": 240},
                  "low": {"first_response_hours": 72, "resolution_hours": 720}},
})


@pytest.fixture
def store(case_engine):
    return CaseStore(engine=case_engine, config=TWO_TENANTS)


def _register(store, **over):
    fields = dict(tenant="mss", sector="takaful_karama", kind="grievance", severity="high", actor="agent01",
                  at=T0, subject="صرف الدعم متوقف منذ يناير")
    fields.update(over)
    return store.register(**fields)


def test_the_migrated_schema_is_the_code_s_schema(case_engine):
    assert current_revision(case_engine) == head_revision()
    check_schema(case_engine)
    with case_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    # Applying again changes nothing.
    assert migrate(case_engine) == (head_revision(), head_revision())


def test_down_to_nothing_and_up_again(case_engine, store):
    _register(store)
    downgrade(case_engine, "base")
    assert current_revision(case_engine) is None
    with pytest.raises(DatabaseUnavailable, match="run `ivr setup`"):
        check_schema(case_engine)
    migrate(case_engine)
    assert store.list("mss") == []
    _register(store)
    assert len(store.list("mss")) == 1


def test_a_registered_case_is_read_back_with_its_deadlines_and_its_first_audit_line(store):
    case = _register(store, national_id_hash="h" * 64, program="takaful_karama", governorate="giza",
                     call_id="1700000000.42")
    assert check_reference(case.reference) == case.reference
    read = store.get("mss", case.reference)
    assert read == case and read.id == case.id and read.version == 1
    assert read.status is Status.NEW
    assert read.created_at == T0 and read.created_at.tzinfo is not None
    assert read.first_response_due == T0 + timedelta(hours=4)
    assert read.resolution_due == T0 + timedelta(hours=72)
    assert (read.program, read.governorate, read.call_id) == ("takaful_karama", "giza", "1700000000.42")
    [event] = store.history("mss", case.reference)
    assert (event.action, event.from_status, event.to_status, event.actor, event.at) == (
        model.Action.REGISTER, None, Status.NEW, "agent01", T0)


def test_the_whole_life_of_a_case_is_kept_in_the_audit_trail(store):
    ref = _register(store).reference
    steps = [
        (lambda c: model.assign(c, assignee="agent02", actor="supervisor1", at=T0 + timedelta(minutes=5)),
         Status.ASSIGNED),
        (lambda c: model.start(c, actor="agent02", at=T0 + timedelta(minutes=30), note="اتصلت بالمواطن"),
         Status.IN_PROGRESS),
        (lambda c: model.wait_for_citizen(c, actor="agent02", at=T0 + timedelta(hours=1),
                                          note="ينتظر صورة البطاقة"), Status.WAITING_FOR_CITIZEN),
        (lambda c: model.start(c, actor="agent02", at=T0 + timedelta(hours=20)), Status.IN_PROGRESS),
        (lambda c: model.resolve(c, actor="agent02", at=T0 + timedelta(hours=30), note="أعيد الصرف"),
         Status.RESOLVED),
        (lambda c: model.reopen(c, actor="ivr", at=T0 + timedelta(days=3), note="المواطن لم يستلم"),
         Status.REOPENED),
        (lambda c: model.start(c, actor="agent03", at=T0 + timedelta(days=3, hours=1)), Status.IN_PROGRESS),
        (lambda c: model.resolve(c, actor="agent03", at=T0 + timedelta(days=4)), Status.RESOLVED),
        (lambda c: model.close(c, actor="supervisor1", at=T0 + timedelta(days=5)), Status.CLOSED),
    ]
    for step, status in steps:
        assert store.transition("mss", ref, step).status is status
    case = store.get("mss", ref)
    assert case.version == 1 + len(steps)
    assert case.first_response_at == T0 + timedelta(minutes=30)     # the first start, not the later ones
    assert case.resolved_at == T0 + timedelta(days=4) and case.closed_at == T0 + timedelta(days=5)
    assert case.reopened_count == 1 and case.assignee == "agent02"
    trail = store.history("mss", ref)
    assert [(e.from_status, e.to_status) for e in trail[1:]] == [
        (Status.NEW, Status.ASSIGNED), (Status.ASSIGNED, Status.IN_PROGRESS),
        (Status.IN_PROGRESS, Status.WAITING_FOR_CITIZEN), (Status.WAITING_FOR_CITIZEN, Status.IN_PROGRESS),
        (Status.IN_PROGRESS, Status.RESOLVED), (Status.RESOLVED, Status.REOPENED),
        (Status.REOPENED, Status.IN_PROGRESS), (Status.IN_PROGRESS, Status.RESOLVED),
        (Status.RESOLVED, Status.CLOSED)]
    assert trail[1].details == "assignee: - -> agent02" and trail[1].actor == "supervisor1"
    assert trail[3].note == "ينتظر صورة البطاقة"
    assert trail[6].actor == "ivr" and trail[6].note == "المواطن لم يستلم"


def test_a_refused_transition_writes_nothing(store):
    case = _register(store)
    with pytest.raises(TransitionRefused, match=r"cannot close a case that is new \(allowed from: resolved\)"):
        store.transition("mss", case.reference, lambda c: model.close(c, actor="agent01", at=T0))
    assert store.get("mss", case.reference).version == 1
    assert len(store.history("mss", case.reference)) == 1


def test_two_agents_saving_the_same_case_the_second_is_told_and_nothing_is_overwritten(store):
    ref = _register(store).reference
    seen_by_a = store.get("mss", ref)
    seen_by_b = store.get("mss", ref)
    store.save(model.start(seen_by_a, actor="agent01", at=T0 + timedelta(minutes=1), note="A"))
    with pytest.raises(CaseConflict, match="changed by somebody else") as err:
        store.save(model.add_note(seen_by_b, actor="agent02", at=T0 + timedelta(minutes=2), note="B"))
    assert (err.value.read_version, err.value.current_version) == (1, 2)
    case = store.get("mss", ref)
    assert case.status is Status.IN_PROGRESS and case.assignee == "agent01" and case.version == 2
    assert [e.note for e in store.history("mss", ref)] == ["", "A"]
    # The form's version: a post made on what the agent saw before is refused too.
    with pytest.raises(CaseConflict):
        store.transition("mss", ref, lambda c: model.add_note(c, actor="agent02", at=T0, note="B"),
                         expected_version=1)


def test_concurrent_writers_one_wins_each_round(store):
    ref = _register(store).reference
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def writer(n: int) -> None:
        case = store.get("mss", ref)
        barrier.wait()
        try:
            store.save(model.add_note(case, actor=f"agent0{n}", at=T0, note=str(n)))
            outcomes.append("saved")
        except CaseConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["conflict"] * 3 + ["saved"]
    assert store.get("mss", ref).version == 2 and len(store.history("mss", ref)) == 2


def test_another_tenant_s_case_is_not_found_for_reading_or_writing(store):
    mine = _register(store, tenant="moh", sector="hospitals", kind="complaint")
    with pytest.raises(CaseNotFound):
        store.get("mss", mine.reference)
    with pytest.raises(CaseNotFound):
        store.history("mss", mine.reference)
    with pytest.raises(CaseNotFound):
        store.save(model.start(dataclasses.replace(mine, tenant="mss"), actor="agent01", at=T0))
    assert store.list("mss") == [] and [c.reference for c in store.list("moh")] == [mine.reference]
    assert store.get("moh", mine.reference).version == 1


def test_a_sector_of_another_tenant_is_refused_at_registration(store):
    with pytest.raises(model.InvalidCase, match="belongs to tenant 'moh'"):
        _register(store, sector="hospitals")
    assert store.list("mss") == [] and store.list("moh") == []


def test_the_citizen_s_open_cases_by_national_id_or_number(store):
    a = _register(store, national_id_hash="a" * 64)
    b = _register(store, number_hash="n" * 32, at=T0 + timedelta(hours=1))
    done = _register(store, national_id_hash="a" * 64)
    store.transition("mss", done.reference, lambda c: model.start(c, actor="x", at=T0))
    store.transition("mss", done.reference, lambda c: model.resolve(c, actor="x", at=T0))
    _register(store, tenant="moh", sector="hospitals", national_id_hash="a" * 64)
    found = store.open_cases_of("mss", national_id_hash="a" * 64, number_hash="n" * 32)
    assert [c.reference for c in found] == [b.reference, a.reference]   # newest first, resolved left out
    assert [c.reference for c in store.open_cases_of("mss", national_id_hash="a" * 64)] == [a.reference]
    assert store.open_cases_of("mss") == []


def test_lists_filter_and_page(store):
    refs = [_register(store, severity=sev, at=T0 + timedelta(minutes=i)).reference
            for i, sev in enumerate(["high", "critical", "high", "low", "high"])]
    _register(store, sector="forsa", kind="inquiry", severity="high", at=T0 + timedelta(minutes=9))
    highs = store.list("mss", sector="takaful_karama", severity="high")
    assert [c.reference for c in highs] == [refs[4], refs[2], refs[0]]
    assert [c.reference for c in store.list("mss", sector="takaful_karama", limit=2, offset=1)] == refs[3:1:-1]
    store.transition("mss", refs[1], lambda c: model.start(c, actor="agent01", at=T0))
    assert [c.reference for c in store.list("mss", status=["in_progress"])] == [refs[1]]
    assert [c.reference for c in store.list("mss", assignee="agent01")] == [refs[1]]
    assert len(store.list("mss", created_from=T0 + timedelta(minutes=3))) == 3


def test_overdue_cases_are_escalated_once(store):
    critical = _register(store, severity="critical")
    answered = _register(store, severity="critical")
    store.transition("mss", answered.reference,
                     lambda c: model.start(c, actor="agent01", at=T0 + timedelta(minutes=10)))
    _register(store, severity="low")
    assert store.escalate_overdue(T0 + timedelta(minutes=30)) == []
    first = store.escalate_overdue(T0 + timedelta(hours=2))
    assert [(c.reference, c.escalated) for c in first] == [(critical.reference, frozenset({"first_response"}))]
    assert store.escalate_overdue(T0 + timedelta(hours=3)) == []       # already flagged
    later = store.escalate_overdue(T0 + timedelta(hours=25))
    assert {(c.reference, c.escalated) for c in later} == {
        (critical.reference, frozenset({"first_response", "resolution"})),
        (answered.reference, frozenset({"resolution"}))}
    trail = store.history("mss", critical.reference)
    assert [e.details for e in trail if e.action is model.Action.ESCALATE] == [
        "overdue: first_response", "overdue: resolution"]
    assert [c.reference for c in store.list("mss", escalated=True)] == [answered.reference, critical.reference]


def test_the_caller_number_is_stored_encrypted(store, case_engine):
    cipher = NumberCipher(NumberCipher.generate_key())
    case = _register(store, number_hash="n" * 32, number_encrypted=cipher.encrypt("01001234567"))
    with case_engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT * FROM cases")).mappings().one()
    assert not any("01001234567" in str(v) or "1001234567" in str(v) for v in raw.values())
    assert cipher.decrypt(store.get("mss", case.reference).number_encrypted) == "01001234567"


def test_a_reference_already_taken_is_drawn_again(case_engine):
    draws = iter(["123456789", "123456789", "234567891"])
    taken = CaseStore(engine=case_engine, config=TWO_TENANTS, references=lambda: next(draws))
    first = _register(taken)
    second = _register(taken)
    assert (first.reference, second.reference) == ("123456789", "234567891")
    assert len(taken.history("mss", second.reference)) == 1
