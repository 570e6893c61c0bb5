"""The fault suite's stack and helpers (tests/faults): the engine as its own
process, the figures each fault test reports. The fixture is in conftest.py;
the tests import what they need from here (a module of its own name: a test
run over all of tests/ has several conftest modules)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis

from app.simulate.metrics_reader import read_samples, sample
from app.simulate.sipp import CallerScript, Sipp, caller_scenario, write_presses
from app.redis_server import RedisServer
from app.simulate.relay import ThreadedRelay
from core.paths import REPO_ROOT
from dialplans.asterisk import AsteriskInstall
from metrics.call_records import CallRecord

REQUIRED_TOOLS = ("sipp", "redis-server")
PREFIX = "ivr-faults:"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class EngineProcess:
    """``ivr serve`` as its own process, logging at DEBUG into ``log``."""

    def __init__(self, config_dir: Path, log: Path, metrics_url: str):
        self.config_dir = config_dir
        self.log = log
        self.metrics_url = metrics_url
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 60.0) -> float:
        """Start it; return the seconds until it served /metrics with AMI logged in."""
        started = time.monotonic()
        out = self.log.open("a")
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "-v", "serve", "--config", str(self.config_dir)],
                                     cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        if not wait_until(lambda: self.proc.poll() is None and self.metric("ivr_ami_connected") == 1, timeout):
            raise RuntimeError(f"the engine did not come up; log {self.log}:\n{self.log.read_text()[-3000:]}")
        return time.monotonic() - started

    def metric(self, name: str, **labels: str) -> float | None:
        try:
            return sample(read_samples(self.metrics_url), name, **labels)
        except OSError:
            return None

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class FaultFigures:
    """What one fault test measured (docs/reliability.md)."""

    fault: str
    placed: int = 0
    reached_queue: int = 0
    dropped: int = 0
    counted: dict[str, int] = field(default_factory=dict)   # call-record outcome -> calls
    records: int = 0            # call records written (a call counted twice would show here)
    distinct_calls: int = 0     # calls with a record
    callbacks_lost: int = 0
    recover_seconds: float | None = None
    notes: str = ""


class Stack:
    def __init__(self, *, config, config_dir: Path, asterisk: AsteriskInstall, redis_server: RedisServer,
                 engine: EngineProcess, sipp: Sipp, workdir: Path, relay: ThreadedRelay, asterisk_proc=None):
        self.relay = relay
        self.asterisk_proc = asterisk_proc
        self.config = config
        self.config_dir = config_dir
        self.asterisk = asterisk
        self.redis_server = redis_server
        self.engine = engine
        self.sipp = sipp
        self.workdir = workdir
        s = config.service
        self.carrier = f"{s.carrier_sip.host}:{s.carrier_sip.port}"
        self.redis = redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=5)
        self.cleanups: list[Callable[[], None]] = []

    # --- traffic --------------------------------------------------------------------------------
    def callers(self, *, calls: int, rate: float, keys: tuple[tuple[int, str], ...], hold_ms: int,
                number: str = "1442", name: str = "burst", caller_prefix: str = "0225") -> "Traffic":
        """``calls`` SIPp callers at ``rate`` a second, each pressing ``keys`` then
        hanging up after ``hold_ms`` unless Asterisk hangs up first. Each
        caller's number is unique (``<prefix><call number>``)."""
        dtmf = write_presses(self.workdir, name, "".join(k for _, k in keys))
        script = CallerScript(number=number, keys=keys, hold_ms=hold_ms, caller_id=caller_prefix + "[call_number]")
        scenario = caller_scenario(script, dtmf)
        # A BYE from Asterisk before the caller's own hang-up is a dropped call here
        # (no agent answers in these tests): logged, one line per call.
        scenario = scenario.replace('<recv request="BYE"', '<recv request="BYE" next="dropped"', 1).replace(
            "<label id=\"hangup\"/>",
            '<label id="dropped"/>\n  <nop><action><log message="DROPPED [call_id]"/></action></nop>\n'
            '  <send next="end"><![CDATA[\n      SIP/2.0 200 OK\n      [last_Via:]\n      [last_From:]\n'
            '      [last_To:]\n      [last_Call-ID:]\n      [last_CSeq:]\n      Content-Length: 0\n    ]]></send>\n'
            '  <label id="hangup"/>', 1)
        proc = self.sipp.start(name, scenario, target=self.carrier, calls=calls,
                               timeout_s=int(calls / rate + hold_ms / 1000) + 120,
                               extra=("-r", str(rate), "-rp", "1000", "-l", str(calls), "-trace_logs",
                                      "-log_file", str(self.workdir / f"{name}.sipplog")))
        return Traffic(proc, self.workdir / f"{name}.sipplog", calls)

    # --- what was counted -----------------------------------------------------------------------
    def records(self) -> list[CallRecord]:
        out = []
        for _, fields in self.redis.xrange(f"{PREFIX}call_records"):
            out.append(CallRecord.from_fields(fields))
        return out

    def records_since(self, since: float) -> list[CallRecord]:
        return [r for r in self.records() if (r.received or r.ended or 0) >= since - 1]

    def queue_log(self) -> list[list[str]]:
        path = self.asterisk.log_dir / "queue_log"
        return [line.split("|") for line in path.read_text(errors="replace").splitlines()] if path.exists() else []

    def figures(self, fault: str, placed: int, since: float, traffic: "Traffic | None" = None) -> FaultFigures:
        """The calls that started after ``since`` (epoch), as Asterisk and the engine saw them."""
        log = [f for f in self.queue_log() if f[0].isdigit() and int(f[0]) >= int(since) - 1]
        entered = {f[1] for f in log if len(f) > 4 and f[4] == "ENTERQUEUE"}
        records = [r for r in self.records() if (r.received or r.ended or 0) >= since - 1]
        counted: dict[str, int] = {}
        for r in records:
            counted[r.outcome] = counted.get(r.outcome, 0) + 1
        return FaultFigures(fault=fault, placed=placed, reached_queue=len(entered),
                            dropped=traffic.dropped() if traffic else 0, counted=counted, records=len(records),
                            distinct_calls=len({r.uid for r in records}))

    def hang_up_all(self) -> None:
        if self.asterisk.is_running():
            self.asterisk.cli("channel request hangup all")

    def channels(self) -> list[list[str]]:
        return [line.split("!") for line in self.asterisk.cli("core show channels concise").splitlines() if "!" in line]

    def queue_callers(self, queue: str) -> list[str]:
        """Callers waiting in ``queue``, in order (caller numbers as Asterisk holds them)."""
        out = self.asterisk.cli(f"queue show {queue}")
        return re.findall(r"^\s+\d+\. (\S+) \(wait", out, re.M)


class Traffic:
    def __init__(self, proc, log: Path, calls: int):
        self.proc = proc
        self.log = log
        self.calls = calls

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def dropped(self) -> int:
        if not self.log.exists():
            return 0
        return sum(1 for line in self.log.read_text(errors="replace").splitlines() if "DROPPED" in line)


def report(figures: FaultFigures) -> None:
    path = Path(os.environ.get("IVR_FAULT_REPORT") or (Path(os.environ.get("TMPDIR", "/tmp")) / "ivr-faults.jsonl"))
    with path.open("a") as fh:
        fh.write(json.dumps({**asdict(figures), "at": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
    print(f"\nFAULT {figures.fault}: {json.dumps(asdict(figures))}")


def engine_config_dir(tmp: Path, redis_port: int, ami_port: int) -> Path:
    """The shipped configuration, with the engine's Redis on the test's own
    server (its own port and key prefix: a fault test never touches the
    state of `make run`) and its AMI through the tests' relay."""
    target = tmp / "config"
    shutil.copytree(REPO_ROOT / "config", target)
    service = target / "service.yaml"
    text = service.read_text()
    new = re.sub(r"redis: \{[^}]*\}", f'redis: {{host: 127.0.0.1, port: {redis_port}, db: 0, key_prefix: "{PREFIX}"}}',
                 text, count=1)
    assert new != text, "service.yaml's redis line changed shape"
    text, new = new, re.sub(r"(\n  ami:\n(?:    .*\n)*?    port: )\d+", rf"\g<1>{ami_port}", new, count=1)
    assert new != text, "service.yaml's ami block changed shape"
    service.write_text(new)
    # Always open: a fault run at night must not meet the closed message.
    hotlines = target / "hotlines.yaml"
    text = hotlines.read_text()
    new = re.sub(r"^\s+schedule: \w+\n", "", text, flags=re.M)
    assert new != text, "hotlines.yaml's schedule line changed shape"
    hotlines.write_text(new)
    return target


# 1442: 6 (Forsa), 1 (inquiry), then the transfer prompt and the Forsa queue.
FORSA_INQUIRY = ((1200, "6"), (1500, "1"))
QUEUE = "forsa"


def clear_members(stack: Stack) -> None:
    """No agent: every caller waits until they hang up."""
    for q in stack.config.queues:
        out = stack.asterisk.cli(f"queue show {q.id}")
        for member in set(re.findall(r"\((PJSIP/[^\s)]+)\)", out)):
            stack.asterisk.cli(f"queue remove member {member} from {q.id}")
    stack.asterisk.cli("database deltree Queue/PersistentMembers")


def ivr_seconds(stack: Stack, since: float) -> dict[str, float]:
    """Each call's time from its channel's creation (its uniqueid is that
    epoch) to its first ENTERQUEUE: how long the IVR held it."""
    out: dict[str, float] = {}
    for f in stack.queue_log():
        if len(f) > 4 and f[4] == "ENTERQUEUE" and f[0].isdigit() and int(f[0]) >= int(since) - 1:
            uid = f[1]
            if uid not in out and uid.replace(".", "").isdigit():
                out[uid] = int(f[0]) - float(uid)
    return out
