"""The service check's calls, placed by the engine (docs/cases.md).

Every ``interval`` seconds the dialler reads the resolved cases whose check
is due (``CaseStore.service_checks_due``) and, for each:

* every attempt used up (``attempts``), or a number that cannot be called:
  the check ends ``unreached`` (counted: ``ivr_cases_check_unreached_total``);
* otherwise the attempt is *recorded first* (``check_called``: one more
  attempt, the next one due ``retry_minutes`` later), and only the engine
  whose write lands places it: two engines on one database never call a
  citizen twice for one attempt. Then, mode ``call``: a call file of
  Local/<reference>@ivr-service-check-dial, whose answer runs the
  question (``flow``); mode ``callback``: a callback of reason ``case`` for
  an agent of the sector's programme (the queued-callback machinery rings
  the agent first, then the citizen), and the check is the agent's.

A call that fails to go out (AMI away) has been counted; the next one
follows after ``retry_minutes``, as for an unanswered call, so a citizen is
never called in a loop. In mode ``callback`` the check is marked handed to
an agent in the same write that claims it; a callback request that then
fails (Redis away, or its reply lost) or that the callback limits refuse
(too many callbacks wait, in all or in the programme's queue:
``queues.callbacks.limits``; counted once in ``ivr_callback_refusals_total``)
is kept by the dialler and requested again at each tick until Redis takes
it (logged once when it fails, once when it is handed over). The request names the claim (call_uid
``case-<reference>-<claim time>``), and the callback store is idempotent
by it, so a request that reached Redis before its reply was lost is not a
second callback. Before each new attempt the case is read again: one
closed, reopened (or resolved again) or gone meanwhile is called back by
nobody. Known limit:
a restart of the engine while Redis is away forgets those, each named in
the error log. Database errors are logged once per
outage; the next tick tries again. The number is decrypted only to be
dialled, and never logged.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Callable

from cases import model
from cases.store import CaseConflict, CaseNotFound, CaseStore
from core.citizens.phone_numbers import normalize_egyptian_number
from core.configuration import Config
from core.contract import Context, Var
from core.privacy import NumberCipher
from metrics.registry import EngineMetrics
from queues.ami.actions import AmiClient, Originate
from queues.callbacks.limits import CallbackRefused
from queues.callbacks.store import CallbackStore

log = logging.getLogger(__name__)

TICK_SECONDS = 30.0
BATCH = 20
ACTION_ID_PREFIX = "ivr-service-check-"
CALLBACK_REASON = "case"


def callback_uid(case: model.Case) -> str:
    """The call_uid of a claimed check's callback request: one per claim (a
    case resolved again later is a new claim), the same for its retries."""
    return f"case-{case.reference}-{case.updated_at.strftime('%Y%m%dT%H%M%S.%f')}"


class ServiceCheckDialler:
    def __init__(self, *, config: Config, store: CaseStore, cipher: NumberCipher, ami: AmiClient,
                 callbacks: CallbackStore, clock: Callable[[], datetime], on_change: Callable[[], None] = lambda: None,
                 metrics: EngineMetrics | None = None, originator: AmiClient | None = None):
        """``metrics``: where a callback the limits refuse is counted
        (``ivr_callback_refusals_total``), once per check. ``originator``: where
        the calls go (``queues.spool.CallFileSpool``; default ``ami``)."""
        self._originator = originator or ami
        self._config = config
        self._metrics = metrics
        self._store = store
        self._cipher = cipher
        self._ami = ami
        self._callbacks = callbacks
        self._clock = clock
        self._on_change = on_change
        self._down = False
        self.placed = 0
        # Checks claimed in mode callback whose callback request failed:
        # reference -> (case, number, hotline), requested again each tick.
        self._unhanded: dict[str, tuple[model.Case, str, str]] = {}
        # Those of them the callback limits refused (reference -> the limit), counted and logged once.
        self._refused: dict[str, str] = {}

    async def tick(self) -> int:
        """One pass over the due checks; returns the attempts placed."""
        now = self._clock()
        placed = await self._hand_over_again(now)
        try:
            due = await asyncio.to_thread(self._store.service_checks_due, now, BATCH)
        except Exception as exc:  # the driver's errors are many: any of them means "not now"
            if not self._down:
                log.error("service check: the case database does not answer (%s); checks wait", type(exc).__name__)
            self._down = True
            self.placed += placed
            return placed
        if self._down:
            log.warning("service check: the case database answers again")
        self._down = False
        for case in due:
            try:
                placed += await self._one(case, now)
            except Exception as exc:
                log.error("service check %s: not placed now (%s: %s)", case.reference, type(exc).__name__,
                          str(exc).splitlines()[0] if str(exc) else "")
        self.placed += placed
        return placed

    async def _save(self, change: model.Change) -> model.Case | None:
        try:
            saved = await asyncio.to_thread(self._store.save, change)
        except CaseConflict:
            return None      # changed meanwhile (an agent, another engine): seen again next tick if still due
        self._on_change()
        return saved

    async def _one(self, case: model.Case, now: datetime) -> int:
        tenant = self._store.config.tenant(case.tenant)
        check = tenant.service_check
        number = normalize_egyptian_number(self._cipher.decrypt(case.number_encrypted))
        if number is None or (check.mode == "call" and case.check_attempts >= check.attempts):
            if await self._save(model.unreached(case, at=now)) is not None:
                log.info("service check %s: ended unreached after %d attempt(s)%s", case.reference,
                         case.check_attempts, "" if number else " (the number kept cannot be called)")
            return 0
        claimed = await self._save(model.check_called(case, at=now, how=check.mode,
                                                      retry_at=now + timedelta(minutes=check.retry_minutes)))
        if claimed is None:
            return 0
        if check.mode == "callback":
            return await self._callback(claimed, number, check.hotline, now)
        reply = await self._originator.send(self.originate(claimed, number))
        if not reply.ok:   # counted as an attempt: the next one follows after retry_minutes
            raise OSError(reply.message)
        log.info("service check %s: call %d of %d placed", case.reference, claimed.check_attempts, check.attempts)
        return 1

    def originate(self, case: model.Case, number: str) -> Originate:
        check = self._store.config.tenant(case.tenant).service_check
        return Originate(
            action_id=f"{ACTION_ID_PREFIX}{case.reference}-{case.check_attempts}",
            channel=f"Local/{case.reference}@{Context.SERVICE_CHECK_DIAL}/n",
            context=Context.SERVICE_CHECK, exten=case.reference, priority=1,
            timeout_ms=(check.ring_seconds + 5) * 1000,
            variables=(f"{Var.CHECK_NUMBER}={number}", f"{Var.CHECK_RING}={check.ring_seconds}",
                       f"{Var.HOTLINE}={check.hotline}", f"{Var.CHECK_TENANT}={case.tenant}"))

    async def _callback(self, case: model.Case, number: str, hotline: str, now: datetime) -> int:
        sector = self._store.config.sector(case.sector)
        program = sector.program if sector is not None and sector.program else ""
        # Every programme has its queue (validated); a sector without one: the hotline's fallback queue.
        queue = self._config.program_queue(program).id if program else ""
        try:
            callback_id = await self._callbacks.request(hotline=hotline, number=number, reason=CALLBACK_REASON,
                                                        call_uid=callback_uid(case), program=program,
                                                        queue=queue, now=now.timestamp())
        except CallbackRefused as refused:
            # Too many callbacks wait (in all, or in the programme's queue): the
            # check stays claimed and is asked again at each tick, under the same
            # call_uid, until one ends and makes room. Nothing was stored.
            if self._refused.get(case.reference) != refused.reason:
                log.warning("service check %s: the callback is refused for now (%s, limit %d); asked again at "
                            "each tick", case.reference, refused.reason, refused.limit)
                if self._metrics is not None:
                    self._metrics.callback_refusals.labels(reason=refused.reason).inc()
            self._refused[case.reference] = refused.reason
            self._unhanded[case.reference] = (case, number, hotline)
            return 0
        except Exception as exc:  # Redis away: the check is claimed, so it is kept here and asked again
            if case.reference not in self._unhanded:
                log.error("service check %s: the callback could not be requested (%s); asked again at each tick",
                          case.reference, type(exc).__name__)
            self._unhanded[case.reference] = (case, number, hotline)
            return 0
        self._refused.pop(case.reference, None)
        if self._unhanded.pop(case.reference, None) is not None:
            log.warning("service check %s: the callback is requested now", case.reference)
        log.info("service check %s: callback %s requested for an agent of %s", case.reference, callback_id,
                 program or "the hotline's fallback queue")
        return 1

    async def _hand_over_again(self, now: datetime) -> int:
        handed = 0
        for case, number, hotline in list(self._unhanded.values()):
            try:
                current = await asyncio.to_thread(self._store.get, case.tenant, case.reference)
            except CaseNotFound:
                current = None
            except Exception:   # the database away too: asked again at the next tick
                continue
            if current is None or current.status is not model.Status.RESOLVED \
                    or current.check_result != model.CHECK_CALLBACK or current.resolved_at != case.resolved_at:
                self._unhanded.pop(case.reference, None)
                self._refused.pop(case.reference, None)
                log.warning("service check %s: no callback after all, the case is %s meanwhile", case.reference,
                            "gone" if current is None else current.status.value)
                continue
            # The claimed case, not the one read: its call_uid names the claim.
            handed += await self._callback(case, number, hotline, now)
        return handed

    @property
    def unhanded(self) -> tuple[str, ...]:
        """References of the checks whose callback is still to be requested."""
        return tuple(self._unhanded)

    async def run(self, interval: float = TICK_SECONDS) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(interval)
