"""Where the engine keeps what is not in the repository.

* the cache (re-creatable, large): the Asterisk root built by ``ivr setup`` and
  the synthesized prompt cache. ``$IVR_CACHE_DIR``, default
  ``$XDG_CACHE_HOME/ivr-hotline`` (``~/.cache/ivr-hotline``).
* the state (small, precious): generated secrets, Redis data, logs and pid
  files. ``$IVR_STATE_DIR``, default ``$XDG_STATE_HOME/ivr-hotline``
  (``~/.local/state/ivr-hotline``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Paths:
    cache: Path
    state: Path

    @classmethod
    def from_environment(cls) -> "Paths":
        home = Path.home()
        cache = os.environ.get("IVR_CACHE_DIR") or Path(
            os.environ.get("XDG_CACHE_HOME") or home / ".cache"
        ) / "ivr-hotline"
        state = os.environ.get("IVR_STATE_DIR") or Path(
            os.environ.get("XDG_STATE_HOME") or home / ".local" / "state"
        ) / "ivr-hotline"
        return cls(cache=Path(cache), state=Path(state))

    @property
    def asterisk_root(self) -> Path:
        return self.cache / "asterisk-root"

    @property
    def prompt_cache(self) -> Path:
        return self.cache / "prompts"

    @property
    def secrets_file(self) -> Path:
        return self.state / "secrets.json"

    @property
    def redis_dir(self) -> Path:
        return self.state / "redis"

    @property
    def log_dir(self) -> Path:
        return self.state / "log"
