"""National ID entry through real Asterisk: the governorate labels the queue metrics."""

from __future__ import annotations

import pytest

from app.simulate.sipp import CallerScript, typed_keys as typed

pytestmark = pytest.mark.e2e

# Born 1990-01-01 (century 2), registered in Assiut (25), sequence 0001, check 5.
VALID_ASSIUT = "29001012500015"
# Month 13: structurally invalid.
INVALID_MONTH = "29013012500015"


def test_a_valid_id_is_confirmed_and_its_governorate_labels_the_call(hotline):
    label = dict(program="takaful_karama", request_type="inquiry", governorate="assiut")
    offered = hotline.metric("ivr_queue_offered_total", **label)
    # 1 Takaful & Karama, 1 inquiry, the ID and #, then 1 to confirm during the read-back.
    keys = ((1200, "1"), (2000, "1")) + typed(VALID_ASSIUT, 2500) + ((2500, "1"),)
    caller = hotline.sipp.call(CallerScript(number="1442", keys=keys, hold_ms=14_000), target=hotline.carrier)
    assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, timeout=90, **label) == offered + 1
    assert caller.wait(timeout=90) == 0, caller.output()[-2000:]


def test_an_invalid_id_is_refused_then_a_valid_one_accepted(hotline):
    label = dict(program="services_card", request_type="complaint", governorate="assiut")
    offered = hotline.metric("ivr_queue_offered_total", **label)
    invalid_before = hotline.metric("ivr_national_id_entries_total", outcome="invalid")
    # The valid ID is typed 1.5 s after the invalid one's #, while the 4 s
    # apology still plays: its first key cuts the apology short, none is lost.
    keys = ((1200, "2"), (2000, "2")) + typed(INVALID_MONTH, 2500) + typed(VALID_ASSIUT, 1500) + ((2500, "1"),)
    caller = hotline.sipp.call(CallerScript(number="1442", keys=keys, hold_ms=14_000), target=hotline.carrier)
    assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, timeout=120, **label) == offered + 1
    assert hotline.metric("ivr_national_id_entries_total", outcome="invalid") == invalid_before + 1
    assert caller.wait(timeout=90) == 0, caller.output()[-2000:]


def test_without_an_id_a_landline_area_code_gives_the_governorate(hotline):
    # Nasser Social Bank asks for no ID; 086 is Minya's area code.
    label = dict(program="nasser_bank", request_type="inquiry", governorate="minya")
    offered = hotline.metric("ivr_queue_offered_total", **label)
    caller = hotline.sipp.call(CallerScript(number="1442", keys=((1200, "3"), (2000, "1")), hold_ms=14_000,
                                            caller_id="0862345678"), target=hotline.carrier)
    assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, **label) == offered + 1
    assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
