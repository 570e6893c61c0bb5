"""``ivr secrets`` end to end: a temporary state folder (IVR_STATE_DIR), the
case database `ivr setup` migrates, Asterisk's configuration written into a
temporary root (IVR_ASTERISK_ROOT) and no Asterisk started. The re-keying of
the case database runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import argparse
import io
import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from test_case_store import TWO_TENANTS

from app.cli import main, migrate_case_database
from app.key_rotation import add_arguments, run_secrets_command
from app.tools import case_store, write_asterisk_config
from cases.schema import cases
from cases.store import CaseStore
from core.citizens.national_id import hash_national_id
from core.paths import Paths
from core.privacy import NumberCipher
from core.secrets import AGI_KEY, CALLBACKS_KEY, CALLER_NUMBER_KEY, CASES_KEY, NATIONAL_ID_KEY, SecretStore
from queues.priority import hash_caller

T0 = datetime(2026, 3, 8, 7, 30, tzinfo=timezone.utc)
NUMBERS = ["01001234567", "01112223344", "0862345678"]


@pytest.fixture
def paths(monkeypatch, tmp_path) -> Paths:
    monkeypatch.setenv("IVR_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("IVR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("IVR_ASTERISK_ROOT", str(tmp_path / "asterisk-root"))
    return Paths.from_environment()


@pytest.fixture
def installed(config, paths):
    """What `ivr setup` leaves, without building or starting Asterisk."""
    secrets = SecretStore(paths.secrets_file)
    secrets.ensure(config)
    migrate_case_database(config, paths, secrets, say=lambda _: None)
    return secrets


def ivr(capsys, *argv) -> tuple[int, str, str]:
    code = main(["secrets", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def values(path) -> list[str]:
    return list(json.loads(path.read_text()).values())


def register(store, secrets, number: str, *, national_id: str | None = None, **over):
    fields = dict(tenant="mss", sector="takaful_karama", kind="grievance", severity="high", actor="agent01", at=T0,
                  number_hash=hash_caller(number, secrets.caller_number_keys().current),
                  number_encrypted=NumberCipher(secrets.cases_keys()).encrypt(number),
                  national_id_hash=hash_national_id(national_id, secrets.national_id_key()) if national_id else None)
    fields.update(over)
    return store.register(**fields)


# --- through `ivr secrets` itself, on the state folder ----------------------------------------------

def test_status_names_each_key_and_its_retired_keys_never_a_value(config, paths, installed, capsys):
    code, out, err = ivr(capsys, "status")
    assert code == 0, err
    assert f"secrets: {paths.secrets_file} (mode 600)" in out
    for key, name in (("national-id", NATIONAL_ID_KEY), ("caller-number", CALLER_NUMBER_KEY), ("cases", CASES_KEY),
                      ("agi", AGI_KEY)):
        assert any(line.split()[:2] == [key, name] and "no retired key" in line for line in out.splitlines())
    assert ivr(capsys, "rotate", "cases")[0] == 0
    code, out, err = ivr(capsys, "status")
    assert "cases          fernet:cases        current key, 1 retired" in out
    assert "next: `ivr secrets rekey cases`, then `ivr secrets retire cases`" in out
    for value in values(paths.secrets_file):
        assert value not in out and value not in err
    assert stat.S_IMODE(os.stat(paths.secrets_file).st_mode) == 0o600


def test_usage_errors_and_a_state_folder_without_secrets(config, paths, capsys):
    code, _, err = ivr(capsys, "status")
    assert code == 1 and "run `ivr setup` first" in err
    SecretStore(paths.secrets_file).ensure(config)
    code, _, err = ivr(capsys, "rotate")
    assert code == 2 and "which key?" in err
    code, _, err = ivr(capsys, "rekey", "national-id")
    assert code == 2 and "cannot be re-hashed offline" in err and "calls again" in err
    code, _, err = ivr(capsys, "rekey", "agi")
    assert code == 2 and "nothing is stored with the FastAGI key" in err
    code, _, err = ivr(capsys, "retire", "cases")
    assert code == 0
    code, out, _ = ivr(capsys, "rotate", "caller-number")
    assert code == 0 and "for the repeat-caller rule (24 h), a caller's first call after the restart is a first call" \
        in " ".join(out.split())


def test_rotate_agi_rewrites_the_dialplan_and_retire_waits_for_it(config, paths, installed, capsys):
    # `ivr setup`'s Asterisk part, into the temporary root.
    asterisk = write_asterisk_config(config, paths, installed, say=lambda _: None)
    dialplan = asterisk.etc / "extensions.conf"
    old = installed.agi_key()
    assert f"?key={old}" in dialplan.read_text()
    code, out, err = ivr(capsys, "rotate", "agi")
    assert code == 0, err
    new = SecretStore(paths.secrets_file).agi_key()
    text = dialplan.read_text()
    assert new != old and f"?key={new}" in text and old not in text
    assert stat.S_IMODE(os.stat(dialplan).st_mode) == 0o600
    assert "Asterisk is not running" in out and "needs no restart for this key" in out
    assert SecretStore(paths.secrets_file).agi_keys() == [new, old]   # the engine accepts both meanwhile

    # A dialplan that still carries the old key: retiring it would refuse every call.
    dialplan.write_text(text.replace(new, old))
    code, _, err = ivr(capsys, "retire", "agi")
    assert code == 2 and "does not carry the current key alone" in err
    assert SecretStore(paths.secrets_file).agi_keys() == [new, old]
    dialplan.write_text(text)
    code, out, err = ivr(capsys, "retire", "agi")
    assert code == 0, err
    assert "carries the current key" in out and "1 retired key(s) forgotten" in out
    assert SecretStore(paths.secrets_file).agi_keys() == [new]
    assert ivr(capsys, "retire", "agi")[1].strip() == "agi: no retired key: nothing to retire"


def test_rotate_national_id_refreshes_the_classic_agi_copy_and_retire_warns(config, paths, installed, capsys):
    root = Path(os.environ["IVR_ASTERISK_ROOT"])
    (root / "usr" / "sbin").mkdir(parents=True)
    (root / "usr" / "sbin" / "asterisk").write_text("")      # a built root (never run here)
    code, out, err = ivr(capsys, "rotate", "national-id")
    assert code == 0, err
    assert "cannot be re-hashed offline" in out and "Restart the engine" in out
    copy = SecretStore(root / "opt" / "ivr-hotline" / "state" / "secrets.json")
    assert copy.national_id_keys() == SecretStore(paths.secrets_file).national_id_keys()
    assert len(copy.national_id_keys().retired) == 1 and copy.names() == sorted(
        [NATIONAL_ID_KEY, NATIONAL_ID_KEY + ":retired:1", CALLER_NUMBER_KEY, CALLBACKS_KEY])
    code, out, err = ivr(capsys, "retire", "national-id")
    assert code == 0, err
    assert "can no longer be found by national ID, only by their reference" in err
    assert copy.path.exists() and SecretStore(copy.path).national_id_keys().retired == ()


def test_rotate_rekey_retire_cases_on_the_state_folder_s_database(config, paths, installed, capsys):
    store = case_store(config, paths, installed)
    made = [register(store, installed, n) for n in NUMBERS]
    assert ivr(capsys, "rotate", "cases")[0] == 0
    code, _, err = ivr(capsys, "retire", "cases")
    assert code == 2 and "3 case(s) keep a number only a retired key decrypts" in err
    code, out, err = ivr(capsys, "rekey", "cases")
    assert code == 0, err
    assert "cases: 3 case(s) with a number read" in out and "3 re-encrypted with the current key, 0 already" in out
    code, out, _ = ivr(capsys, "rekey", "cases")                       # idempotent
    assert "0 re-encrypted with the current key, 3 already current" in out
    code, out, err = ivr(capsys, "retire", "cases")
    assert code == 0, err
    current = NumberCipher(SecretStore(paths.secrets_file).cases_key())
    assert [current.decrypt(store.get("mss", c.reference).number_encrypted) for c in made] == NUMBERS
    store.engine.dispose()


# --- the re-keying on both backends -----------------------------------------------------------

def command(config, paths, store: CaseStore, *argv) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    code = run_secrets_command(parser.parse_args(list(argv)), config, paths, store_factory=lambda _: store,
                               write_asterisk=lambda *_: pytest.fail("no Asterisk here"), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def store(case_engine):
    return CaseStore(engine=case_engine, config=TWO_TENANTS)


def raw_rows(store) -> dict[int, dict]:
    with store.engine.connect() as conn:
        return {r.id: dict(r._mapping) for r in conn.execute(sa.select(cases).order_by(cases.c.id))}


def test_rekey_re_hashes_and_re_encrypts_every_row_idempotently_and_resumably(config, paths, store):
    secrets = SecretStore(paths.secrets_file)
    secrets.ensure(config)
    made = [register(store, secrets, n, national_id="29001012500015") for n in NUMBERS]
    no_number = register(store, secrets, NUMBERS[0], number_encrypted=None)
    secrets.rotate(CALLER_NUMBER_KEY)
    secrets.rotate(CASES_KEY)
    secrets = SecretStore(paths.secrets_file)
    lost = register(store, secrets, "0222222222", number_encrypted=NumberCipher(Fernet.generate_key()).encrypt("x1"))
    before = raw_rows(store)

    # Retiring the cases key is refused while rows need the retired one.
    code, _, err = command(config, paths, store, "retire", "cases")
    assert code == 2 and "3 case(s) keep a number only a retired key decrypts" in err
    assert "1 number(s) no key decrypts already" in err and lost.reference in err

    # Resumable: a run from after the first case leaves the first alone.
    code, out, _ = command(config, paths, store, "rekey", "caller-number", "--after", str(made[0].id), "--batch", "1")
    assert code == 0 and "2 re-hashed with the current key" in out
    new_key = secrets.caller_number_keys().current
    rows = raw_rows(store)
    assert rows[made[0].id]["number_hash"] == before[made[0].id]["number_hash"]
    assert [rows[c.id]["number_hash"] for c in made[1:]] == [hash_caller(n, new_key) for n in NUMBERS[1:]]
    code, out, err = command(config, paths, store, "rekey", "caller-number")
    assert "5 case(s) with a number read" in out and "1 re-hashed with the current key, 2 already current" in out
    assert "1 keep a number's hash but not the number" in out and lost.reference in err
    rows = raw_rows(store)
    assert [rows[c.id]["number_hash"] for c in made] == [hash_caller(n, new_key) for n in NUMBERS]
    assert rows[no_number.id]["number_hash"] == before[no_number.id]["number_hash"]
    # Found by the number's current hash alone now.
    assert {c.reference for c in store.open_cases_of("mss", number_hash=hash_caller(NUMBERS[1], new_key))} == {
        made[1].reference}

    code, out, _ = command(config, paths, store, "rekey", "cases", "--batch", "2")
    assert "3 re-encrypted with the current key, 0 already current" in out
    code, out, _ = command(config, paths, store, "rekey", "cases")
    assert "0 re-encrypted with the current key, 3 already current" in out
    after = raw_rows(store)
    current = NumberCipher(secrets.cases_key())
    assert [current.decrypt(after[c.id]["number_encrypted"]) for c in made] == NUMBERS
    # Only the number's columns changed: same version, same ID hash, same everything else.
    for case in made:
        assert {k for k in after[case.id] if after[case.id][k] != before[case.id][k]} == {
            "number_hash", "number_encrypted"}

    code, out, err = command(config, paths, store, "retire", "cases")
    assert code == 0 and "1 retired key(s) forgotten" in out
    code, out, err = command(config, paths, store, "retire", "caller-number")
    assert code == 0 and "warning" not in err     # every hash is the current key's


def test_retiring_the_caller_number_key_before_the_rekey_warns_and_loses_nothing(config, paths, store):
    secrets = SecretStore(paths.secrets_file)
    secrets.ensure(config)
    case = register(store, secrets, NUMBERS[0])
    secrets.rotate(CALLER_NUMBER_KEY)
    code, out, err = command(config, paths, store, "retire", "caller-number")
    assert code == 0 and "1 case(s) still hold an old key's hash of their number" in err
    # The number is kept encrypted: the re-keying needs no old caller-number key.
    code, out, _ = command(config, paths, store, "rekey", "caller-number")
    assert "1 re-hashed" in out
    key = SecretStore(paths.secrets_file).caller_number_keys().current
    assert store.get("mss", case.reference).number_hash == hash_caller(NUMBERS[0], key)


def test_retire_cases_with_force_even_though_rows_need_the_retired_key(config, paths, store):
    secrets = SecretStore(paths.secrets_file)
    secrets.ensure(config)
    register(store, secrets, NUMBERS[0])
    secrets.rotate(CASES_KEY)
    code, out, err = command(config, paths, store, "retire", "cases", "--force")
    assert code == 0 and "retired anyway (--force)" in err
    code, out, err = command(config, paths, store, "rekey", "cases")
    assert "0 re-encrypted" in out and "1 number(s) no key of the ring decrypts" in err


async def test_the_callbacks_key_rotates_through_the_numbers_in_redis(config, paths, installed, redis_server):
    """`rotate callbacks`, then `retire` refused while a callback's number needs
    the old key, `rekey callbacks` re-seals it (on a real redis-server), and
    the callback still dials the same number after `retire`."""
    import asyncio

    import redis.asyncio as aioredis

    from queues.callbacks.store import RedisCallbackStore

    def cipher():
        return NumberCipher(SecretStore(paths.secrets_file).callbacks_keys())

    client = aioredis.Redis(host=redis_server.host, port=redis_server.port)
    await client.flushall()
    callback = await RedisCallbackStore(client, cipher=cipher(), prefix="ivr:").request(
        hotline="1442", number="01001234567", reason="queue", call_uid="u1", queue="forsa")

    def reseal(secrets, dry_run):
        async def run():
            c = aioredis.Redis(host=redis_server.host, port=redis_server.port)
            try:
                store = RedisCallbackStore(c, cipher=NumberCipher(secrets.callbacks_keys()), prefix="ivr:")
                return await store.reseal(dry_run=dry_run)
            finally:
                await c.aclose()
        return asyncio.run(run())

    def secrets(*argv) -> tuple[int, str, str]:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        out, err = io.StringIO(), io.StringIO()
        code = run_secrets_command(parser.parse_args(list(argv)), config, paths, store_factory=None,
                                   write_asterisk=None, callback_reseal=reseal, out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def in_thread(*argv):
        return asyncio.get_running_loop().run_in_executor(None, lambda: secrets(*argv))

    code, out, err = await in_thread("rotate", "callbacks")
    assert code == 0 and "rekey callbacks" in out, err
    code, out, err = await in_thread("retire", "callbacks")
    assert code == 2 and "1 callback(s) keep a number only a retired key decrypts" in err, err
    code, out, err = await in_thread("rekey", "callbacks")
    assert code == 0 and "1 callback number(s) re-sealed" in out, err
    assert (await in_thread("rekey", "callbacks"))[1].startswith("callbacks: 0 callback number(s) re-sealed")
    code, out, err = await in_thread("retire", "callbacks")
    assert code == 0, err
    assert SecretStore(paths.secrets_file).ring(CALLBACKS_KEY).retired == ()
    # Only the new key is left, and the callback still dials its number.
    assert (await RedisCallbackStore(client, cipher=cipher(), prefix="ivr:").get(callback)).number == "01001234567"
    await client.aclose()
