"""Generated credentials: the AMI secrets, one SIP password per agent, the
FastAGI key, the HMAC keys of national IDs and of callers' numbers and the
Fernet keys of the case database and of the callbacks' numbers.

Secrets are created once by ``ivr setup`` with :mod:`secrets` (CSPRNG), 32
URL-safe characters each, and kept in a 0600 JSON file in the state folder:
never in the repository, never in a log.

Keys that protect stored data can be rotated (``ivr secrets rotate``,
docs/reliability.md): the new key becomes ``<name>``, the old one is kept as
``<name>:retired:<n>`` so that what it protects stays readable (a hash made
with it is still found, a number encrypted with it still decrypts) until the
data is re-keyed (``ivr secrets rekey``) and the old key retired
(``ivr secrets retire``).
"""

from __future__ import annotations

import json
import os
import re
import secrets as _csprng
from dataclasses import dataclass
from pathlib import Path

from .configuration import Config
from .privacy import NumberCipher

CASES_KEY = "fernet:cases"
# Callers' numbers kept in Redis to call them back (queues.callbacks.store).
CALLBACKS_KEY = "fernet:callbacks"
NATIONAL_ID_KEY = "hmac:national_id"
CALLER_NUMBER_KEY = "hmac:caller_number"
AGI_KEY = "agi:key"
RETIRED = ":retired:"
# The keys `ivr secrets rotate` knows, by the name an operator types.
ROTATABLE = {"national-id": NATIONAL_ID_KEY, "caller-number": CALLER_NUMBER_KEY, "cases": CASES_KEY,
             "agi": AGI_KEY, "callbacks": CALLBACKS_KEY}


@dataclass(frozen=True)
class KeyRing:
    """A key in use and the keys it replaced, newest first: data is written
    with ``current`` and read with any of them."""

    current: bytes
    retired: tuple[bytes, ...] = ()

    @property
    def all(self) -> tuple[bytes, ...]:
        return (self.current, *self.retired)


class SecretStore:
    def __init__(self, path: Path):
        self.path = path
        self._data: dict[str, str] = {}
        if path.exists():
            self._data = json.loads(path.read_text())

    def get(self, name: str) -> str:
        try:
            return self._data[name]
        except KeyError:
            raise KeyError(f"secret {name!r} missing from {self.path}; run `ivr setup`") from None

    def names(self) -> list[str]:
        return sorted(self._data)

    def ensure(self, config: Config) -> bool:
        """Create every secret the configuration needs; return True if any was added."""
        wanted = ["ami:" + config.service.ami.username, "ami:" + config.service.ami.monitor_username,
                  NATIONAL_ID_KEY, CALLER_NUMBER_KEY, AGI_KEY, CALLBACKS_KEY] + [
            "sip:" + a.sip_username for a in config.agents
        ]
        if config.cases is not None:
            wanted.append(CASES_KEY)
        added = False
        if CALLER_NUMBER_KEY not in self._data and NATIONAL_ID_KEY in self._data:
            # Releases before the separate caller-number key hashed numbers with
            # the national-ID key: it stays readable as the number key's retired
            # key, so the numbers hashed then are still recognised.
            self._data[CALLER_NUMBER_KEY + RETIRED + "1"] = self._data[NATIONAL_ID_KEY]
        for name in wanted:
            if name not in self._data:
                self._data[name] = _new_secret(name)
                added = True
        if added or not self.path.exists():
            self._write()
        return added

    # --- rotation -------------------------------------------------------------------------------

    def rotate(self, name: str) -> str:
        """Make a new ``name`` key; the old one is kept as its newest retired key.
        Returns the retired key's name (empty when there was no key)."""
        old = self._data.get(name)
        retired_name = ""
        if old is not None:
            retired_name = f"{name}{RETIRED}{self._last_retired(name) + 1}"
            self._data[retired_name] = old
        self._data[name] = _new_secret(name)
        self._write()
        return retired_name

    def retire(self, name: str) -> list[str]:
        """Forget every retired key of ``name``: what only they could read is
        unreadable from now on. Returns the names dropped."""
        dropped = [k for k in self._data if k.startswith(name + RETIRED)]
        for k in dropped:
            del self._data[k]
        if dropped:
            self._write()
        return sorted(dropped)

    def ring(self, name: str) -> KeyRing:
        retired = sorted(((int(k.rsplit(":", 1)[1]), v) for k, v in self._data.items()
                          if k.startswith(name + RETIRED)), reverse=True)
        return KeyRing(self.get(name).encode(), tuple(v.encode() for _, v in retired))

    def _last_retired(self, name: str) -> int:
        numbers = [int(m.group(1)) for k in self._data
                   if (m := re.fullmatch(re.escape(name + RETIRED) + r"(\d+)", k))]
        return max(numbers, default=0)

    # --- what each part needs ---------------------------------------------------------------------

    def ami_secret(self, config: Config) -> str:
        return self.get("ami:" + config.service.ami.username)

    def ami_monitor_secret(self, config: Config) -> str:
        return self.get("ami:" + config.service.ami.monitor_username)

    def national_id_key(self) -> bytes:
        """The HMAC key national IDs are hashed with before they are stored."""
        return self.get(NATIONAL_ID_KEY).encode()

    def national_id_keys(self) -> KeyRing:
        return self.ring(NATIONAL_ID_KEY)

    def caller_number_keys(self) -> KeyRing:
        """The HMAC keys of callers' numbers (repeat callers, a citizen's cases)."""
        return self.ring(CALLER_NUMBER_KEY)

    def agi_key(self) -> str:
        """The key the dialplan puts in every FastAGI URL (core.contract.AGI_KEY_PARAM)."""
        return self._data.get(AGI_KEY, "")

    def cases_key(self) -> str:
        """The Fernet key callers' numbers are encrypted with in the case database."""
        return self.get(CASES_KEY)

    def cases_keys(self) -> list[str]:
        """The Fernet keys, newest first (a number encrypted with a retired key still decrypts)."""
        return [k.decode() for k in self.ring(CASES_KEY).all]

    def callbacks_keys(self) -> list[str]:
        """The Fernet keys of callers' numbers in the callbacks (Redis), newest
        first: written with the first, read with any (``NumberCipher``)."""
        return [k.decode() for k in self.ring(CALLBACKS_KEY).all]

    def agi_keys(self) -> list[str]:
        """The FastAGI keys the engine accepts, the current first: a dialplan
        written before ``ivr secrets rotate agi`` still carries a retired one."""
        if AGI_KEY not in self._data:
            return []
        return [k.decode() for k in self.ring(AGI_KEY).all]

    def with_retired(self, names: list[str]) -> list[str]:
        """``names`` and the retired keys of each (a copy of keys for another process)."""
        return [n for n in self.names() if n in names or any(n.startswith(m + RETIRED) for m in names)]

    def agent_password(self, sip_username: str) -> str:
        return self.get("sip:" + sip_username)

    def write_subset(self, path: Path, names: list[str]) -> None:
        """A secrets file holding only ``names`` (for a process that needs no
        more, e.g. classic AGI inside Asterisk's root), mode 0600."""
        write_private_json(path, {n: self._data[n] for n in names if n in self._data})

    def _write(self) -> None:
        write_private_json(self.path, self._data)


def _new_secret(name: str) -> str:
    # A Fernet key has its own shape (32 random bytes, base64).
    return NumberCipher.generate_key() if name.startswith("fernet:") else _csprng.token_urlsafe(24)


def write_private_json(path: Path, data: dict[str, str]) -> None:
    """Write ``data`` whole (a new file renamed over the old), readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


class KeyFileWatch:
    """The keys of ``name`` as the secrets file holds them now: read again
    only when the file changed (one ``stat`` per call). The FastAGI server
    asks it at each session, so a rotated key is accepted (and a retired one
    refused) without restarting the engine; an unreadable file keeps the
    keys last read."""

    def __init__(self, path: Path, name: str):
        self._path = path
        self._name = name
        self._stamp: tuple[int, int] | None = None
        self._keys: list[str] = []

    def __call__(self) -> list[str]:
        try:
            st = os.stat(self._path)
        except OSError:
            return self._keys
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp != self._stamp:
            try:
                ring = SecretStore(self._path).ring(self._name)
            except (KeyError, ValueError, OSError):
                return self._keys
            self._keys, self._stamp = [k.decode() for k in ring.all], stamp
        return self._keys
