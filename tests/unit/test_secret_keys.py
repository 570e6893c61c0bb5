"""Keys in the secret store: one per purpose, rotation that keeps old data
readable, the subset the classic-AGI script gets; and the deadline the
engine keeps on itself step by step."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from core.configuration import load_config
from core.secrets import (AGI_KEY, CALLBACKS_KEY, CALLER_NUMBER_KEY, CASES_KEY, NATIONAL_ID_KEY, ROTATABLE,
                          KeyRing, SecretStore)
from dialplans.asterisk import CLASSIC_AGI_SECRETS
from ivr.agi.deadline import MAX_KEYS_SECONDS, UNKNOWN_PROMPT_SECONDS, StepDeadline

DEMO = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


@pytest.fixture
def store(config, tmp_path) -> SecretStore:
    s = SecretStore(tmp_path / "s.json")
    s.ensure(config)
    return s


def test_national_ids_and_caller_numbers_have_keys_of_their_own(store):
    assert store.national_id_keys().current != store.caller_number_keys().current
    assert store.national_id_keys().retired == () and store.caller_number_keys().retired == ()
    assert len(store.agi_key()) >= 32
    assert store.agi_key() not in (store.national_id_key().decode(), store.caller_number_keys().current.decode())


def test_an_older_store_keeps_recognising_numbers_hashed_with_the_national_id_key(config, tmp_path):
    # Before the caller-number key, numbers were hashed with the national-ID key.
    path = tmp_path / "s.json"
    path.write_text(json.dumps({NATIONAL_ID_KEY: "old-shared-key-" + "x" * 20}))
    store = SecretStore(path)
    assert store.ensure(config) is True
    ring = store.caller_number_keys()
    assert ring.current != b"old-shared-key-" + b"x" * 20
    assert ring.retired == (b"old-shared-key-" + b"x" * 20,)
    # ensure is idempotent: no second retired copy.
    assert SecretStore(path).ensure(config) is False
    assert SecretStore(path).caller_number_keys() == ring


def test_rotation_keeps_the_old_key_readable_until_it_is_retired(store, tmp_path):
    first = store.national_id_keys().current
    assert store.rotate(NATIONAL_ID_KEY) == f"{NATIONAL_ID_KEY}:retired:1"
    second = store.national_id_keys().current
    assert second != first
    assert store.rotate(NATIONAL_ID_KEY) == f"{NATIONAL_ID_KEY}:retired:2"
    again = SecretStore(store.path)  # what the next process reads
    ring = again.national_id_keys()
    assert ring.retired == (second, first)          # newest first
    assert ring.all == (ring.current, second, first)
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert again.retire(NATIONAL_ID_KEY) == [f"{NATIONAL_ID_KEY}:retired:1", f"{NATIONAL_ID_KEY}:retired:2"]
    assert SecretStore(store.path).national_id_keys() == KeyRing(ring.current)
    # The other keys are untouched.
    assert SecretStore(store.path).caller_number_keys() == store.caller_number_keys()


def test_the_callbacks_have_a_fernet_key_of_their_own_that_rotates(store):
    from core.privacy import NumberCipher

    keys = store.callbacks_keys()
    assert len(keys) == 1 and keys[0] != store.cases_key()
    token = NumberCipher(keys).encrypt("01001234567")
    assert store.rotate(ROTATABLE["callbacks"]) == f"{CALLBACKS_KEY}:retired:1"
    again = SecretStore(store.path)
    rotated = again.callbacks_keys()
    assert rotated[1:] == keys and rotated[0] != keys[0]
    cipher = NumberCipher(rotated)
    assert cipher.decrypt(token) == "01001234567"                       # the retired key still reads it
    fresh = cipher.reencrypt(token)
    assert NumberCipher(rotated[0]).decrypt(fresh) == "01001234567"     # re-keyed: the new key alone reads it
    assert again.retire(CALLBACKS_KEY) == [f"{CALLBACKS_KEY}:retired:1"]
    assert SecretStore(store.path).callbacks_keys() == rotated[:1]


def test_a_rotated_cases_key_still_decrypts_what_the_old_one_encrypted(store):
    from cryptography.fernet import MultiFernet, Fernet

    token = Fernet(store.cases_key()).encrypt(b"01001234567")
    store.rotate(CASES_KEY)
    keys = store.cases_keys()
    assert len(keys) == 2 and keys[0] == store.cases_key()
    assert MultiFernet([Fernet(k) for k in keys]).decrypt(token) == b"01001234567"


def test_the_classic_agi_script_gets_its_keys_and_nothing_else(store, tmp_path):
    target = tmp_path / "root" / "secrets.json"
    store.write_subset(target, CLASSIC_AGI_SECRETS)
    data = json.loads(target.read_text())
    # The two it hashes with, and the one it encrypts a closed-hours callback's number with.
    assert set(data) == {NATIONAL_ID_KEY, CALLER_NUMBER_KEY, CALLBACKS_KEY}
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    everything = json.loads(store.path.read_text())
    for name, value in everything.items():
        if name not in data:
            assert value not in target.read_text(), f"{name} leaked into the classic-AGI secrets"
    assert AGI_KEY not in data


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_deadline_covers_each_step_with_headroom_for_the_next_short_ones():
    clock = Clock()
    d = StepDeadline(prompt_seconds={"ivr/menu": 12.0}.get, slack=4, first=6, headroom=4, clock=clock)
    # The dialplan armed 6 s (one spent connecting): a 1 s step fits inside it.
    assert d.arm_for(0.5) is None
    # A 12 s prompt does not: armed for 12 + 4 of slack + 4 of headroom.
    assert d.arm_for(d.play_bound("ivr/menu")) == 20
    clock.now += 1                                # a key after 1 s: nothing sent (a hung engine could not)
    # Keys typed one by one (a 6 s wait each): one deadline covers several.
    assert d.arm_for(6) is None                   # 19 s left >= 6 + 4
    clock.now += 9.5
    assert d.arm_for(6) == 14                     # 9.5 s left < 10: re-armed, with headroom
    clock.now += 0.5
    assert d.arm_for(6) is None
    assert d.play_bound("ivr/unknown") == UNKNOWN_PROMPT_SECONDS
    # Engine-side work longer than what is left is announced first.
    assert d.extend(20) == 28


def test_a_number_typed_key_by_key_is_covered_up_to_the_cap():
    d = StepDeadline(prompt_seconds={"ivr/id": 5.0}.get, clock=Clock())
    # 15 waits of 6 s would be 90 s: a caller slower than the cap goes on to a queue.
    assert d.read_bound("ivr/id", 6, 14) == 5 + MAX_KEYS_SECONDS
    assert d.read_bound("ivr/id", 5, 1) == 5 + 10
