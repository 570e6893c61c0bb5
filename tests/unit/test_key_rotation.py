"""Key rotation without I/O: every key of a ring reads, the current one
writes. The Fernet ring of the case database, the IVR's national-ID hashes
with each key, the pop's lookups with each key, the FastAGI keys as the
secrets file holds them, and the classic-AGI script's copy of its keys."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken
from prometheus_client import CollectorRegistry
from test_menu import NOW, VALID_ID, ScriptedChannel, config, id_entry_script  # noqa: F401 - config: a fixture

from core.citizens.national_id import hash_national_id
from core.privacy import NumberCipher
from core.secrets import (AGI_KEY, CALLBACKS_KEY, CALLER_NUMBER_KEY, CASES_KEY, NATIONAL_ID_KEY, KeyFileWatch,
                          SecretStore)
from desktop.pops import CallPops, PopHub
from dialplans.asterisk import AsteriskInstall
from ivr.flow.hotline import NATIONAL_ID_HASHES_FACT, HotlineHandler
from metrics.registry import EngineMetrics
from queues.ami.events import AgentConnect
from queues.calls.store import MemoryCallStateStore
from queues.priority import hash_caller

NUMBER = "01001234567"


@pytest.fixture
def store(config, tmp_path) -> SecretStore:
    s = SecretStore(tmp_path / "state" / "secrets.json")
    s.ensure(config)
    return s


# --- the case database's Fernet ring ----------------------------------------------------------

def test_the_cipher_writes_with_the_newest_key_and_reads_with_every_one():
    old, new = Fernet.generate_key(), Fernet.generate_key()
    before = NumberCipher(old).encrypt(NUMBER)
    cipher = NumberCipher([new, old])
    assert cipher.decrypt(before) == NUMBER
    assert not cipher.is_current(before)
    after = cipher.encrypt(NUMBER)
    assert cipher.is_current(after) and Fernet(new).decrypt(after.encode()) == NUMBER.encode()
    with pytest.raises(InvalidToken):
        NumberCipher(old).decrypt(after)                # the old key alone cannot read what the new one wrote
    again = cipher.reencrypt(before)
    assert cipher.is_current(again) and NumberCipher(new).decrypt(again) == NUMBER
    # A token no key of the ring made is refused, never decoded to garbage.
    with pytest.raises(InvalidToken):
        cipher.reencrypt(NumberCipher(Fernet.generate_key()).encrypt(NUMBER))
    with pytest.raises(ValueError):
        NumberCipher([])


def test_the_store_s_ring_feeds_the_cipher_newest_first(store):
    before = NumberCipher(store.cases_key()).encrypt(NUMBER)
    store.rotate(CASES_KEY)
    cipher = NumberCipher(SecretStore(store.path).cases_keys())
    assert cipher.decrypt(before) == NUMBER and not cipher.is_current(before)
    assert NumberCipher(store.cases_key()).decrypt(cipher.encrypt(NUMBER)) == NUMBER


# --- the FastAGI keys -------------------------------------------------------------------------

def test_the_agi_ring_and_the_file_watch_follow_a_rotation(store):
    first = store.agi_key()
    assert store.agi_keys() == [first]
    watch = KeyFileWatch(store.path, AGI_KEY)
    assert watch() == [first]
    store.rotate(AGI_KEY)
    assert watch() == [store.agi_key(), first]          # read again: the file changed
    store.retire(AGI_KEY)
    assert watch() == [store.agi_key()]
    assert SecretStore(store.path.with_name("none.json")).agi_keys() == []
    assert KeyFileWatch(store.path.with_name("none.json"), AGI_KEY)() == []


# --- the IVR hashes the ID with every key ------------------------------------------------------

def _handler(config, keys, store):
    return HotlineHandler(config=config, metrics=EngineMetrics(config, registry=CollectorRegistry()), store=store,
                          national_id_key=keys, clock=lambda: NOW)


async def test_after_a_rotation_the_call_s_facts_hold_the_id_hashed_with_every_key(config):
    new, old, older = b"national-id-key-3", b"national-id-key-2", b"national-id-key-1"
    calls = MemoryCallStateStore()
    session = ScriptedChannel([None, "1", "1", *id_entry_script(), None],
                              env={"arg_1": "1442", "uniqueid": "u-rot", "callerid": NUMBER})
    await _handler(config, (new, old, older), calls)(session)
    facts = await calls.facts("u-rot")
    hashes = [hash_national_id(VALID_ID, k) for k in (new, old, older)]
    assert facts["national_id_hmac"] == hashes[0]                       # what a new case is stored with
    assert facts[NATIONAL_ID_HASHES_FACT].split(",") == hashes          # the current key's first
    assert VALID_ID not in json.dumps(facts)


async def test_without_a_retired_key_only_the_one_hash_is_kept(config):
    calls = MemoryCallStateStore()
    session = ScriptedChannel([None, "1", "1", *id_entry_script(), None],
                              env={"arg_1": "1442", "uniqueid": "u-one", "callerid": NUMBER})
    await _handler(config, (b"only-key",), calls)(session)
    facts = await calls.facts("u-one")
    assert facts["national_id_hmac"] == hash_national_id(VALID_ID, b"only-key")
    assert NATIONAL_ID_HASHES_FACT not in facts


# --- the pop looks up with every key ------------------------------------------------------------

class OpenCases:
    def __init__(self):
        self.asked = []

    async def __call__(self, tenant, national_id_hashes, number_hashes):
        self.asked.append((tenant, tuple(national_id_hashes), tuple(number_hashes)))
        return [{"reference": "123456789"}]


def _connect(uid: str) -> AgentConnect:
    return AgentConnect(name="AgentConnect", uniqueid=uid, caller_id=NUMBER, queue="takaful_karama",
                        interface="PJSIP/agent1001", member_name="1001", hold_time=3)


async def test_the_pop_looks_cases_up_with_every_key_and_keeps_the_current_hashes_for_a_new_case(config):
    new, old = b"caller-key-new", b"caller-key-old"
    calls, hub, open_cases = MemoryCallStateStore(), PopHub(), OpenCases()
    pops = CallPops(config=config, hub=hub, call_state=calls, open_cases=open_cases,
                    number_hash=lambda n: [hash_caller(n, k) for k in (new, old)], clock=lambda: 1.0)
    await calls.set_facts("u-1", {"program": "takaful_karama", "national_id_hmac": "c" * 64,
                                  "national_id_hmacs": f"{'c' * 64},{'o' * 64}"})
    assert await pops.handle(_connect("u-1")) == "popped"
    assert open_cases.asked == [("mss", ("c" * 64, "o" * 64), (hash_caller(NUMBER, new), hash_caller(NUMBER, old)))]
    pop = hub.current("1001")
    assert pop.cases == ({"reference": "123456789"},) and pop.national_id_checked
    assert (pop.national_id_hash, pop.number_hash) == ("c" * 64, hash_caller(NUMBER, new))
    # No hash, retired or not, reaches the browser.
    public = json.dumps(pop.public())
    assert "c" * 64 not in public and "o" * 64 not in public and hash_caller(NUMBER, old) not in public


async def test_a_call_from_before_the_list_and_a_single_number_hash_still_pop(config):
    calls, hub, open_cases = MemoryCallStateStore(), PopHub(), OpenCases()
    pops = CallPops(config=config, hub=hub, call_state=calls, open_cases=open_cases,
                    number_hash=lambda n: hash_caller(n, b"k"), clock=lambda: 1.0)
    await calls.set_facts("u-2", {"program": "forsa", "national_id_hmac": "d" * 64})
    await pops.handle(_connect("u-2"))
    assert open_cases.asked == [("mss", ("d" * 64,), (hash_caller(NUMBER, b"k"),))]
    await pops.handle(AgentConnect(name="AgentConnect", uniqueid="u-3", caller_id="", queue="forsa",
                                   interface="PJSIP/agent1001", member_name="1001"))
    assert open_cases.asked[-1] == ("mss", (), ())
    assert hub.current("1001").national_id_checked is False


# --- the classic-AGI script's copy ------------------------------------------------------------------

def test_the_classic_agi_copy_holds_the_national_id_ring_its_keys_and_nothing_else(store, tmp_path):
    store.rotate(NATIONAL_ID_KEY)
    store.rotate(CALLER_NUMBER_KEY)
    store.rotate(CASES_KEY)
    store.rotate(AGI_KEY)
    root = AsteriskInstall(tmp_path / "root")
    written = root.write_classic_agi_secrets(store)
    data = json.loads(written.read_text())
    # The two HMAC keys (the ID's with its retired key) and the callbacks' Fernet
    # key it seals a closed-hours callback's number with.
    assert set(data) == {NATIONAL_ID_KEY, NATIONAL_ID_KEY + ":retired:1", CALLER_NUMBER_KEY, CALLBACKS_KEY}
    assert stat.S_IMODE(os.stat(written).st_mode) == 0o600
    copy = SecretStore(written)
    assert copy.national_id_keys() == store.national_id_keys()
    assert copy.caller_number_keys().current == store.caller_number_keys().current
    assert copy.caller_number_keys().retired == ()     # the repeat-caller rule hashes with the current key only
    # A system Asterisk runs ivr-agi on the engine's own state folder: no copy.
    assert AsteriskInstall(Path("/")).write_classic_agi_secrets(store) is None
