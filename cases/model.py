"""The case and its status state machine: pure, no I/O.

States and transitions (docs/cases.md has the picture)::

    action            from                                              to
    assign            new, assigned, in_progress, waiting_for_citizen,  assigned
                      reopened
    start             new, assigned, waiting_for_citizen, reopened       in_progress
    wait_for_citizen  in_progress                                       waiting_for_citizen
    resolve           in_progress, waiting_for_citizen                  resolved
    close             resolved                                          closed
    reopen            resolved, closed                                  reopened
    confirm           resolved                                          closed
    dispute           resolved                                          reopened

``add_note``, ``reclassify`` and ``escalate`` keep the status, and so do
``check_called`` and ``unreached``.

*The service check* (docs/cases.md): once a case that kept the citizen's
number is resolved, the engine asks the citizen whether they got the
service. ``check_called`` records each attempt (the call placed, or the
callback requested), ``confirm`` is the citizen's *yes* (the case is closed),
``dispute`` their *no* (the case is reopened for its sector), ``unreached``
the end of the attempts without an answer. ``resolve`` starts the check
afresh.

Every transition is one function taking the case as it was read and
returning a :class:`Change`: the case as it becomes and the audit event
that records it (who, when, from, to, note). A transition the state machine
does not allow raises :class:`TransitionRefused`, naming the action and the
state. The store writes the two together, or neither, and refuses a change
made on a stale read (:class:`CaseConflict`, in ``store``).

*First response* is the first time somebody starts working on the case
(it enters ``in_progress``); *resolution* is the latest ``resolve``. Each is
due a number of hours after registration that depends on the severity
(``config/cases.yaml``, ``deadlines``); a reclassification to another
severity moves both deadlines, counted from the registration.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from core.configuration.model import Cases as CasesConfig

SYSTEM_ACTOR = "ivr"   # registrations made by the IVR itself, escalations by the engine


class Status(str, enum.Enum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING_FOR_CITIZEN = "waiting_for_citizen"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"


OPEN_STATUSES = frozenset({Status.NEW, Status.ASSIGNED, Status.IN_PROGRESS, Status.WAITING_FOR_CITIZEN,
                           Status.REOPENED})


class Action(str, enum.Enum):
    REGISTER = "register"
    ASSIGN = "assign"
    START = "start"
    WAIT_FOR_CITIZEN = "wait_for_citizen"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    NOTE = "note"
    RECLASSIFY = "reclassify"
    ESCALATE = "escalate"
    CONFIRM = "confirm"
    DISPUTE = "dispute"
    CHECK_CALL = "check_call"
    UNREACHED = "unreached"


# Where each status-changing action may start from, and where it leads.
TRANSITIONS: dict[Action, tuple[frozenset[Status], Status]] = {
    Action.ASSIGN: (frozenset({Status.NEW, Status.ASSIGNED, Status.IN_PROGRESS, Status.WAITING_FOR_CITIZEN,
                               Status.REOPENED}), Status.ASSIGNED),
    Action.START: (frozenset({Status.NEW, Status.ASSIGNED, Status.WAITING_FOR_CITIZEN, Status.REOPENED}),
                   Status.IN_PROGRESS),
    Action.WAIT_FOR_CITIZEN: (frozenset({Status.IN_PROGRESS}), Status.WAITING_FOR_CITIZEN),
    Action.RESOLVE: (frozenset({Status.IN_PROGRESS, Status.WAITING_FOR_CITIZEN}), Status.RESOLVED),
    Action.CLOSE: (frozenset({Status.RESOLVED}), Status.CLOSED),
    Action.REOPEN: (frozenset({Status.RESOLVED, Status.CLOSED}), Status.REOPENED),
    Action.CONFIRM: (frozenset({Status.RESOLVED}), Status.CLOSED),
    Action.DISPUTE: (frozenset({Status.RESOLVED}), Status.REOPENED),
}

CITIZEN_ACTOR = "citizen"   # the citizen's own answer to the service check

# check_result: how the service check of the latest resolution ended.
CHECK_YES, CHECK_NO, CHECK_UNREACHED, CHECK_CALLBACK = "yes", "no", "unreached", "callback"
CHECK_RESULTS = (CHECK_YES, CHECK_NO, CHECK_UNREACHED, CHECK_CALLBACK)


class TransitionRefused(ValueError):
    """The state machine does not allow ``action`` from ``status``."""

    def __init__(self, action: Action, status: Status, reference: str = "", why: str = ""):
        self.action, self.status = action, status
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[action][0])) if action in TRANSITIONS else "resolved"
        where = f"case {reference}: " if reference else ""
        super().__init__(f"{where}cannot {action.value} a case that is {status.value} "
                         f"({why or 'allowed from: ' + allowed})")


class InvalidCase(ValueError):
    """A field the configuration does not know (kind, severity, sector, tenant)."""


@dataclass(frozen=True)
class Case:
    reference: str
    tenant: str
    sector: str
    kind: str
    severity: str
    status: Status
    created_at: datetime
    created_by: str
    first_response_due: datetime
    resolution_due: datetime
    subject: str = ""
    assignee: str | None = None
    program: str | None = None
    governorate: str | None = None
    # The Asterisk call the case was opened from (its uniqueid), if any.
    call_id: str | None = None
    # The citizen, never in clear: the national ID's and the number's keyed
    # hashes (lookups), the number itself encrypted (call-backs).
    national_id_hash: str | None = None
    number_hash: str | None = None
    number_encrypted: str | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    reopened_count: int = 0
    # Deadlines found passed: "first_response", "resolution" (escalations).
    escalated: frozenset[str] = frozenset()
    updated_at: datetime | None = None
    # The service check of the latest resolution: calls made, when the next
    # is due, how it ended (CHECK_RESULTS; None: not ended).
    check_attempts: int = 0
    check_due_at: datetime | None = None
    check_result: str | None = None
    # Optimistic concurrency: the store refuses a write made on an older read.
    version: int = 0
    id: int | None = field(default=None, compare=False)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True)
class CaseEvent:
    """One line of the audit trail."""

    at: datetime
    actor: str
    action: Action
    from_status: Status | None
    to_status: Status
    note: str = ""
    # What else changed (assignee, severity...), as "field: old -> new" lines.
    details: str = ""


@dataclass(frozen=True)
class Change:
    case: Case
    event: CaseEvent


def deadlines(config: CasesConfig, severity: str, created_at: datetime) -> tuple[datetime, datetime]:
    d = config.deadlines[severity]
    return (created_at + timedelta(hours=d.first_response_hours),
            created_at + timedelta(hours=d.resolution_hours))


def register(config: CasesConfig, *, reference: str, tenant: str, sector: str, kind: str, severity: str,
             actor: str, at: datetime, subject: str = "", program: str | None = None,
             governorate: str | None = None, call_id: str | None = None, national_id_hash: str | None = None,
             number_hash: str | None = None, number_encrypted: str | None = None, note: str = "") -> Change:
    """A new case, checked against the configuration."""
    if config.tenant(tenant) is None:
        raise InvalidCase(f"unknown tenant {tenant!r}")
    found = config.sector(sector)
    if found is None:
        raise InvalidCase(f"unknown sector {sector!r}")
    if found.tenant != tenant:
        raise InvalidCase(f"sector {sector!r} belongs to tenant {found.tenant!r}, not {tenant!r}")
    if kind not in config.kinds:
        raise InvalidCase(f"unknown kind {kind!r} (one of: {', '.join(config.kinds)})")
    if severity not in config.deadlines:
        raise InvalidCase(f"unknown severity {severity!r} (one of: {', '.join(config.deadlines)})")
    first, resolution = deadlines(config, severity, at)
    case = Case(reference=reference, tenant=tenant, sector=sector, kind=kind, severity=severity,
                status=Status.NEW, created_at=at, created_by=actor, first_response_due=first,
                resolution_due=resolution, subject=subject.strip(), program=program, governorate=governorate,
                call_id=call_id, national_id_hash=national_id_hash, number_hash=number_hash,
                number_encrypted=number_encrypted, updated_at=at)
    return Change(case, CaseEvent(at=at, actor=actor, action=Action.REGISTER, from_status=None,
                                  to_status=Status.NEW, note=note.strip()))


def _move(case: Case, action: Action, *, actor: str, at: datetime, note: str, details: str = "",
          **fields) -> Change:
    sources, target = TRANSITIONS[action]
    if case.status not in sources:
        raise TransitionRefused(action, case.status, case.reference)
    moved = replace(case, status=target, updated_at=at, **fields)
    return Change(moved, CaseEvent(at=at, actor=actor, action=action, from_status=case.status,
                                   to_status=target, note=note.strip(), details=details))


def assign(case: Case, *, assignee: str, actor: str, at: datetime, note: str = "") -> Change:
    if not assignee:
        raise InvalidCase("assign needs an assignee")
    return _move(case, Action.ASSIGN, actor=actor, at=at, note=note, assignee=assignee,
                 details=f"assignee: {case.assignee or '-'} -> {assignee}")


def start(case: Case, *, actor: str, at: datetime, note: str = "") -> Change:
    """Somebody works on the case: the first time, that is its first response."""
    first = case.first_response_at or at
    assignee = case.assignee or actor
    return _move(case, Action.START, actor=actor, at=at, note=note, first_response_at=first, assignee=assignee)


def wait_for_citizen(case: Case, *, actor: str, at: datetime, note: str = "") -> Change:
    return _move(case, Action.WAIT_FOR_CITIZEN, actor=actor, at=at, note=note)


def resolve(case: Case, *, actor: str, at: datetime, note: str = "") -> Change:
    return _move(case, Action.RESOLVE, actor=actor, at=at, note=note, resolved_at=at, check_attempts=0,
                 check_due_at=None, check_result=None)


def close(case: Case, *, actor: str, at: datetime, note: str = "") -> Change:
    return _move(case, Action.CLOSE, actor=actor, at=at, note=note, closed_at=at)


def reopen(case: Case, *, actor: str, at: datetime, note: str = "") -> Change:
    """Back to work (the citizen did not get the service): counted, and the
    resolution is no longer current."""
    return _move(case, Action.REOPEN, actor=actor, at=at, note=note, reopened_count=case.reopened_count + 1,
                 resolved_at=None, closed_at=None)


def _check_pending(case: Case, action: Action) -> None:
    if case.status is not Status.RESOLVED:
        raise TransitionRefused(action, case.status, case.reference)
    if case.check_result is not None:
        raise TransitionRefused(action, case.status, case.reference,
                                why=f"its service check already ended: {case.check_result}")


def check_called(case: Case, *, at: datetime, retry_at: datetime | None, how: str = "call",
                 actor: str = SYSTEM_ACTOR) -> Change:
    """One attempt of the service check, recorded *before* it is made (the
    write claims it: of two engines, only the one whose write lands calls).
    ``retry_at``: when the next attempt is due if this one gets no answer.
    ``how="callback"``: an agent will call the citizen (the callback
    machinery); the check is then the agent's, and ends here."""
    _check_pending(case, Action.CHECK_CALL)
    attempt = case.check_attempts + 1
    fields: dict = dict(check_attempts=attempt, check_due_at=retry_at)
    if how == "callback":
        fields.update(check_result=CHECK_CALLBACK, check_due_at=None)
    elif how != "call":
        raise InvalidCase(f"unknown service check {how!r}")
    return Change(replace(case, updated_at=at, **fields),
                  CaseEvent(at=at, actor=actor, action=Action.CHECK_CALL, from_status=case.status,
                            to_status=case.status, details=f"{how}: attempt {attempt}"))


def confirm(case: Case, *, at: datetime, actor: str = CITIZEN_ACTOR, note: str = "") -> Change:
    """The citizen got the service (the check's *yes*): the case is closed."""
    _check_pending(case, Action.CONFIRM)
    return _move(case, Action.CONFIRM, actor=actor, at=at, note=note, closed_at=at, check_result=CHECK_YES,
                 check_due_at=None)


def dispute(case: Case, *, at: datetime, actor: str = CITIZEN_ACTOR, note: str = "") -> Change:
    """The citizen did not get the service (the check's *no*): back to its
    sector, counted as a reopening."""
    _check_pending(case, Action.DISPUTE)
    return _move(case, Action.DISPUTE, actor=actor, at=at, note=note, reopened_count=case.reopened_count + 1,
                 resolved_at=None, closed_at=None, check_result=CHECK_NO, check_due_at=None)


def unreached(case: Case, *, at: datetime, actor: str = SYSTEM_ACTOR) -> Change:
    """Every attempt of the check went unanswered: the case stays resolved."""
    _check_pending(case, Action.UNREACHED)
    return Change(replace(case, updated_at=at, check_result=CHECK_UNREACHED, check_due_at=None),
                  CaseEvent(at=at, actor=actor, action=Action.UNREACHED, from_status=case.status,
                            to_status=case.status, details=f"attempts: {case.check_attempts}"))


def add_note(case: Case, *, actor: str, at: datetime, note: str) -> Change:
    """A note in the trail; the status does not change."""
    if not note.strip():
        raise InvalidCase("a note needs some text")
    return Change(replace(case, updated_at=at),
                  CaseEvent(at=at, actor=actor, action=Action.NOTE, from_status=case.status,
                            to_status=case.status, note=note.strip()))


def reclassify(config: CasesConfig, case: Case, *, actor: str, at: datetime, severity: str | None = None,
               kind: str | None = None, sector: str | None = None, note: str = "") -> Change:
    """Another severity, kind or sector (same tenant); deadlines follow the severity."""
    if not case.is_open:
        raise TransitionRefused(Action.RECLASSIFY, case.status, case.reference)
    changes: dict[str, object] = {}
    details = []
    if severity is not None and severity != case.severity:
        if severity not in config.deadlines:
            raise InvalidCase(f"unknown severity {severity!r}")
        first, resolution = deadlines(config, severity, case.created_at)
        changes.update(severity=severity, first_response_due=first, resolution_due=resolution)
        details.append(f"severity: {case.severity} -> {severity}")
    if kind is not None and kind != case.kind:
        if kind not in config.kinds:
            raise InvalidCase(f"unknown kind {kind!r}")
        changes["kind"] = kind
        details.append(f"kind: {case.kind} -> {kind}")
    if sector is not None and sector != case.sector:
        found = config.sector(sector)
        if found is None or found.tenant != case.tenant:
            raise InvalidCase(f"unknown sector {sector!r} for tenant {case.tenant!r}")
        changes["sector"] = sector
        details.append(f"sector: {case.sector} -> {sector}")
    if not changes:
        raise InvalidCase("nothing to reclassify")
    return Change(replace(case, updated_at=at, **changes),
                  CaseEvent(at=at, actor=actor, action=Action.RECLASSIFY, from_status=case.status,
                            to_status=case.status, note=note.strip(), details="\n".join(details)))


def overdue(case: Case, now: datetime) -> frozenset[str]:
    """The deadlines this case has passed and not yet met, escalated or not."""
    late = set()
    if case.first_response_at is None and case.is_open and now > case.first_response_due:
        late.add("first_response")
    if case.is_open and now > case.resolution_due:
        late.add("resolution")
    return frozenset(late)


def escalate(case: Case, *, at: datetime, actor: str = SYSTEM_ACTOR) -> Change | None:
    """Flag the deadlines newly found passed; None when there is nothing new."""
    new = overdue(case, at) - case.escalated
    if not new:
        return None
    return Change(replace(case, escalated=case.escalated | new, updated_at=at),
                  CaseEvent(at=at, actor=actor, action=Action.ESCALATE, from_status=case.status,
                            to_status=case.status, details="\n".join(f"overdue: {d}" for d in sorted(new))))


def fields_of(case: Case) -> dict:
    """The case as plain fields (the store's row, without the database id)."""
    out = dataclasses.asdict(case)
    out.pop("id")
    return out
