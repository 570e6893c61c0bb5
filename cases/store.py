"""The SQL side of cases: one transaction per change, the audit trail with it.

Synchronous SQLAlchemy Core: the CLI calls it directly, the engine from a
worker thread (``asyncio.to_thread``), so a slow database never stalls the
event loop that serves calls.

Every read is scoped to a tenant: a case of another tenant is simply not
found (:class:`CaseNotFound`), whoever asks. A write carries the version the
writer read; if somebody else wrote in between, nothing is overwritten and
:class:`CaseConflict` says so.

The citizen's identifiers (``national_id_hash``, ``number_hash``,
``number_encrypted``) are written at registration and afterwards only by
re-keying (:meth:`CaseStore.rekey_citizen`, :meth:`CaseStore.rewrite_identity`,
``cases/rekey.py``):
a transition never writes them, so a transition saved on a case read before
a re-keying does not bring the retired key's form back.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Callable, Iterable, Sequence

import sqlalchemy as sa

from core.configuration.model import Cases as CasesConfig

from . import model
from .model import Case, CaseEvent, Change, Status
from .reference import new_reference
from .schema import case_events, cases

REFERENCE_ATTEMPTS = 8
MAX_PAGE = 500


class CaseNotFound(LookupError):
    def __init__(self, reference: str):
        self.reference = reference
        super().__init__(f"no case {reference}")


class CaseConflict(Exception):
    """The case changed since it was read: read it again, then decide."""

    def __init__(self, reference: str, read_version: int, current_version: int):
        self.reference, self.read_version, self.current_version = reference, read_version, current_version
        super().__init__(f"case {reference} was changed by somebody else (read at version {read_version}, "
                         f"now {current_version}): nothing was saved; reload it")


_CASE_COLUMNS = [c.name for c in cases.columns if c.name != "id"]
# Set at registration, rewritten only by re-keying after a key rotation.
IDENTITY_COLUMNS = ("national_id_hash", "number_hash", "number_encrypted")


def _row_of(case: Case) -> dict:
    row = model.fields_of(case)
    row["status"] = case.status.value
    row["escalated"] = ",".join(sorted(case.escalated))
    return row


def _case_of(row) -> Case:
    m = row._mapping
    fields = {name: m[name] for name in _CASE_COLUMNS}
    fields["status"] = Status(fields["status"])
    fields["escalated"] = frozenset(e for e in (fields["escalated"] or "").split(",") if e)
    return Case(id=m["id"], **fields)


def _event_of(row) -> CaseEvent:
    m = row._mapping
    return CaseEvent(at=m["at"], actor=m["actor"], action=model.Action(m["action"]),
                     from_status=Status(m["from_status"]) if m["from_status"] else None,
                     to_status=Status(m["to_status"]), note=m["note"], details=m["details"])


def _hash_list(value: str | Sequence[str] | None) -> list[str]:
    values = [value] if isinstance(value, str) else list(value or ())
    return list(dict.fromkeys(v for v in values if v))


def _event_row(case_id: int, event: CaseEvent) -> dict:
    return {"case_id": case_id, "at": event.at, "actor": event.actor, "action": event.action.value,
            "from_status": event.from_status.value if event.from_status else None,
            "to_status": event.to_status.value, "note": event.note, "details": event.details}


class CaseStore:
    def __init__(self, *, engine: sa.Engine, config: CasesConfig,
                 references: Callable[[], str] = new_reference):
        self._engine = engine
        self._config = config
        self._references = references

    @property
    def config(self) -> CasesConfig:
        return self._config

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    # ------------------------------------------------------------------ writes

    def register(self, **fields) -> Case:
        """A new case (``model.register``'s fields, without the reference),
        stored with its first audit event; a reference already taken is drawn again."""
        for _ in range(REFERENCE_ATTEMPTS):
            change = model.register(self._config, reference=self._references(), **fields)
            try:
                return self._insert(change)
            except sa.exc.IntegrityError:
                if not self._exists(change.case.reference):
                    raise
        raise RuntimeError(f"no free reference number after {REFERENCE_ATTEMPTS} draws")

    def register_as(self, reference: str, **fields) -> tuple[Case, str]:
        """Register with a reference drawn beforehand: a case the agent saved
        while the database was away (the desktop's outbox) and the citizen
        may already have been told. Returns the case and how:
        ``registered``; ``already`` when this very case is stored (a replay
        after an interrupted drain: nothing is written twice); ``renumbered``
        when another case took the reference meanwhile (one in ten million)."""
        change = model.register(self._config, reference=reference, **fields)
        try:
            return self._insert(change), "registered"
        except sa.exc.IntegrityError:
            with self._engine.connect() as conn:
                row = conn.execute(sa.select(cases).where(cases.c.reference == reference)).first()
            if row is None:
                raise
            existing = _case_of(row)
            wanted = change.case
            if (existing.tenant, existing.created_at, existing.created_by, existing.call_id, existing.subject) == (
                    wanted.tenant, wanted.created_at, wanted.created_by, wanted.call_id, wanted.subject):
                return existing, "already"
            return self.register(**fields), "renumbered"

    def _insert(self, change: Change) -> Case:
        row = _row_of(change.case)
        row["version"] = 1
        with self._engine.begin() as conn:
            case_id = conn.execute(cases.insert().values(**row).returning(cases.c.id)).scalar_one()
            conn.execute(case_events.insert().values(**_event_row(case_id, change.event)))
        return replace(change.case, id=case_id, version=1)

    def save(self, change: Change) -> Case:
        """Store a transition made on the case as read: the new fields and the
        audit event together. :class:`CaseConflict` when the case changed since."""
        case = change.case
        if case.id is None:
            raise ValueError("save() needs a case read from the store")
        row = _row_of(case)
        for frozen_field in ("reference", "tenant", "created_at", "created_by", "version", *IDENTITY_COLUMNS):
            row.pop(frozen_field)
        with self._engine.begin() as conn:
            done = conn.execute(
                cases.update()
                .where(cases.c.id == case.id, cases.c.tenant == case.tenant, cases.c.version == case.version)
                .values(**row, version=cases.c.version + 1))
            if done.rowcount != 1:
                current = conn.execute(sa.select(cases.c.version).where(
                    cases.c.id == case.id, cases.c.tenant == case.tenant)).scalar_one_or_none()
                if current is None:
                    raise CaseNotFound(case.reference)
                raise CaseConflict(case.reference, case.version, current)
            conn.execute(case_events.insert().values(**_event_row(case.id, change.event)))
        return replace(case, version=case.version + 1)

    def transition(self, tenant: str, reference: str, step: Callable[[Case], Change],
                   expected_version: int | None = None) -> Case:
        """Read, apply ``step`` (a transition of ``cases.model``), save. With
        ``expected_version`` (what the agent's form was showing) the change is
        refused if the case moved on since, even before the write."""
        case = self.get(tenant, reference)
        if expected_version is not None and case.version != expected_version:
            raise CaseConflict(reference, expected_version, case.version)
        return self.save(step(case))

    # ------------------------------------------------------------------- reads

    def _exists(self, reference: str) -> bool:
        with self._engine.connect() as conn:
            return conn.execute(sa.select(cases.c.id).where(cases.c.reference == reference)).first() is not None

    def tenant_of(self, reference: str) -> str | None:
        """Whose case this is (to log an attempt on another tenant's case); None: no such case."""
        with self._engine.connect() as conn:
            return conn.execute(sa.select(cases.c.tenant).where(cases.c.reference == reference)).scalar_one_or_none()

    def get(self, tenant: str, reference: str) -> Case:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(cases).where(cases.c.reference == reference,
                                                      cases.c.tenant == tenant)).first()
        if row is None:
            raise CaseNotFound(reference)
        return _case_of(row)

    def history(self, tenant: str, reference: str) -> list[CaseEvent]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(case_events).join(cases, cases.c.id == case_events.c.case_id)
                .where(cases.c.reference == reference, cases.c.tenant == tenant)
                .order_by(case_events.c.id)).all()
        if not rows:
            self.get(tenant, reference)  # CaseNotFound, or a case without history (never written so)
        return [_event_of(r) for r in rows]

    def open_cases_of(self, tenant: str, *, national_id_hash: str | Sequence[str] | None = None,
                      number_hash: str | Sequence[str] | None = None, limit: int = 20) -> list[Case]:
        """The citizen's open cases, newest first, by the ID's or the number's
        hash: one, or several (the same ID or number hashed with each key of
        its ring after a rotation)."""
        who = []
        id_hashes, number_hashes = _hash_list(national_id_hash), _hash_list(number_hash)
        if id_hashes:
            who.append(cases.c.national_id_hash.in_(id_hashes))
        if number_hashes:
            who.append(cases.c.number_hash.in_(number_hashes))
        if not who:
            return []
        query = (sa.select(cases).where(cases.c.tenant == tenant, sa.or_(*who),
                                        cases.c.status.in_([s.value for s in model.OPEN_STATUSES]))
                 .order_by(cases.c.created_at.desc(), cases.c.id.desc()).limit(min(limit, MAX_PAGE)))
        with self._engine.connect() as conn:
            return [_case_of(r) for r in conn.execute(query)]

    # ------------------------------------------------------- re-keying after a key rotation

    def rekey_citizen(self, found: Iterable[Case], *, national_id_hashes: Sequence[str] = (),
                      number_hashes: Sequence[str] = ()) -> list[Case]:
        """Lazy re-keying: ``found`` were looked up with these hashes of one
        citizen's ID and number, the current key's first; a case that matched
        through a retired key's hash gets the current key's hash of the same
        ID or number. Returns the cases as they are now.

        Silent (no audit line, no new version): the case says nothing new,
        only the form its identifier is kept in changes, and a new version
        would make every page showing the case refuse its next save. Each
        case is one transaction, written only if the column still holds the
        hash that matched (a concurrent re-keying wins, nothing is undone)."""
        out = []
        for case in found:
            new = {}
            if len(national_id_hashes) > 1 and case.national_id_hash in national_id_hashes[1:]:
                new["national_id_hash"] = national_id_hashes[0]
            if len(number_hashes) > 1 and case.number_hash in number_hashes[1:]:
                new["number_hash"] = number_hashes[0]
            if new and self.rewrite_identity([(case.id, {k: getattr(case, k) for k in new}, new)]) == 1:
                case = replace(case, **new)
            out.append(case)
        return out

    def rewrite_identity(self, changes: Sequence[tuple[int, dict, dict]]) -> int:
        """Re-keying, in one transaction: each ``(case id, was, new)`` sets
        identity columns (``IDENTITY_COLUMNS``) of a case if they still hold
        ``was`` (a case changed meanwhile, or gone, is left: re-keying again
        finds it). Returns how many cases were rewritten."""
        done = 0
        with self._engine.begin() as conn:
            for case_id, was, new in changes:
                if not new or set(new) - set(IDENTITY_COLUMNS) or set(was) - set(IDENTITY_COLUMNS):
                    raise ValueError(f"only {', '.join(IDENTITY_COLUMNS)} are re-keyed")
                where = [cases.c.id == case_id] + [cases.c[k].is_(None) if v is None else cases.c[k] == v
                                                   for k, v in was.items()]
                done += conn.execute(cases.update().where(*where).values(**new)).rowcount
        return done

    def identities(self, *, after_id: int = 0, limit: int = MAX_PAGE) -> list[dict]:
        """A batch of every tenant's cases that keep a number, by id from
        ``after_id`` (excluded): id, reference, number_hash, number_encrypted."""
        query = (sa.select(cases.c.id, cases.c.reference, cases.c.number_hash, cases.c.number_encrypted)
                 .where(cases.c.id > after_id, sa.or_(cases.c.number_encrypted.is_not(None),
                                                      cases.c.number_hash.is_not(None)))
                 .order_by(cases.c.id).limit(max(1, limit)))
        with self._engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def list(self, tenant: str, *, status: Iterable[str] = (), sector: str | None = None,
             severity: str | None = None, assignee: str | None = None, escalated: bool | None = None,
             created_from: datetime | None = None, created_to: datetime | None = None,
             limit: int = 50, offset: int = 0) -> list[Case]:
        """Newest first, filtered, paged (``limit`` at most MAX_PAGE)."""
        query = sa.select(cases).where(cases.c.tenant == tenant)
        status = [Status(s).value for s in status]
        if status:
            query = query.where(cases.c.status.in_(status))
        for column, value in ((cases.c.sector, sector), (cases.c.severity, severity),
                              (cases.c.assignee, assignee)):
            if value is not None:
                query = query.where(column == value)
        if escalated is not None:
            query = query.where(cases.c.escalated != "" if escalated else cases.c.escalated == "")
        if created_from is not None:
            query = query.where(cases.c.created_at >= created_from)
        if created_to is not None:
            query = query.where(cases.c.created_at < created_to)
        query = query.order_by(cases.c.created_at.desc(), cases.c.id.desc()).limit(
            max(1, min(limit, MAX_PAGE))).offset(max(0, offset))
        with self._engine.connect() as conn:
            return [_case_of(r) for r in conn.execute(query)]

    def work_queue(self, tenant: str, sector: str, *, limit: int = 50, offset: int = 0) -> list[Case]:
        """A sector's open cases, the most urgent first: the earliest
        resolution deadline (a critical case's is the nearest), then the oldest.
        A case is in its sector's queue from its registration on."""
        query = (sa.select(cases).where(cases.c.tenant == tenant, cases.c.sector == sector,
                                        cases.c.status.in_([s.value for s in model.OPEN_STATUSES]))
                 .order_by(cases.c.resolution_due, cases.c.id)
                 .limit(max(1, min(limit, MAX_PAGE))).offset(max(0, offset)))
        with self._engine.connect() as conn:
            return [_case_of(r) for r in conn.execute(query)]

    def overdue(self, now: datetime, limit: int = MAX_PAGE) -> list[Case]:
        """Open cases of every tenant with a deadline passed and not yet escalated."""
        open_values = [s.value for s in model.OPEN_STATUSES]
        query = (sa.select(cases).where(
            cases.c.status.in_(open_values),
            sa.or_(cases.c.resolution_due < now,
                   sa.and_(cases.c.first_response_at.is_(None), cases.c.first_response_due < now)))
            .order_by(cases.c.id).limit(limit))
        with self._engine.connect() as conn:
            found = [_case_of(r) for r in conn.execute(query)]
        return [c for c in found if model.overdue(c, now) - c.escalated]

    def escalate_overdue(self, now: datetime) -> list[Case]:
        """Flag every newly overdue case (one audit event each); a case changed
        meanwhile by an agent is left for the next run."""
        done = []
        for case in self.overdue(now):
            change = model.escalate(case, at=now)
            if change is None:
                continue
            try:
                done.append(self.save(change))
            except CaseConflict:
                continue
        return done

    def service_checks_due(self, now: datetime, limit: int = 50) -> list[Case]:
        """Resolved cases whose service check is due (docs/cases.md): their
        tenant checks (``service_check.mode`` call or callback), the case
        kept the citizen's number, the check has not ended, the resolution
        is ``after_minutes`` old and the next attempt's time has come.
        Oldest resolution first."""
        wanted = []
        for tenant in self._config.tenants:
            check = tenant.service_check
            if check.mode == "none":
                continue
            wanted.append(sa.and_(cases.c.tenant == tenant.id,
                                  cases.c.resolved_at <= now - timedelta(minutes=check.after_minutes)))
        if not wanted:
            return []
        query = (sa.select(cases).where(
            cases.c.status == Status.RESOLVED.value, cases.c.check_result.is_(None),
            cases.c.number_encrypted.is_not(None), sa.or_(*wanted),
            sa.or_(cases.c.check_due_at.is_(None), cases.c.check_due_at <= now))
            .order_by(cases.c.resolved_at, cases.c.id).limit(max(1, min(limit, MAX_PAGE))))
        with self._engine.connect() as conn:
            return [_case_of(r) for r in conn.execute(query)]
