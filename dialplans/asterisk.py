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

import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEBIAN_MIRROR = os.environ.get("IVR_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = "asterisk,asterisk-modules"


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
