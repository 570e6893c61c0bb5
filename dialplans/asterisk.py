"""The Asterisk the engine runs on: found on the system, or built into a root.

Debian 12 has no ``asterisk`` package; Debian sid has Asterisk 22. When no
``asterisk`` is on PATH, ``AsteriskInstall.ensure`` builds a minimal sid root
with debootstrap into the cache folder (outside the repository, about 500 MB,
about a minute) and reuses it on every later run. Asterisk runs in it with
``chroot``; the chroot shares the host's network, so it reaches the FastAGI
service on 127.0.0.1 and SIPp reaches its loopback ports.

Asterisk must run as root *without* ``-U``: with ``-U root`` it drops its
capabilities and cannot read its own configuration files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from core.secrets import CALLBACKS_KEY, CALLER_NUMBER_KEY, NATIONAL_ID_KEY, SecretStore

log = logging.getLogger(__name__)

DEBIAN_MIRROR = os.environ.get("IVR_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# python3-venv: the classic-AGI script (ivr-agi) runs inside the root, where
# Asterisk can execute it.
PACKAGES = "asterisk,asterisk-modules,python3-venv"
# Where `ivr setup` installs the engine inside the root for classic AGI.
CLASSIC_HOME = Path("/opt/ivr-hotline")
# The only secrets the classic-AGI script gets: the keys it hashes with (and,
# after a rotation, the national-ID key's retired keys: the ID is hashed with
# each so that the desktop finds the citizen's older cases), and the key it
# encrypts the number of a closed-hours callback with (the callbacks in Redis
# hold no number in clear).
CLASSIC_AGI_SECRETS = [NATIONAL_ID_KEY, CALLER_NUMBER_KEY, CALLBACKS_KEY]


class AsteriskError(RuntimeError):
    pass


@dataclass
class AsteriskInstall:
    """``root`` is ``/`` for a system Asterisk, else the chroot folder."""

    root: Path

    @property
    def chrooted(self) -> bool:
        return self.root != Path("/")

    @property
    def etc(self) -> Path:
        return self.root / "etc" / "asterisk"

    @property
    def sounds(self) -> Path:
        return self.root / "usr" / "share" / "asterisk" / "sounds"

    @property
    def moh(self) -> Path:
        return self.root / "usr" / "share" / "asterisk" / "moh"

    @property
    def log_dir(self) -> Path:
        return self.root / "var" / "log" / "asterisk"

    @property
    def spool_outgoing(self) -> Path:
        """Where call files go (pbx_spool; ``astspooldir`` in asterisk.conf)."""
        return self.root / "var" / "spool" / "asterisk" / "outgoing"

    @classmethod
    def locate(cls, cache_root: Path) -> "AsteriskInstall":
        """A system Asterisk wins; otherwise the cached root (built on demand)."""
        if os.environ.get("IVR_ASTERISK_ROOT"):
            return cls(Path(os.environ["IVR_ASTERISK_ROOT"]))
        if shutil.which("asterisk") and not (cache_root / "usr" / "sbin" / "asterisk").exists():
            return cls(Path("/"))
        return cls(cache_root)

    def is_built(self) -> bool:
        return (self.root / "usr" / "sbin" / "asterisk").exists()

    def ensure(self, progress=print) -> None:
        """Build the root once. Idempotent: an existing root is kept as it is."""
        if self.is_built():
            return
        if not self.chrooted:
            raise AsteriskError("no asterisk on PATH and no root to build into")
        if os.geteuid() != 0:
            raise AsteriskError("building the Asterisk root needs root (debootstrap, chroot)")
        if not shutil.which("debootstrap"):
            raise AsteriskError("debootstrap is missing: apt-get install debootstrap")
        tmp = self.root.with_name(self.root.name + ".partial")
        if tmp.exists():
            _unmount_proc(tmp)
            shutil.rmtree(tmp)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        progress(f"Building the Asterisk root in {self.root} (Debian sid, about a minute)...")
        cmd = ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "sid", str(tmp), DEBIAN_MIRROR]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise AsteriskError("debootstrap failed:\n" + result.stdout[-2000:] + result.stderr[-2000:])
        # Only a complete root gets the final name, so an interrupted build is
        # never mistaken for a good one.
        os.replace(tmp, self.root)
        progress("Asterisk root ready.")

    def classic_agi_paths(self) -> dict[str, str]:
        """Paths as Asterisk sees them: the ivr-agi script, its config and state."""
        if not self.chrooted:
            import sys

            from core.paths import REPO_ROOT, Paths

            return {"script": str(Path(sys.executable).with_name("ivr-agi")), "config": str(REPO_ROOT / "config"),
                    "state": str(Paths.from_environment().state)}
        return {"script": str(CLASSIC_HOME / "venv" / "bin" / "ivr-agi"), "config": str(CLASSIC_HOME / "config"),
                "state": str(CLASSIC_HOME / "state")}

    def install_classic_agi(self, repo_root: Path, secrets: SecretStore, progress=print) -> None:
        """Make ``ivr-agi`` runnable by Asterisk inside the root (idempotent).

        The root gets python3-venv, the configuration, and a venv with the
        engine installed from wheels prepared on the host; a stamp of the
        source's content skips all that when nothing changed. The script gets a
        secrets file (mode 600) with the two keys it hashes with (national IDs,
        callers' numbers; after a rotation, the national-ID key's retired keys
        too) and the key it encrypts a closed-hours callback's number with
        (``fernet:callbacks``), the same as the service's, and nothing else: no
        AMI secret, no agent password, no FastAGI or case database key.
        """
        if not self.chrooted:
            return
        home = self.root / CLASSIC_HOME.relative_to("/")
        if not (self.root / "usr" / "bin" / "python3").exists():
            progress("Installing python3 in the Asterisk root for classic AGI...")
            # The mirror may serve an older sid snapshot: do not reject it for its date.
            for cmd in (["apt-get", "-o", "Acquire::Check-Valid-Until=false", "update", "-q"],
                        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "python3-venv"]):
                result = subprocess.run(["chroot", str(self.root), *cmd], capture_output=True, text=True,
                                        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
                if result.returncode != 0:
                    raise AsteriskError(f"{' '.join(cmd)} in the root failed: {result.stderr[-1500:]}")
        digest = hashlib.sha256()
        for folder in ("core", "metrics", "dialplans", "queues", "ivr", "app", "config"):
            for path in sorted((repo_root / folder).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    digest.update(str(path.relative_to(repo_root)).encode() + path.read_bytes())
        digest.update((repo_root / "pyproject.toml").read_bytes())
        stamp = home / "installed.sha256"
        if not stamp.exists() or stamp.read_text() != digest.hexdigest():
            progress("Installing the engine in the Asterisk root for classic AGI...")
            self._install_engine(repo_root, home)
            stamp.write_text(digest.hexdigest())
        self.write_classic_agi_secrets(secrets)

    def write_classic_agi_secrets(self, secrets: SecretStore) -> Path | None:
        """The classic-AGI script's copy of its keys (mode 600), rewritten
        after a rotation; None when the script is not installed in a root."""
        if not self.chrooted:
            return None   # a system Asterisk runs ivr-agi with the engine's own state folder
        state = self.root / CLASSIC_HOME.relative_to("/") / "state"
        state.mkdir(parents=True, exist_ok=True)
        secrets.write_subset(state / "secrets.json", CLASSIC_AGI_SECRETS + secrets.with_retired([NATIONAL_ID_KEY]))
        return state / "secrets.json"

    def _install_engine(self, repo_root: Path, home: Path) -> None:
        # Wheels are fetched on the host, with the host's pip settings (its
        # index and certificates), for the root's Python; the root then
        # installs them offline. The root's own network setup never matters.
        import sys
        import tomllib

        version = self._run_in_root(["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).strip()
        wheels = home / "wheels"
        if wheels.exists():
            shutil.rmtree(wheels)
        wheels.mkdir(parents=True)
        requirements = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["dependencies"]
        pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
        for cmd in ([*pip, "download", "-d", str(wheels), "--only-binary=:all:", "--python-version", version,
                     "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform",
                     "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64", *requirements],
                    [*pip, "wheel", "--no-deps", "-w", str(wheels), str(repo_root)]):
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                raise AsteriskError(f"preparing wheels for the root failed: {result.stderr[-1500:]}")
        config = home / "config"
        if config.exists():
            shutil.rmtree(config)
        shutil.copytree(repo_root / "config", config)
        venv = CLASSIC_HOME / "venv"
        self._run_in_root(["python3", "-m", "venv", "--clear", str(venv)])
        self._run_in_root([str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links",
                           str(CLASSIC_HOME / "wheels"), "ivr-hotline"])

    def _run_in_root(self, cmd: list[str]) -> str:
        result = subprocess.run(["chroot", str(self.root), *cmd], capture_output=True, text=True)
        if result.returncode != 0:
            raise AsteriskError(f"{' '.join(cmd)} in the root failed: {result.stderr[-1500:]}")
        return result.stdout

    def command(self, *args: str) -> list[str]:
        base = ["chroot", str(self.root), "asterisk"] if self.chrooted else ["asterisk"]
        return base + list(args)

    def cli(self, command: str, timeout: float = 10.0) -> str:
        """Run one Asterisk CLI command against the running daemon."""
        result = subprocess.run(
            self.command("-rx", command), capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise AsteriskError(f"asterisk -rx {command!r}: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def is_running(self) -> bool:
        try:
            self.cli("core show version", timeout=5)
            return True
        except (AsteriskError, subprocess.TimeoutExpired):
            return False

    def reload(self) -> None:
        """Re-read the configuration; modules added to modules.conf are loaded too."""
        self.cli("core reload")
        from .generate import MODULES

        loaded = self.cli("module show")
        for name in MODULES:
            if f"{name}.so" not in loaded:
                log.info("loading module %s", name)
                self.cli(f"module load {name}.so")

    def start(self, timeout: float = 30.0) -> subprocess.Popen | None:
        """Start Asterisk in the background; wait until it is fully booted."""
        if self.is_running():
            log.info("Asterisk already running; reloading its configuration")
            self.reload()
            return None
        if self.chrooted:
            _mount_proc(self.root)
            (self.root / "var" / "run" / "asterisk").mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            self.command("-f"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AsteriskError(
                    f"Asterisk exited at start (code {proc.returncode}); see {self.log_dir}/messages.log"
                )
            try:
                out = self.cli("core waitfullybooted", timeout=5)
                if "fully booted" in out.lower():
                    return proc
            except (AsteriskError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.3)
        proc.kill()
        raise AsteriskError(f"Asterisk did not finish booting in {timeout:.0f} s")

    def stop(self, proc: subprocess.Popen | None = None, timeout: float = 15.0) -> None:
        try:
            self.cli("core stop now", timeout=timeout)
        except (AsteriskError, subprocess.TimeoutExpired):
            pass
        if proc is not None:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.chrooted:
            _unmount_proc(self.root)


def _mount_proc(root: Path) -> None:
    proc = root / "proc"
    proc.mkdir(exist_ok=True)
    if not os.path.ismount(proc):
        subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)


def _unmount_proc(root: Path) -> None:
    proc = root / "proc"
    if os.path.ismount(proc):
        subprocess.run(["umount", "-l", str(proc)], check=False)
