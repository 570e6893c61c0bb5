"""A private redis-server for `ivr run` and the tests (Debian's redis-server).

Bound to loopback only, with append-only persistence in the given folder so
that shared state survives a restart of the engine.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


class RedisServer:
    def __init__(self, *, port: int, data_dir: Path, host: str = "127.0.0.1", persist: bool = True):
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.persist = persist
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is missing: apt-get install redis-server")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [exe, "--bind", self.host, "--port", str(self.port), "--dir", str(self.data_dir),
                "--save", "", "--appendonly", "yes" if self.persist else "no",
                "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited (code {self.proc.returncode}); is port {self.port} taken?")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on {self.host}:{self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0
