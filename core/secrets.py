"""Generated credentials: the AMI secret, one SIP password per agent, the
HMAC key of national IDs and the Fernet key of the case database.

Secrets are created once by ``ivr setup`` with :mod:`secrets` (CSPRNG), 32
URL-safe characters each, and kept in a 0600 JSON file in the state folder:
never in the repository, never in a log.
"""

from __future__ import annotations

import json
import os
import secrets as _csprng
from pathlib import Path

from .configuration import Config
from .privacy import NumberCipher

CASES_KEY = "fernet:cases"


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

    def ensure(self, config: Config) -> bool:
        """Create every secret the configuration needs; return True if any was added."""
        wanted = ["ami:" + config.service.ami.username, "hmac:national_id"] + [
            "sip:" + a.sip_username for a in config.agents
        ]
        if config.cases is not None:
            wanted.append(CASES_KEY)
        added = False
        for name in wanted:
            if name not in self._data:
                # A Fernet key has its own shape (32 random bytes, base64).
                self._data[name] = (NumberCipher.generate_key() if name.startswith("fernet:")
                                    else _csprng.token_urlsafe(24))
                added = True
        if added or not self.path.exists():
            self._write()
        return added

    def ami_secret(self, config: Config) -> str:
        return self.get("ami:" + config.service.ami.username)

    def national_id_key(self) -> bytes:
        """The HMAC key national IDs are hashed with before they are stored."""
        return self.get("hmac:national_id").encode()

    def cases_key(self) -> str:
        """The Fernet key callers' numbers are encrypted with in the case database."""
        return self.get(CASES_KEY)

    def agent_password(self, sip_username: str) -> str:
        return self.get("sip:" + sip_username)

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self._data, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.path)
