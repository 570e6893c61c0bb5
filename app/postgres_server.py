"""A private PostgreSQL cluster in a folder (Debian's ``postgresql``), for the
tests and for trying the PostgreSQL backend on one machine.

``initdb`` then ``pg_ctl start``: loopback only (``listen_addresses``), the
Unix socket in the cluster's own folder, trust authentication for the one
local user (nobody else can reach a loopback port in this setup; a real
deployment uses its own server and a password, docs/cases.md).

PostgreSQL refuses to run as root: as root, the cluster belongs to the
``postgres`` system user the package creates, and its programs run through
``runuser``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is missing: apt-get install postgresql (or run `make test`)")
    return Path(found[-1]).parent


class PostgresServer:
    def __init__(self, *, port: int, data_dir: Path, user: str = "ivr", database: str = "ivr_cases",
                 host: str = "127.0.0.1"):
        self.port, self.data_dir, self.user, self.database, self.host = port, data_dir, user, database, host
        self._bin = _bin_dir()
        self._as = []
        self._owner = None
        if os.geteuid() == 0:
            self._owner = pwd.getpwnam("postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{self.database}"

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        out = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed (exit {out.returncode}): "
                               f"{(out.stderr or out.stdout).strip()[-500:]}")
        return out

    def _own(self, path: Path) -> None:
        if self._owner is not None:
            os.chown(path, self._owner.pw_uid, self._owner.pw_gid)

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        # As root, the postgres user must be able to reach the folder: give
        # one whose parents it can traverse (e.g. tempfile.mkdtemp() itself).
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._own(self.data_dir)
        self._run(str(self._bin / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", self.user,
                  "-E", "UTF8", "--locale=C.UTF-8")

    def start(self, timeout: float = 30.0) -> None:
        self.init()
        options = f"-k {self.data_dir} -p {self.port} -c listen_addresses={self.host} -c fsync=on"
        self._run(str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "-o", options, "-l",
                  str(self.data_dir / "server.log"), "-w", "-t", str(int(timeout)), "start", timeout=timeout + 10)
        if not self._database_exists():
            self._run(str(self._bin / "createdb"), "-h", self.host, "-p", str(self.port), "-U", self.user,
                      self.database)

    def _database_exists(self) -> bool:
        out = self._run(str(self._bin / "psql"), "-h", self.host, "-p", str(self.port), "-U", self.user,
                        "-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{self.database}'",
                        check=False)
        return out.stdout.strip() == "1"

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends sessions and shuts down cleanly; ``immediate`` is a crash."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run(str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=False)

    def is_running(self) -> bool:
        out = self._run(str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "status", check=False)
        return out.returncode == 0

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def wait_until_ready(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self._run(str(self._bin / "pg_isready"), "-h", self.host, "-p", str(self.port), check=False)
            if out.returncode == 0:
                return True
            time.sleep(0.2)
        return False
