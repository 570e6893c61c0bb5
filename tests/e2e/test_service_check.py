"""The service check through the real Asterisk: a case resolved half an hour
ago is called from its tenant's hotline, the citizen's phone (behind the
outbound carrier, 127.0.0.1:5090) answers, hears the question and presses
2 ("no, I did not get the service"): the case is back in its sector's work
queue, the citizen's answer is in the audit trail, and it is counted."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app.simulate import random_phone_number
from app.simulate.sipp import start_citizen_phone
from cases import model
from core.privacy import NumberCipher

pytestmark = pytest.mark.e2e


def _resolved_a_while_ago(hotline, number: str) -> str:
    """A grievance that kept the citizen's number (encrypted, as the agent's
    screen stores it), resolved ``after_minutes`` ago: its check is due."""
    store = hotline.cases
    check = hotline.config.cases.tenant("mss").service_check
    at = datetime.now(timezone.utc) - timedelta(minutes=check.after_minutes + 1)
    cipher = NumberCipher(hotline.secrets.cases_key())
    case = store.register(tenant="mss", sector="takaful_karama", kind="grievance", severity="normal", actor="1001",
                          at=at, subject="تظلم من إيقاف الصرف", number_encrypted=cipher.encrypt(number))
    store.transition("mss", case.reference, lambda c: model.start(c, actor="1001", at=at))
    store.transition("mss", case.reference, lambda c: model.resolve(c, actor="1001", at=at, note="صرف المعاش"))
    return case.reference


def test_a_citizen_who_did_not_get_the_service_reopens_the_case_by_pressing_2(hotline):
    mobile = random_phone_number(mobile=True)
    reference = _resolved_a_while_ago(hotline, mobile)
    labels = {"tenant": "mss", "sector": "takaful_karama"}
    disputed = hotline.metric("ivr_cases_disputed_total", **labels)
    reopened = hotline.metric("ivr_cases_reopened_total", **labels)
    # The citizen presses 2 during the introduction (a key cuts it short),
    # and once more in case the first was lost between two prompts.
    citizen = start_citizen_phone(hotline.sipp, port=hotline.config.service.carrier_outbound.port,
                                  talk_ms=25_000, calls=1, keys=((3000, "2"), (3000, "2")))
    try:
        dialler = hotline.engine.engine.service_checks
        assert dialler is not None, "the engine has no service check dialler"
        # The engine's own tick runs every service_check_every_seconds (30 s):
        # one tick now, instead of waiting for it.
        hotline.engine.run(dialler.tick())
        assert hotline.wait_until(lambda: hotline.cases.get("mss", reference).status == model.Status.REOPENED, 60), \
            (hotline.cases.get("mss", reference), citizen.output()[-2000:])
        assert citizen.wait(timeout=60) == 0, citizen.output()[-2000:]
    finally:
        citizen.stop()
    # One call, to the kept number, shown as coming from the tenant's hotline.
    assert citizen.invites() == [(mobile, "1442")]
    case = hotline.cases.get("mss", reference)
    assert (case.check_attempts, case.check_result, case.reopened_count) == (1, "no", 1)
    trail = [(e.action, e.actor, e.to_status) for e in hotline.cases.history("mss", reference)]
    assert trail[-2:] == [(model.Action.CHECK_CALL, model.SYSTEM_ACTOR, model.Status.RESOLVED),
                          (model.Action.DISPUTE, model.CITIZEN_ACTOR, model.Status.REOPENED)], trail
    # Back in the sector's work queue, and counted once.
    assert reference in [c.reference for c in hotline.cases.work_queue("mss", "takaful_karama", limit=500)]
    assert hotline.wait_metric("ivr_cases_disputed_total", disputed + 1, timeout=60, **labels) == disputed + 1
    assert hotline.metric("ivr_cases_reopened_total", **labels) == reopened + 1
    # Answered, the check is over: the dialler does not call again.
    assert hotline.engine.run(dialler.tick()) == 0
    # The number is never in Asterisk's own log.
    log = hotline.asterisk.log_dir / "messages.log"
    assert mobile not in (log.read_text(errors="replace") if log.exists() else "")
