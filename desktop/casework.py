"""What the desktop does with cases: the case store's calls, off the event loop.

The store (``cases.store``) is synchronous SQLAlchemy; each call here runs
in a worker thread (``asyncio.to_thread``) so a slow database never stalls
calls. The citizen's identifiers come from the agent's current pop, never
from the browser: the national ID's keyed hash, the number's keyed hash and
the number itself, encrypted with the case key before it is stored.

With the database away, a registration is kept in the outbox
(``desktop.outbox``) with its reference, and so is an update of a case the
page was showing (its action, note and the version the agent saw); the
engine applies them in order when the database answers again
(``drain_outbox``). An update that no longer applies then (the case moved
on, or the step is not allowed from its state) is not forced: the agent's
words go into the case's trail as a note saying so, and nothing is lost.
Reads answer that cases cannot be reached right now.

An agent works only on their own tenant's cases. A reference of another
tenant is answered as unknown (the page learns nothing about it) and the
attempt is logged with the agent and both tenants.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import sqlalchemy as sa
from redis.exceptions import RedisError

from cases import model
from cases.model import Action
from cases.reference import new_reference
from cases.store import CaseConflict, CaseNotFound, CaseStore
from cases.views import event_row, named_row
from core.configuration import Config
from core.privacy import NumberCipher

from .forms import CaseUpdate, NewCase
from .outbox import CaseOutbox
from .pops import Pop

log = logging.getLogger(__name__)


QUEUED_NAME = "محفوظ، يُسجَّل عند عودة قاعدة البيانات"


class CasesUnavailable(Exception):
    """The case database cannot be reached right now."""


# Said in the note that keeps an update which no longer applied (the page's button names).
ACTION_NAMES = {"start": "بدء العمل", "wait_for_citizen": "في انتظار المواطن", "resolve": "تم الحل",
                "close": "إغلاق", "reopen": "إعادة فتح", "note": "إضافة ملاحظة"}
_WHY_AR = {"CaseConflict": "تغيّر البلاغ أثناء انقطاع قاعدة البيانات",
           "TransitionRefused": "غير مسموح من حالة البلاغ"}


def _step(action: str, note: str, *, actor: str, at: datetime):
    if action == Action.NOTE.value:
        return lambda c: model.add_note(c, actor=actor, at=at, note=note)
    transition = getattr(model, action)
    return lambda c: transition(c, actor=actor, at=at, note=note)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class CaseWork:
    def __init__(self, *, store: CaseStore, config: Config, cipher: NumberCipher,
                 clock: Callable[[], datetime] = _now, on_change: Callable[[], None] = lambda: None,
                 outbox: CaseOutbox | None = None):
        """``on_change``: called after each write (the engine refreshes the case figures).
        ``outbox``: where registrations wait while the database is away (None: they are refused)."""
        self._store = store
        self._config = config
        self._cipher = cipher
        self._clock = clock
        self._on_change = on_change
        self._outbox = outbox

    async def _run(self, fn, *args, **kwargs):
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise CasesUnavailable(type(exc.orig).__name__ if exc.orig is not None else str(exc)) from exc

    def row(self, case: model.Case) -> dict[str, Any]:
        row = named_row(case, self._config, self._cipher)
        row["reference_spaced"] = " ".join(case.reference[i:i + 3] for i in range(0, len(case.reference), 3))
        return row

    async def open_cases(self, tenant: str, national_id_hash: str | Sequence[str] | None,
                         number_hash: str | Sequence[str] | None) -> list[dict[str, Any]]:
        """The citizen's open cases by the ID's and the number's hashes (one,
        or one per key of the ring, the current key's first). A case found
        through a retired key is re-keyed on the way (``CaseStore.rekey_citizen``)."""
        ids = [national_id_hash] if isinstance(national_id_hash, str) else list(national_id_hash or ())
        numbers = [number_hash] if isinstance(number_hash, str) else list(number_hash or ())
        found = await self._run(self._find_and_rekey, tenant, ids, numbers)
        return [self.row(c) for c in found]

    def _find_and_rekey(self, tenant: str, ids: list[str], numbers: list[str]) -> list[model.Case]:
        found = self._store.open_cases_of(tenant, national_id_hash=ids, number_hash=numbers)
        if len(ids) < 2 and len(numbers) < 2:
            return found
        try:
            now = self._store.rekey_citizen(found, national_id_hashes=ids, number_hashes=numbers)
        except sa.exc.SQLAlchemyError as exc:   # the cases were found: show them, re-key next time
            log.warning("open cases found but not re-keyed now (%s)", type(exc).__name__)
            return found
        rekeyed = [c.reference for c, before in zip(now, found) if c != before]
        if rekeyed:
            log.info("case(s) %s found through a retired key: re-keyed to the current key", ", ".join(rekeyed))
        return now

    async def work_queue(self, *, tenant: str, sector: str, limit: int, offset: int) -> list[dict[str, Any]]:
        now = self._clock()
        found = await self._run(self._store.work_queue, tenant, sector, limit=limit, offset=offset)
        return [{**self.row(c), "overdue": sorted(model.overdue(c, now))} for c in found]

    async def create(self, *, agent_id: str, tenant: str, form: NewCase, pop: Pop | None) -> dict[str, Any]:
        """A case from the form, with the citizen of ``pop`` when the form is for that call.
        With the database away it is kept in the outbox: the answer then has
        ``queued`` true and the reference the case will have."""
        citizen: dict[str, Any] = {}
        if pop is not None and form.call_id == pop.call_id:
            citizen = dict(call_id=pop.call_id, program=pop.program or None, governorate=pop.governorate or None,
                           national_id_hash=pop.national_id_hash, number_hash=pop.number_hash,
                           number_encrypted=self._cipher.encrypt(pop.number))
        fields = dict(tenant=tenant, sector=form.sector, kind=form.kind, severity=form.severity, actor=agent_id,
                      at=self._clock(), subject=form.subject, note=form.note, **citizen)
        try:
            case = await self._run(self._store.register, **fields)
        except CasesUnavailable:
            if self._outbox is None:
                raise
            return await self._keep(agent_id, fields)
        self._on_change()
        log.info("case %s registered by agent %s (%s, %s, %s)%s", case.reference, agent_id, case.sector,
                 case.kind, case.severity, f" for call {pop.call_id}" if citizen else "")
        return self.row(case)

    async def _keep(self, agent_id: str, fields: dict) -> dict[str, Any]:
        reference = new_reference()
        case = model.register(self._store.config, reference=reference, **fields).case  # checked, not stored
        try:
            await self._outbox.put({"reference": reference, **fields})
        except RedisError as exc:
            raise CasesUnavailable(f"database and Redis ({type(exc).__name__})") from exc
        log.warning("case database unavailable: case %s by agent %s kept in the outbox, registered when it "
                    "answers", reference, agent_id)
        return {**self.row(case), "queued": True, "status_name": QUEUED_NAME}

    async def drain_outbox(self) -> int:
        """Apply what was kept while the database was away, oldest first:
        registrations and updates; the number newly stored. Stops at the
        first sign the database is still away."""
        if self._outbox is None:
            return 0
        stored = 0
        for entry_id, entry in await self._outbox.pending():
            if entry.pop("op", "register") == "update":
                try:
                    applied = await self._run(self._apply_kept_update, entry)
                except CasesUnavailable:
                    break
                await self._outbox.done(entry_id)
                stored += applied
                continue
            reference = entry.pop("reference")
            try:
                case, how = await self._run(self._store.register_as, reference, **entry)
            except CasesUnavailable:
                break
            await self._outbox.done(entry_id)
            if how == "renumbered":
                log.warning("case %s kept in the outbox is registered as %s: its reference was taken meanwhile",
                            reference, case.reference)
            if how != "already":
                stored += 1
                log.info("case %s from the outbox registered (%s, %s)", case.reference, case.sector, case.severity)
        if stored:
            self._on_change()
        return stored

    async def read(self, *, agent_id: str, tenant: str, reference: str) -> dict[str, Any]:
        try:
            case = await self._run(self._store.get, tenant, reference)
            history = await self._run(self._store.history, tenant, reference)
        except CaseNotFound:
            await self._refused(agent_id, tenant, reference)
            raise
        return {"case": self.row(case), "history": [event_row(e, self._config) for e in history]}

    async def update(self, *, agent_id: str, tenant: str, reference: str, form: CaseUpdate) -> dict[str, Any]:
        at = self._clock()
        step = _step(form.action, form.note, actor=agent_id, at=at)
        try:
            case = await self._run(self._store.transition, tenant, reference, step, expected_version=form.version)
        except CasesUnavailable:
            if self._outbox is None or form.version is None:
                raise
            return await self._keep_update(agent_id, tenant, reference, form, at)
        except CaseNotFound:
            await self._refused(agent_id, tenant, reference)
            raise
        self._on_change()
        log.info("case %s: %s by agent %s -> %s", reference, form.action, agent_id, case.status.value)
        return self.row(case)

    async def _keep_update(self, agent_id: str, tenant: str, reference: str, form: CaseUpdate,
                           at: datetime) -> dict[str, Any]:
        entry = {"op": "update", "tenant": tenant, "reference": reference, "action": form.action,
                 "note": form.note, "version": form.version, "actor": agent_id, "at": at}
        try:
            await self._outbox.put(entry)
        except RedisError as exc:
            raise CasesUnavailable(f"database and Redis ({type(exc).__name__})") from exc
        log.warning("case database unavailable: %s of case %s by agent %s kept in the outbox, applied when it "
                    "answers", form.action, reference, agent_id)
        # The version the case will have once this is applied: the page's next
        # update of it follows this one in the outbox.
        return {"reference": reference, "queued": True, "action": form.action, "version": form.version + 1,
                "status_name": QUEUED_NAME}

    def _apply_kept_update(self, entry: dict) -> int:
        """One kept update, in a worker thread: 1 applied, 0 not (already
        applied, kept as a note instead, or the case is not the tenant's)."""
        tenant, reference, actor, at = entry["tenant"], entry["reference"], entry["actor"], entry["at"]
        action, note = entry["action"], entry.get("note", "")
        try:
            history = self._store.history(tenant, reference)
        except CaseNotFound:
            log.warning("a kept %s by agent %s names case %s, unknown in tenant %s: dropped", action, actor,
                        reference, tenant)
            return 0
        if any(e.actor == actor and e.at == at and e.action.value == action for e in history):
            return 0    # applied before, its removal from Redis failed: not twice
        try:
            self._store.transition(tenant, reference, _step(action, note, actor=actor, at=at),
                                   expected_version=entry["version"])
        except (CaseConflict, model.TransitionRefused) as exc:
            why = ("the case changed meanwhile" if isinstance(exc, CaseConflict)
                   else "not allowed from the case's status")
            words = f"[{ACTION_NAMES.get(action, action)}: لم يُطبَّق، {_WHY_AR[type(exc).__name__]}] {note}".strip()
            self._store.transition(tenant, reference, lambda c: model.add_note(c, actor=actor, at=at, note=words))
            log.warning("kept %s of case %s by agent %s not applied (%s): kept as a note", action, reference,
                        actor, why)
            self._on_change()
            return 0
        log.info("case %s: %s by agent %s from the outbox", reference, action, actor)
        self._on_change()
        return 1

    async def _refused(self, agent_id: str, tenant: str, reference: str) -> None:
        try:
            owner = await self._run(self._store.tenant_of, reference)
        except CasesUnavailable:
            return
        if owner is not None and owner != tenant:
            log.warning("agent %s (tenant %s) refused case %s of tenant %s", agent_id, tenant, reference, owner)
