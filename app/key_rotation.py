"""``ivr secrets``: the keys of the secret store, their rotation, and the
re-keying of what they protect (docs/reliability.md, *Secrets and their
rotation*).

    ivr secrets status                         each key: its name and how many retired keys it has
    ivr secrets rotate <key>                   a new current key; the old one kept, retired
    ivr secrets rekey caller-number|cases|callbacks   what the key protects brought to the current key
                      [--after ID] [--batch N]
    ivr secrets retire <key> [--force]         forget the retired keys of <key>

``<key>`` is one of ``national-id`` (HMAC of national IDs), ``caller-number``
(HMAC of callers' numbers), ``cases`` (Fernet key of the numbers kept in the
case database) and ``agi`` (the key of the dialplan's FastAGI URLs). No
command ever prints a key's value.

What each step leaves to the operator: a running engine writes with the
keys it read at start, so after ``rotate national-id``, ``caller-number`` or
``cases`` it must be restarted (the old key stays readable meanwhile).
``rotate agi`` rewrites Asterisk's configuration (reloaded if Asterisk is
running) and needs no restart of the engine: the FastAGI server reads its
keys from the secrets file at each session (``core.secrets.KeyFileWatch``),
so no call is refused whichever of Asterisk and the engine takes the new key
first.

Exit status: 0 done; 1 the secrets file or the case database cannot be used
(``ivr setup``); 2 a usage error, or a retirement refused because data still
needs a retired key (``--force`` overrides).
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys
from typing import Callable, TextIO

from cases.rekey import RekeyCounts, reencrypt_numbers, rehash_numbers
from cases.store import CaseStore
from core.configuration import Config
from core.contract import AGI_KEY_PARAM
from core.errors import Unreachable
from core.paths import Paths
from core.privacy import NumberCipher
from core.secrets import RETIRED, ROTATABLE, SecretStore
from dialplans.asterisk import AsteriskInstall
from queues.priority import hash_caller, keep_seconds

SECRETS_ACTIONS = ("status", "rotate", "rekey", "retire")
REKEYABLE = ("caller-number", "cases", "callbacks")

# What each key protects, said by `status`.
PROTECTS = {
    "national-id": "national IDs: the call's facts, the cases' national_id_hash",
    "caller-number": "callers' numbers: repeat callers in Redis, the cases' number_hash",
    "cases": "the numbers kept in the case database: number_encrypted",
    "callbacks": "the numbers kept to call citizens back: each callback's number_sealed in Redis",
    "agi": "the FastAGI URLs of Asterisk's dialplan",
}
# What to do while a key has retired keys, said by `status`.
NEXT_STEP = {
    "national-id": "cases are re-keyed as their citizens call again; retire when the older ones need no longer "
                   "be found by ID",
    "caller-number": "`ivr secrets rekey caller-number`, then `ivr secrets retire caller-number`",
    "cases": "`ivr secrets rekey cases`, then `ivr secrets retire cases`",
    "callbacks": "`ivr secrets rekey callbacks`, then `ivr secrets retire callbacks`",
    "agi": "`ivr secrets retire agi` once Asterisk runs the new dialplan",
}

CaseStoreFactory = Callable[[SecretStore], CaseStore]
# (the secret store, dry run) -> (callbacks re-sealed, or to re-seal; unreadable)
CallbackReseal = Callable[[SecretStore, bool], tuple[int, int]]
WriteAsterisk = Callable[[SecretStore, Callable[[str], None]], AsteriskInstall]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=SECRETS_ACTIONS,
                   help="status of the keys; rotate, rekey (the case database) or retire one")
    p.add_argument("key", nargs="?", choices=sorted(ROTATABLE),
                   help="(rotate, rekey, retire) which key: " + ", ".join(sorted(ROTATABLE)))
    p.add_argument("--force", action="store_true",
                   help="(retire) even though data still needs a retired key: that data becomes unreadable")
    p.add_argument("--after", type=int, default=0, metavar="ID",
                   help="(rekey) start after this case id (the last one an interrupted run reported)")
    p.add_argument("--batch", type=int, default=500, metavar="N",
                   help="(rekey) cases per transaction (default: %(default)s)")


def run_secrets_command(args, config: Config, paths: Paths, *, store_factory: CaseStoreFactory,
                        write_asterisk: WriteAsterisk, callback_reseal: CallbackReseal | None = None,
                        out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if args.action != "status" and not args.key:
        print(f"ivr secrets {args.action}: which key? one of {', '.join(sorted(ROTATABLE))}", file=err)
        return 2
    secrets = SecretStore(paths.secrets_file)
    if not secrets.names():
        print(f"ivr secrets: no secrets in {paths.secrets_file}: run `ivr setup` first", file=err)
        return 1
    command = SecretsCommand(config=config, paths=paths, secrets=secrets, store_factory=store_factory,
                             write_asterisk=write_asterisk, callback_reseal=callback_reseal, out=out, err=err)
    try:
        return getattr(command, args.action)(args)
    except Unreachable as exc:
        print(f"ivr secrets {args.action}: {exc}", file=err)
        return 1


class SecretsCommand:
    def __init__(self, *, config: Config, paths: Paths, secrets: SecretStore, store_factory: CaseStoreFactory,
                 write_asterisk: WriteAsterisk, out: TextIO, err: TextIO,
                 callback_reseal: CallbackReseal | None = None):
        self._callback_reseal = callback_reseal
        self._config = config
        self._paths = paths
        self._secrets = secrets
        self._store_factory = store_factory
        self._write_asterisk = write_asterisk
        self._out = out
        self._err = err

    def _say(self, text: str) -> None:
        print(text, file=self._out)

    def _warn(self, text: str) -> None:
        print(f"warning: {text}", file=self._err)

    def _missing(self, action: str, name: str) -> bool:
        if name in self._secrets.names():
            return False
        print(f"ivr secrets {action}: no {name} key: run `ivr setup` first", file=self._err)
        return True

    # --- status -------------------------------------------------------------------------------

    def status(self, args) -> int:
        path = self._secrets.path
        mode = stat.S_IMODE(os.stat(path).st_mode)
        self._say(f"secrets: {path} (mode {mode:o})")
        if mode & 0o077:
            self._warn(f"{path} is readable by others than its owner: chmod 600 it")
        names = set(self._secrets.names())
        for key in sorted(ROTATABLE):
            name = ROTATABLE[key]
            if name not in names:
                why = ("not used: no `cases:` section" if key == "cases" and self._config.cases is None
                       else "missing: run `ivr setup`")
                self._say(f"  {key:<14} {name:<19} {why}")
                continue
            retired = len(self._secrets.ring(name).retired)
            line = f"  {key:<14} {name:<19} current key, " + (f"{retired} retired" if retired else "no retired key")
            self._say(line + f"  ({PROTECTS[key]})")
            if retired:
                self._say(f"  {'':<14} next: {NEXT_STEP[key]}")
        others = [n for n in names if not any(n == r or n.startswith(r + RETIRED) for r in ROTATABLE.values())]
        self._say(f"  other secrets: {len(others)} (AMI users, agents' SIP passwords; `ivr setup` makes them)")
        return 0

    # --- rotate -------------------------------------------------------------------------------

    def rotate(self, args) -> int:
        name = ROTATABLE[args.key]
        if self._missing("rotate", name):
            return 1
        retired = self._secrets.rotate(name)
        kept = "still accepted" if args.key == "agi" else "what it protects stays readable"
        self._say(f"{args.key}: new key {name}; the old one kept as {retired} ({kept})")
        if args.key == "agi":
            return self._rotated_agi()
        if args.key in ("national-id", "caller-number"):
            self._refresh_classic_agi_copy()
        self._say("Restart the engine (`ivr serve`, `ivr run`): it writes with the keys it read at start, so until "
                  "then it keeps writing with the old key (still readable).")
        if args.key == "cases":
            self._say("Then `ivr secrets rekey cases` re-encrypts every stored number with the new key, and "
                      "`ivr secrets retire cases` forgets the old one.")
        elif args.key == "callbacks":
            self._say("Then `ivr secrets rekey callbacks` re-seals every callback's number in Redis with the new "
                      "key, and `ivr secrets retire callbacks` forgets the old one.")
        elif args.key == "caller-number":
            hours = keep_seconds(self._config) // 3600
            self._say("Then `ivr secrets rekey caller-number` re-hashes every case's number with the new key, and "
                      "`ivr secrets retire caller-number` forgets the old one. Redis remembers recent callers by "
                      "the current key's hash only: for the repeat-caller rule"
                      + (f" ({hours} h)" if hours else "") + ", a caller's first call after the restart is a "
                      "first call.")
        else:
            self._say("National IDs cannot be re-hashed offline (the IDs are not kept): each case is re-keyed when "
                      "its citizen calls again and types the ID. Retire the old key (`ivr secrets retire "
                      "national-id`) only when cases not re-keyed by then need no longer be found by ID.")
        return 0

    def _rotated_agi(self) -> int:
        asterisk = self._write_asterisk(self._secrets, self._say)
        if asterisk.is_running():
            asterisk.reload()
            self._say("Asterisk was running: configuration reloaded; its calls carry the new key.")
        else:
            self._say("Asterisk is not running: it uses the new key when it starts.")
        self._say("The engine needs no restart for this key: it reads the FastAGI keys from the secrets file at "
                  "each session, so it accepts the new key and the old one from its next call on, and no call is "
                  "refused whichever of the two takes the new key first. `ivr secrets retire agi` once Asterisk "
                  "runs the new dialplan.")
        return 0

    def _refresh_classic_agi_copy(self) -> None:
        """The classic-AGI script hashes with its own copy of the two HMAC keys."""
        if not any(h.agi == "classic" for h in self._config.hotlines):
            return
        asterisk = AsteriskInstall.locate(self._paths.asterisk_root)
        if asterisk.chrooted and asterisk.is_built():
            written = asterisk.write_classic_agi_secrets(self._secrets)
            self._say(f"The classic-AGI script's copy of its keys rewritten: {written}")

    # --- rekey --------------------------------------------------------------------------------

    def rekey(self, args) -> int:
        if args.key == "callbacks":
            return self._rekey_callbacks()
        if args.key not in REKEYABLE:
            why = {"national-id": "national IDs cannot be re-hashed offline: only their hashes are kept, never the "
                                  "IDs. A case is re-keyed when its citizen calls again and types the ID.",
                   "agi": "nothing is stored with the FastAGI key: `ivr secrets rotate agi` did all there is."}
            print(f"ivr secrets rekey {args.key}: {why[args.key]}", file=self._err)
            return 2
        if self._config.cases is None:
            self._say("no case database (no `cases:` section): nothing to re-key")
            return 0
        if args.batch < 1 or args.after < 0:
            print("ivr secrets rekey: --batch must be at least 1 and --after at least 0", file=self._err)
            return 2
        if self._missing("rekey", ROTATABLE["cases"]) or self._missing("rekey", ROTATABLE[args.key]):
            return 1
        store = self._store_factory(self._secrets)
        cipher = NumberCipher(self._secrets.cases_keys())

        def progress(counts: RekeyCounts) -> None:
            print(f"  ... {counts.rows} case(s) read, up to id {counts.last_id}", file=self._err)

        if args.key == "cases":
            counts = reencrypt_numbers(store, cipher, after_id=args.after, batch=args.batch, progress=progress)
            done = "re-encrypted with the current key"
        else:
            key = self._secrets.caller_number_keys().current
            counts = rehash_numbers(store, cipher, lambda number: hash_caller(number, key), after_id=args.after,
                                    batch=args.batch, progress=progress)
            done = "re-hashed with the current key"
        self._say(f"{args.key}: {counts.rows} case(s) with a number read (up to id {counts.last_id}): "
                  f"{counts.rewritten} {done}, {counts.current} already current")
        if counts.changed_meanwhile:
            self._say(f"  {counts.changed_meanwhile} changed by somebody else meanwhile: run it again")
        if counts.no_number:
            self._say(f"  {counts.no_number} keep a number's hash but not the number: re-keyed when that caller "
                      "calls again")
        if counts.unreadable:
            self._warn(f"{counts.unreadable} number(s) no key of the ring decrypts (cases "
                       f"{', '.join(counts.unreadable_references)}{', ...' if counts.unreadable > 20 else ''}): "
                       "left as they are")
        self._say("Idempotent: running it again changes only what is not current yet.")
        return 0

    def _rekey_callbacks(self) -> int:
        if self._missing("rekey", ROTATABLE["callbacks"]) or self._callback_reseal is None:
            return 1
        resealed, unreadable = self._callback_reseal(self._secrets, False)
        self._say(f"callbacks: {resealed} callback number(s) re-sealed with the current key")
        if unreadable:
            self._warn(f"{unreadable} callback number(s) no key of the ring decrypts: left as they are (they end "
                       "as invalid_number when placed)")
        self._say("Idempotent: running it again changes only what is not current yet.")
        return 0

    # --- retire -------------------------------------------------------------------------------

    def retire(self, args) -> int:
        name = ROTATABLE[args.key]
        if self._missing("retire", name):
            return 1
        if not self._secrets.ring(name).retired:
            self._say(f"{args.key}: no retired key: nothing to retire")
            return 0
        check = getattr(self, f"_before_retiring_{args.key.replace('-', '_')}")
        try:
            refusal = check()
        except Unreachable as exc:
            if not args.force:
                raise
            refusal = f"not checked ({exc})"
        if refusal:
            if not args.force:
                print(f"ivr secrets retire {args.key}: refused: {refusal} (--force retires anyway)", file=self._err)
                return 2
            self._warn(f"{refusal}; retired anyway (--force)")
        dropped = self._secrets.retire(name)
        self._say(f"{args.key}: {len(dropped)} retired key(s) forgotten ({', '.join(dropped)})")
        if args.key in ("national-id", "caller-number"):
            self._refresh_classic_agi_copy()
        if args.key != "agi":
            self._say("Restart the engine (`ivr serve`) so that it forgets them too.")
        else:
            self._say("The engine refuses the old key from its next call on.")
        return 0

    def _before_retiring_national_id(self) -> str:
        self._warn("cases whose citizen has not called (and typed the ID) since the rotation keep the old key's "
                   "hash: they can no longer be found by national ID, only by their reference (or the caller's "
                   "number)")
        return ""

    def _before_retiring_caller_number(self) -> str:
        # Nothing is lost: `rekey caller-number` needs no old caller-number
        # key (the numbers are kept encrypted). Until it runs, those cases are
        # not found by the caller's number.
        if self._config.cases is not None:
            key = self._secrets.caller_number_keys().current
            try:
                store = self._store_factory(self._secrets)
            except Unreachable as exc:
                self._warn(f"the cases still hashed with an old key are not counted: {exc}")
                return ""
            counts = rehash_numbers(store, NumberCipher(self._secrets.cases_keys()),
                                    lambda number: hash_caller(number, key), dry_run=True)
            if counts.stale:
                self._warn(f"{counts.stale} case(s) still hold an old key's hash of their number: not found by the "
                           "caller's number until `ivr secrets rekey caller-number` (which needs no old key)")
        return ""

    def _before_retiring_cases(self) -> str:
        if self._config.cases is None:
            return ""
        counts = reencrypt_numbers(self._store_factory(self._secrets), NumberCipher(self._secrets.cases_keys()),
                                   dry_run=True)
        if counts.unreadable:
            self._warn(f"{counts.unreadable} number(s) no key decrypts already (cases "
                       f"{', '.join(counts.unreadable_references)})")
        if counts.stale:
            return (f"{counts.stale} case(s) keep a number only a retired key decrypts: run "
                    "`ivr secrets rekey cases` first")
        return ""

    def _before_retiring_callbacks(self) -> str:
        if self._callback_reseal is None:
            return "the callbacks in Redis could not be checked"
        stale, unreadable = self._callback_reseal(self._secrets, True)
        if unreadable:
            self._warn(f"{unreadable} callback number(s) no key decrypts already")
        if stale:
            return (f"{stale} callback(s) keep a number only a retired key decrypts: run "
                    "`ivr secrets rekey callbacks` first")
        return ""

    def _before_retiring_agi(self) -> str:
        asterisk = AsteriskInstall.locate(self._paths.asterisk_root)
        dialplan = asterisk.etc / "extensions.conf"
        try:
            text = dialplan.read_text()
        except OSError as exc:
            return f"cannot read {dialplan} ({exc.strerror}) to check that it carries the current key"
        used = set(re.findall(rf"\?{AGI_KEY_PARAM}=([^,)\s&]+)", text))
        current = self._secrets.agi_key()
        if used != {current}:
            return (f"{dialplan} does not carry the current key alone: rewrite it first (`ivr setup`, which also "
                    "reloads a running Asterisk)")
        self._say(f"{dialplan} carries the current key (a running Asterisk must have reloaded it: `ivr setup` does)")
        return ""
