"""The service check's dialler on a real database (SQLite and PostgreSQL):
which resolved cases are due, the attempt claimed before the call, the
Originate it sends, unreached after the last attempt, and the figures."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cases import model
from cases.figures import read_figures
from cases.report import monthly_report
from cases.store import CaseStore
from core.configuration import load_config
from core.privacy import NumberCipher
from ivr.service_check.dialler import ServiceCheckDialler, callback_uid
from ivr.service_check.flow import RECORDED, store_answer
from queues.ami.actions import Reply
from queues.callbacks.store import MemoryCallbackStore

DEMO = Path(__file__).resolve().parents[2] / "config"
CONFIG = load_config(DEMO)   # mss: mode call from 1442, after 30 min, 3 attempts, 120 min apart
CHECK = CONFIG.cases.tenant("mss").service_check
T0 = datetime(2026, 3, 8, 9, 30, tzinfo=timezone.utc)
CIPHER = NumberCipher(NumberCipher.generate_key())
MOBILE = "01012345678"


class SentAmi:
    def __init__(self):
        self.sent = []

    async def send(self, action, *, timeout=None):
        self.sent.append(action)
        return Reply(ok=True)


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def store(case_engine):
    return CaseStore(engine=case_engine, config=CONFIG.cases)


def resolved(store, *, number=MOBILE, at=T0):
    case = store.register(tenant="mss", sector="takaful_karama", kind="grievance", severity="normal",
                          actor="agent01", at=at, number_encrypted=CIPHER.encrypt(number) if number else None)
    store.transition("mss", case.reference, lambda c: model.start(c, actor="agent01", at=at))
    return store.transition("mss", case.reference, lambda c: model.resolve(c, actor="agent01", at=at))


def dialler(store, clock, ami):
    return ServiceCheckDialler(config=CONFIG, store=store, cipher=CIPHER, ami=ami, callbacks=MemoryCallbackStore(),
                               clock=clock)


async def test_a_resolved_case_is_called_after_the_wait_attempts_apart_then_unreached(store):
    case = resolved(store)
    resolved(store, number=None)        # no number kept: never called
    ami, clock = SentAmi(), Clock(T0 + timedelta(minutes=CHECK.after_minutes - 1))
    d = dialler(store, clock, ami)
    assert await d.tick() == 0 and ami.sent == []
    clock.now = T0 + timedelta(minutes=CHECK.after_minutes)
    assert await d.tick() == 1
    originate = ami.sent[0]
    assert originate.channel == f"Local/{case.reference}@ivr-service-check-dial/n"
    assert (originate.context, originate.exten) == ("ivr-service-check", case.reference)
    assert f"IVR_CHECK_NUMBER={MOBILE}" in originate.variables and "IVR_HOTLINE=1442" in originate.variables
    # Not again before retry_minutes: the attempt was recorded before the call.
    assert await d.tick() == 0
    got = store.get("mss", case.reference)
    assert (got.check_attempts, got.check_due_at) == (1, clock.now + timedelta(minutes=CHECK.retry_minutes))
    for _ in range(CHECK.attempts - 1):
        clock.now += timedelta(minutes=CHECK.retry_minutes)
        assert await d.tick() == 1
    clock.now += timedelta(minutes=CHECK.retry_minutes)
    assert await d.tick() == 0 and len(ami.sent) == CHECK.attempts
    got = store.get("mss", case.reference)
    assert (got.status, got.check_result, got.check_attempts) == (model.Status.RESOLVED, "unreached", CHECK.attempts)
    actions = [e.action for e in store.history("mss", case.reference)]
    assert actions.count(model.Action.CHECK_CALL) == CHECK.attempts and actions[-1] is model.Action.UNREACHED
    totals = read_figures(store.engine, clock.now).totals
    assert totals[("unreached", ("mss", "takaful_karama", "grievance", "normal"))] == 1


async def test_two_engines_place_one_call_per_attempt(store):
    resolved(store)
    clock = Clock(T0 + timedelta(minutes=CHECK.after_minutes))
    first, second = SentAmi(), SentAmi()
    one, two = dialler(store, clock, first), dialler(store, clock, second)
    # Both read the case as due; only the write that lands places the call.
    due = store.service_checks_due(clock.now)
    assert len(due) == 1
    assert await one.tick() == 1
    assert await two.tick() == 0
    assert len(first.sent) + len(second.sent) == 1


async def test_the_citizen_s_answer_is_saved_once_and_counted(store):
    yes, no = resolved(store), resolved(store)
    clock = Clock(T0 + timedelta(hours=1))
    answer = store_answer(store, clock=clock)
    assert await answer("mss", yes.reference, True) == RECORDED
    assert await answer("mss", no.reference, False) == RECORDED
    assert await answer("mss", no.reference, True) == "ended"      # asked twice: the first answer stands
    assert await answer("moh", yes.reference, True) == "not_found"
    assert store.get("mss", yes.reference).status is model.Status.CLOSED
    reopened = store.get("mss", no.reference)
    assert (reopened.status, reopened.check_result, reopened.reopened_count) == (model.Status.REOPENED, "no", 1)
    last = store.history("mss", no.reference)[-1]
    assert (last.actor, last.action) == ("citizen", model.Action.DISPUTE)
    labels = ("mss", "takaful_karama", "grievance", "normal")
    totals = read_figures(store.engine, clock.now).totals
    assert (totals[("confirm", labels)], totals[("dispute", labels)]) == (1, 1)
    # The month's report: one yes of two answers, and the no is a reopening.
    total = monthly_report(store.engine, CONFIG, tenant="mss", month="2026-03").total.figures()
    assert (total["confirmed"], total["disputed"], total["satisfaction"], total["reopened"]) == (1, 1, 0.5, 1)
    # A reopened case is not due for a check, a closed one neither.
    assert store.service_checks_due(clock.now + timedelta(days=1)) == []


async def test_callback_mode_hands_the_check_to_an_agent_of_the_sector_s_programme(store):
    tenant = CONFIG.cases.tenant("mss")
    check = tenant.service_check.model_copy(update={"mode": "callback"})
    cases = CONFIG.cases.model_copy(update={"tenants": (tenant.model_copy(update={"service_check": check}),)})
    store = CaseStore(engine=store.engine, config=cases)
    case = resolved(store)
    callbacks, ami = MemoryCallbackStore(), SentAmi()
    d = ServiceCheckDialler(config=CONFIG, store=store, cipher=CIPHER, ami=ami, callbacks=callbacks,
                            clock=Clock(T0 + timedelta(minutes=check.after_minutes)))
    assert await d.tick() == 1 and ami.sent == []
    (cb,) = callbacks.callbacks.values()
    assert (cb["reason"], cb["program"], cb["queue"], cb["number"], cb["hotline"]) == (
        "case", "takaful_karama", CONFIG.program_queue("takaful_karama").id, MOBILE, "1442")
    got = store.get("mss", case.reference)
    assert (got.check_result, got.check_attempts) == ("callback", 1)
    assert await d.tick() == 0 and len(callbacks.callbacks) == 1


async def test_a_callback_request_that_fails_is_asked_again_until_redis_takes_it(store, caplog):
    """Mode callback: the check is claimed, then Redis refuses the callback.
    The dialler keeps it and asks again at each tick; once Redis answers the
    callback is requested exactly once, and the case is not claimed twice."""
    tenant = CONFIG.cases.tenant("mss")
    check = tenant.service_check.model_copy(update={"mode": "callback"})
    cases = CONFIG.cases.model_copy(update={"tenants": (tenant.model_copy(update={"service_check": check}),)})
    store = CaseStore(engine=store.engine, config=cases)
    case = resolved(store)

    class Flaky(MemoryCallbackStore):
        down = True

        async def request(self, **kw):
            if self.down:
                raise ConnectionError("redis away")
            return await super().request(**kw)

    callbacks = Flaky()
    d = ServiceCheckDialler(config=CONFIG, store=store, cipher=CIPHER, ami=SentAmi(), callbacks=callbacks,
                            clock=Clock(T0 + timedelta(minutes=check.after_minutes)))
    assert await d.tick() == 0 and callbacks.callbacks == {}
    assert d.unhanded == (case.reference,)
    assert store.get("mss", case.reference).check_attempts == 1   # claimed once
    assert await d.tick() == 0 and d.unhanded == (case.reference,)
    errors = [r for r in caplog.records if r.levelname == "ERROR" and case.reference in r.getMessage()]
    assert len(errors) == 1 and MOBILE not in caplog.text   # said once, the number never logged
    callbacks.down = False
    assert await d.tick() == 1 and d.unhanded == ()
    (cb,) = callbacks.callbacks.values()
    claimed = store.get("mss", case.reference)
    assert (cb["reason"], cb["call_uid"], cb["number"]) == ("case", callback_uid(claimed), MOBILE)
    assert cb["call_uid"].startswith(f"case-{case.reference}-")
    assert await d.tick() == 0 and len(callbacks.callbacks) == 1
    assert store.get("mss", case.reference).check_attempts == 1


def callback_mode_store(store):
    tenant = CONFIG.cases.tenant("mss")
    check = tenant.service_check.model_copy(update={"mode": "callback"})
    cases = CONFIG.cases.model_copy(update={"tenants": (tenant.model_copy(update={"service_check": check}),)})
    return CaseStore(engine=store.engine, config=cases), check


async def test_a_request_redis_took_but_whose_reply_was_lost_is_one_callback(store):
    """Redis registered the callback, then the connection broke before the
    reply: the dialler asks again, and the store, idempotent by the claim's
    call_uid, answers with the same callback. The citizen is called once."""
    store, check = callback_mode_store(store)
    case = resolved(store)

    class ReplyLost(MemoryCallbackStore):
        lose = 1

        async def request(self, **kw):
            callback_id = await super().request(**kw)
            if self.lose:
                self.lose -= 1
                raise ConnectionError("connection reset after the write")
            return callback_id

    callbacks = ReplyLost()
    d = ServiceCheckDialler(config=CONFIG, store=store, cipher=CIPHER, ami=SentAmi(), callbacks=callbacks,
                            clock=Clock(T0 + timedelta(minutes=check.after_minutes)))
    assert await d.tick() == 0 and d.unhanded == (case.reference,)
    assert await d.tick() == 1 and d.unhanded == ()
    assert len(callbacks.callbacks) == 1 and len(callbacks.requests) == 1


@pytest.mark.parametrize("meanwhile", ["close", "reopen", "reopen_and_resolve"])
async def test_no_callback_is_asked_again_for_a_case_changed_meanwhile(store, caplog, meanwhile):
    """While Redis was away a supervisor closed the case, or it was reopened
    (and perhaps resolved again, a new check of its own): the kept request is
    dropped, not placed for the old check."""
    store, check = callback_mode_store(store)
    case = resolved(store)

    class Down(MemoryCallbackStore):
        async def request(self, **kw):
            raise ConnectionError("redis away")

    callbacks = Down()
    clock = Clock(T0 + timedelta(minutes=check.after_minutes))
    d = ServiceCheckDialler(config=CONFIG, store=store, cipher=CIPHER, ami=SentAmi(), callbacks=callbacks,
                            clock=clock)
    assert await d.tick() == 0 and d.unhanded == (case.reference,)
    later = clock.now + timedelta(minutes=1)
    if meanwhile == "close":
        store.transition("mss", case.reference, lambda c: model.close(c, actor="supervisor", at=later))
    else:
        store.transition("mss", case.reference, lambda c: model.reopen(c, actor="agent01", at=later))
        if meanwhile == "reopen_and_resolve":
            store.transition("mss", case.reference, lambda c: model.start(c, actor="agent01", at=later))
            store.transition("mss", case.reference, lambda c: model.resolve(c, actor="agent01", at=later))
    callbacks.request = MemoryCallbackStore.request.__get__(callbacks)   # Redis is back
    assert await d.tick() == 0 and d.unhanded == ()
    assert callbacks.callbacks == {}
    assert any("no callback after all" in r.getMessage() and case.reference in r.getMessage()
               for r in caplog.records)


async def test_a_callback_the_limits_refuse_is_asked_again_once_there_is_room(store, caplog):
    """Mode callback when too many callbacks wait (issue 12, item 15): the
    check is claimed once, the refusal is logged and counted once, and the
    callback is requested at each tick until a callback ends and makes room;
    then it is registered exactly once."""
    from prometheus_client import CollectorRegistry

    from metrics.registry import EngineMetrics
    from queues.callbacks.limits import CallbackLimits

    store, check = callback_mode_store(store)
    case = resolved(store)
    callbacks = MemoryCallbackStore(limits=CallbackLimits.from_config(
        CONFIG.model_copy(update={"distribution": CONFIG.distribution.model_copy(update={
            "callbacks": CONFIG.distribution.callbacks.model_copy(update={"max_pending": 1})})}),
        number_key=b"k" * 32))
    waiting = await callbacks.request(hotline="1442", number="01112223334", reason="queue", call_uid="17.1")
    registry = CollectorRegistry()
    d = ServiceCheckDialler(config=CONFIG, store=store, cipher=CIPHER, ami=SentAmi(), callbacks=callbacks,
                            clock=Clock(T0 + timedelta(minutes=check.after_minutes)),
                            metrics=EngineMetrics(CONFIG, registry=registry))
    for _ in range(3):
        assert await d.tick() == 0 and d.unhanded == (case.reference,)
    assert list(callbacks.callbacks) == [waiting]
    assert store.get("mss", case.reference).check_attempts == 1          # claimed once
    assert registry.get_sample_value("ivr_callback_refusals_total", {"reason": "pending_all"}) == 1
    said = [r for r in caplog.records if "refused" in r.getMessage() and case.reference in r.getMessage()]
    assert len(said) == 1 and MOBILE not in caplog.text
    assert await callbacks.transition(waiting, from_states=("waiting",), state="done",
                                      changes={"outcome": "connected"})
    assert await d.tick() == 1 and d.unhanded == ()
    (cb,) = [raw for raw in callbacks.callbacks.values() if raw["reason"] == "case"]
    assert (cb["call_uid"], cb["number"]) == (callback_uid(store.get("mss", case.reference)), MOBILE)
    assert await d.tick() == 0 and len(callbacks.callbacks) == 2
    assert registry.get_sample_value("ivr_callback_refusals_total", {"reason": "pending_all"}) == 1
