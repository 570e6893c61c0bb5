"""Key rotation through the case database, on SQLite and PostgreSQL: after
`ivr secrets rotate`, a citizen's cases stored with the old keys are still
found by their ID and their number, their numbers still decrypt, and the
lookup re-keys them to the current keys (lazily, silently, one transaction
a case)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from test_case_store import T0, TWO_TENANTS

from cases import model
from cases.schema import case_events, cases
from cases.store import CaseStore
from core.citizens.national_id import hash_national_id
from core.privacy import NumberCipher
from core.secrets import CALLER_NUMBER_KEY, CASES_KEY, NATIONAL_ID_KEY, SecretStore
from desktop.casework import CaseWork
from queues.priority import hash_caller

NATIONAL_ID = "29001012500015"
NUMBER = "01001234567"
OTHER_NUMBER = "01112223344"


@pytest.fixture
def secrets(config, tmp_path) -> SecretStore:
    s = SecretStore(tmp_path / "secrets.json")
    s.ensure(config)
    return s


@pytest.fixture
def store(case_engine):
    return CaseStore(engine=case_engine, config=TWO_TENANTS)


def citizen_hashes(secrets: SecretStore, national_id: str | None, number: str | None):
    """What the IVR and the pop compute: the ID and the number hashed with every key of their rings."""
    ids = [hash_national_id(national_id, k) for k in secrets.national_id_keys().all] if national_id else []
    numbers = [hash_caller(number, k) for k in secrets.caller_number_keys().all] if number else []
    return ids, numbers


def register(store, secrets, *, national_id=None, number=None, **over):
    ids, numbers = citizen_hashes(secrets, national_id, number)
    fields = dict(tenant="mss", sector="takaful_karama", kind="grievance", severity="high", actor="agent01", at=T0,
                  subject="صرف الدعم متوقف", national_id_hash=ids[0] if ids else None,
                  number_hash=numbers[0] if numbers else None,
                  number_encrypted=NumberCipher(secrets.cases_keys()).encrypt(number))
    fields.update(over)
    return store.register(**fields)


def work(config, store, secrets) -> CaseWork:
    return CaseWork(store=store, config=config.model_copy(update={"cases": TWO_TENANTS}),
                    cipher=NumberCipher(secrets.cases_keys()))


def raw(store, case) -> dict:
    with store.engine.connect() as conn:
        return dict(conn.execute(sa.select(cases).where(cases.c.id == case.id)).one()._mapping)


def trail_length(store, case) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(case_events)
                            .where(case_events.c.case_id == case.id)).scalar_one()


async def test_after_a_rotation_old_cases_are_found_by_id_and_number_and_re_keyed(config, store, secrets):
    by_id = register(store, secrets, national_id=NATIONAL_ID, number=NUMBER)
    by_number = register(store, secrets, number=NUMBER)
    someone_else = register(store, secrets, national_id="29001012500023", number=OTHER_NUMBER)
    stale = store.get("mss", by_id.reference)             # an agent's page, read before the rotation
    for name in (NATIONAL_ID_KEY, CALLER_NUMBER_KEY, CASES_KEY):
        secrets.rotate(name)
    secrets = SecretStore(secrets.path)                    # what the restarted engine reads

    # With the current keys alone, nothing stored before the rotation is found.
    ids, numbers = citizen_hashes(secrets, NATIONAL_ID, NUMBER)
    assert store.open_cases_of("mss", national_id_hash=ids[0], number_hash=numbers[0]) == []

    # The pop looks up with every key: found, the old numbers decrypt (masked).
    rows = await work(config, store, secrets).open_cases("mss", ids, numbers)
    assert {r["reference"] for r in rows} == {by_id.reference, by_number.reference}
    assert {r["number"] for r in rows} == {"*********67"}

    # Re-keyed on the way, silently: the current keys' hashes, the same version, no audit line.
    assert (raw(store, by_id)["national_id_hash"], raw(store, by_id)["number_hash"]) == (ids[0], numbers[0])
    assert raw(store, by_number)["number_hash"] == numbers[0]
    for case in (by_id, by_number):
        assert raw(store, case)["version"] == 1 and trail_length(store, case) == 1
    other = raw(store, someone_else)
    assert (other["national_id_hash"], other["number_hash"]) == (someone_else.national_id_hash,
                                                                 someone_else.number_hash)
    # The number itself is re-encrypted by `ivr secrets rekey cases`, not by a lookup.
    assert raw(store, by_id)["number_encrypted"] == by_id.number_encrypted

    # A transition saved from a page read before the re-keying is not refused
    # (no new version) and does not bring the old hash back.
    store.save(model.start(stale, actor="agent01", at=T0))
    assert (raw(store, by_id)["national_id_hash"], raw(store, by_id)["number_hash"]) == (ids[0], numbers[0])

    # Once the retired keys are dropped, the current keys alone find both.
    assert {c.reference for c in store.open_cases_of("mss", national_id_hash=ids[:1], number_hash=numbers[:1])} == {
        by_id.reference, by_number.reference}


async def test_the_id_alone_finds_a_case_stored_two_rotations_ago(config, store, secrets):
    old = register(store, secrets, national_id=NATIONAL_ID)
    secrets.rotate(NATIONAL_ID_KEY)
    newer = register(store, secrets, national_id=NATIONAL_ID, at=T0.replace(hour=11))
    secrets.rotate(NATIONAL_ID_KEY)
    ids, _ = citizen_hashes(secrets, NATIONAL_ID, None)
    assert len(ids) == 3
    rows = await work(config, store, secrets).open_cases("mss", ids, [])
    assert [r["reference"] for r in rows] == [newer.reference, old.reference]     # newest first
    assert raw(store, old)["national_id_hash"] == raw(store, newer)["national_id_hash"] == ids[0]
    # Another tenant's case of the same citizen is neither shown nor re-keyed.
    theirs = register(store, secrets, national_id=NATIONAL_ID, tenant="moh", sector="hospitals",
                      national_id_hash=ids[2])
    await work(config, store, secrets).open_cases("mss", ids, [])
    assert raw(store, theirs)["national_id_hash"] == ids[2]


def test_re_keying_writes_only_over_the_hash_that_matched(store, secrets):
    case = register(store, secrets, national_id=NATIONAL_ID)
    old_hash = case.national_id_hash
    # Another lookup re-keyed it meanwhile (to "b"): this one's rewrite finds the column changed.
    assert store.rewrite_identity([(case.id, {"national_id_hash": old_hash}, {"national_id_hash": "b" * 64})]) == 1
    again = store.rekey_citizen([case], national_id_hashes=["c" * 64, old_hash])
    assert again == [case] and raw(store, case)["national_id_hash"] == "b" * 64
    with pytest.raises(ValueError, match="re-keyed"):
        store.rewrite_identity([(case.id, {}, {"status": "closed"})])
