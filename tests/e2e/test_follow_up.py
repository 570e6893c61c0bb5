"""Following up a case by phone through the real Asterisk: key 7 on 1442, the
reference typed on the keypad, a wrong check digit asked again, the status
said, then an agent of the case's sector or the end of the call."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from app.simulate.sipp import CallerScript, typed_keys as typed
from cases import model

pytestmark = pytest.mark.e2e


def _case_in_progress(hotline) -> str:
    store = hotline.cases
    now = datetime.now(timezone.utc)
    case = store.register(tenant="mss", sector="takaful_karama", kind="grievance", severity="normal", actor="1001",
                          at=now, subject="تظلم من إيقاف الصرف")
    store.transition("mss", case.reference, lambda c: model.start(c, actor="1001", at=now))
    return case.reference


def test_a_caller_follows_up_a_case_by_its_reference_then_reaches_its_sector(hotline):
    reference = _case_in_progress(hotline)
    typo = reference[:-1] + str((int(reference[-1]) + 1) % 10)
    follow_ups = {r: hotline.metric("ivr_case_follow_ups_total", result=r)
                  for r in ("found", "wrong_check_digit")}
    offered = hotline.metric("ivr_queue_offered_total", program="takaful_karama", request_type="follow_up")
    served = hotline.metric("ivr_calls_ended_total", outcome="self_service")

    # 7 during the welcome; a wrong check digit, said to be wrong (about 5 s),
    # then the right number; 1 while the status is said: an agent.
    keys = ((1200, "7"),) + typed(typo, 2500) + typed(reference, 9000) + ((6000, "1"),)
    to_agent = hotline.sipp.call(CallerScript(number="1442", keys=keys, hold_ms=8_000, caller_id="0225550177"),
                                 target=hotline.carrier)
    # Another caller hears the status and presses 2: the IVR ends the call itself.
    keys = ((1200, "7"),) + typed(reference, 2500) + ((4000, "2"),)
    done = hotline.sipp.call(CallerScript(number="1442", keys=keys, hold_ms=60_000, caller_id="0225550178"),
                             target=hotline.carrier)

    assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, timeout=120, program="takaful_karama",
                               request_type="follow_up") == offered + 1
    assert hotline.wait_metric("ivr_calls_ended_total", served + 1, timeout=120, outcome="self_service") == served + 1
    assert hotline.metric("ivr_case_follow_ups_total", result="found") == follow_ups["found"] + 2
    assert hotline.metric("ivr_case_follow_ups_total", result="wrong_check_digit") == \
        follow_ups["wrong_check_digit"] + 1
    # The IVR hung up on the caller who was served (within its 60 s hold).
    assert done.wait(timeout=60) == 0, done.output()[-2000:]
    assert to_agent.wait(timeout=90) == 0, to_agent.output()[-2000:]
