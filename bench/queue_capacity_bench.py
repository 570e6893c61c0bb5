"""Queue capacity: callers waiting with music on hold and announcements, per machine.

    .venv/bin/python bench/queue_capacity_bench.py [--max-callers 600] [--steps 10,300,500]
    .venv/bin/python bench/queue_capacity_bench.py --quick        # N = 5 and 20, about 2 minutes

Results and how to read them: docs/benchmarks.md, "Queue capacity".

How many callers can wait in a queue at once, on this machine, with every
call completing, and what does one waiting caller cost Asterisk and the
engine in CPU and memory? Each step N places N callers with one SIPp
process; the first step (N = 10) is the baseline every later step is
compared with, measured in the same run (the machine is noisy: the ratios
are the figures that count, not the absolute timings).

What runs
---------
* Asterisk 22 (``dialplans.asterisk.AsteriskInstall``), configured by
  ``app.cli.setup`` from a temporary copy of ``config/`` in which the Nasser
  Social Bank queue announces every ``--announce-every`` seconds (as
  shipped: 60) and never overflows (``max_callers`` 10000, ``max_wait_seconds`` 7200), the
  engine uses a private redis-server on a free port (key prefix
  ``ivr-bench:``), and Asterisk's RTP range is widened to 10000-14999 (the
  shipped 10000-10999 holds at most 500 calls: one even port per call).
  The shipped configuration is written back to Asterisk at the end.
* The engine as its own process, ``.venv/bin/ivr serve --config <tmp>``, so
  its CPU time (utime + stime in /proc/<pid>/stat) and its RSS (VmRSS) are
  its own; Asterisk's, redis-server's and SIPp's are read the same way.
* No agent is logged in (members persisted in AstDB and leftovers are
  cleared first), so every caller waits until they hang up.

One step
--------
* One SIPp process places N callers (``-m N -l N``) at N / ``--ramp``
  calls per second on the direct line 14403: each presses 1 (inquiry) at
  1.2 s, hears the transfer prompt, waits in the queue with music on hold
  and whispered announcements (join, then every ``--announce-every`` s:
  a call file of a Local channel pair + ChanSpy), and hangs up
  ``--hold`` seconds after the key (the interval + 20 s: 80 s as shipped,
  so that every caller waits long enough for one periodic announcement).
  Every caller has its own mobile number (no repeat-caller priority).
* Sampled every 0.5 s: CPU time and RSS of the four processes (and the
  CPU time of every process on the machine), the UDP datagrams the machine
  sent (/proc/net/snmp: nearly all of them are Asterisk's RTP, the music
  and announcements the callers hear), CPU pressure (/proc/pressure/cpu:
  how long some runnable task waited for a core), and the engine's view of
  the queue (ZCARD of its waiting set in Redis; how long that took is a
  Redis round trip as any client sees it); every 5 s Asterisk's own count
  (``queue show``). The machine's CPU is summed from the processes, not
  read from /proc/stat (see ``all_cpu_seconds``).
* The **plateau** is the time all N callers are waiting (engine view):
  from 2 s after the last one joined until the first one hangs up. CPU per
  waiting caller per minute is measured over it, after subtracting each
  process's idle CPU rate (measured before the first step with the same
  sampling going on): ``(CPU - idle rate x T) / N / (T / 1 min)``.
* RSS per waiting caller: (peak RSS during the step - RSS at idle before
  the first step) / N.

A step passes when every call completes: SIPp reports N successful calls
and 0 failed; the engine counted N offered to the queue (all of them after
a recognised key 1: inquiry) and N abandoned, no answer, no overflow; and
nobody was short-changed while waiting: N join announcements, no periodic
announcement missing (each caller gets one per ``--announce-every`` s of
wait, read from the engine's log), none more than ``--late`` s (5) after
it was due, the engine not behind on AMI events (from Asterisk queueing a
caller, ``ENTERQUEUE`` in its queue_log, to the engine counting the offer:
p95 no more than ``--late`` s above the baseline's), and the music not
falling behind (RTP datagrams sent per waiting caller per second at least
``--moh-min`` (0.9) of the baseline's, which is 50/s: one 20 ms frame each),
and the engine keeping up with Asterisk: its own event-lag histogram
(``ivr_ami_event_lag_seconds{consumer}`` on /metrics: from each AMI event's
``Timestamp`` to the moment a lane of the event pump has handled it),
scraped before and after the step, gives each lane's p99 over the step; a
step fails when any lane's p99 is above 1 s (more than 1 % of its events
older than 1 s when handled: 1 s is a bucket bound, so this is exact).

The steps are 10, 100, 200, 300, ... (every 100) up to ``--max-callers``
(600) and stop at the first failure; then up to ``--refine`` (2) steps halve the gap
between the largest pass and that failure, down to ``--resolution`` (50)
callers. A step that would not fit in what is left of ``--budget`` (1200 s)
is not started. Exit status 1 means the baseline step failed (nothing was
measured); a larger step failing is the finding, not an error. With
``--require-all`` (the test of ``--quick``, tests/e2e), any failed or
skipped step is exit status 1.

Everything started here is stopped at the end (SIPp, the engine, Asterisk,
redis-server), also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import redis
import yaml

from dialplans.asterisk import AsteriskError, AsteriskInstall
from app.cli import setup
from core.configuration import Config, load_config
from core.paths import Paths
from app.redis_server import RedisServer, port_is_free
from app.simulate.dtmf_pcap import write_presses
from app.simulate.metrics_reader import read_samples, sample
from app.simulate.sipp import CallerScript, Sipp, SippProcess, caller_scenario
from queues.calls.journal import journal_families

QUEUE = "nasser_bank"
HOTLINE = "14403"
KEY_AT_MS = 1200
KEY_PREFIX = "ivr-bench:"
BENCH_RTP = (10000, 14999)       # SIPp's ports start at 16000 (app.simulate.sipp.PortPool)
ALL_QUEUES = ("takaful_karama", "services_card", "nasser_bank", "addiction_fund", "abnaa_misr", "forsa",
              "shared")
SAMPLE_EVERY = 0.5
ASTERISK_COUNT_EVERY = 5.0
PLATEAU_SKIP = 2.0               # seconds after the last join before the plateau counts
ANNOUNCE_TICK = 3.0              # the engine looks for due announcements every 3 s (app/engine.py)
CLK_TCK = os.sysconf("SC_CLK_TCK")
LAG_BUCKETS = "ivr_ami_event_lag_seconds_bucket"   # the engine's own event lag, per lane (queues/events.py)
LAG_LIMIT_S = 1.0                # a step whose p99 event lag (any lane) is above this fails
LAG_QUANTILE = 0.99
HOLD_AFTER_DUE = 20.0            # default hold = announcement interval + this: one periodic each
PROCESSES = ("asterisk", "engine", "redis", "sipp")

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \w+ [\w.]+: (.*)$")
OFFERED = re.compile(r"^call (\S+) offered to (\w+)")
ANNOUNCED = re.compile(r"^announced \((join|periodic)\) position \d+ to call (\S+) in (\w+)")
ABANDONED = re.compile(r"^call (\S+) abandoned in (\w+)")
QUEUE_COUNT = re.compile(r"has (\d+) calls?")
CHANNEL_COUNT = re.compile(r"(\d+) active channels?")
MEMBER_INTERFACE = re.compile(r"PJSIP/[\w.@-]+")


def say(*args) -> None:
    print(*args, flush=True)


# --------------------------------------------------------------------------
# /proc
# --------------------------------------------------------------------------

def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process (all its threads), in seconds."""
    if pid is None:
        return None
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def rss_kib(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def all_cpu_seconds() -> dict[int, float]:
    """pid -> CPU seconds of every process on the machine (kernel threads included).

    The machine's share is summed from these rather than read from
    /proc/stat: on this kind of VM /proc/stat's tick-sampled busy time misses
    most of a load made of short bursts (Asterisk's 20 ms media frames): a
    test load of 100 us bursts measured 0.21 cores by the process and 0.08
    by /proc/stat.
    """
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            value = cpu_seconds(int(entry.name))
            if value is not None:
                out[int(entry.name)] = value
    return out


def udp_out_datagrams() -> int:
    """Datagrams sent by every process (RTP is nearly all of them here)."""
    lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines() if ln.startswith("Udp:")]
    return int(lines[1][lines[0].index("OutDatagrams")])


def cpu_pressure_us() -> int | None:
    """PSI: total microseconds during which some runnable task waited for a CPU."""
    try:
        for line in Path("/proc/pressure/cpu").read_text().splitlines():
            if line.startswith("some"):
                return int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------

@dataclass
class Sample:
    t: float
    cpu: dict[str, float | None]
    rss: dict[str, int | None]
    waiting: int | None
    redis_rtt: float | None      # seconds the ZCARD above took: a Redis round trip as any client sees it
    all_cpu: dict[int, float]
    udp_out: int
    pressure_us: int | None


class Sampler:
    """A thread sampling the processes every 0.5 s; another asking Asterisk
    for its queue count every 5 s (so the slow CLI never delays the first)."""

    def __init__(self, pids: dict[str, int | None], redis_client: redis.Redis, asterisk: AsteriskInstall):
        self.pids = pids
        self._redis = redis_client
        self._asterisk = asterisk
        self.samples: list[Sample] = []
        self.asterisk_counts: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _waiting(self) -> tuple[int | None, float | None]:
        started = time.perf_counter()
        try:
            count = int(self._redis.zcard(f"{KEY_PREFIX}waiting:{QUEUE}"))
        except redis.RedisError:
            return None, None
        return count, time.perf_counter() - started

    def take(self) -> Sample:
        pids = dict(self.pids)
        waiting, rtt = self._waiting()
        return Sample(time.monotonic(), {k: cpu_seconds(p) for k, p in pids.items()},
                      {k: rss_kib(p) for k, p in pids.items()}, waiting, rtt, all_cpu_seconds(),
                      udp_out_datagrams(), cpu_pressure_us())

    def _run_samples(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.samples.append(self.take())
            next_at += SAMPLE_EVERY
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _run_counts(self) -> None:
        while not self._stop.is_set():
            count = asterisk_queue_count(self._asterisk)
            if count is not None:
                self.asterisk_counts.append((time.monotonic(), count))
            self._stop.wait(ASTERISK_COUNT_EVERY)

    def start(self, asterisk_counts: bool = True) -> None:
        self.samples, self.asterisk_counts = [], []
        self._stop.clear()
        self._threads = [threading.Thread(target=self._run_samples, daemon=True)]
        if asterisk_counts:
            self._threads.append(threading.Thread(target=self._run_counts, daemon=True))
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)


def asterisk_queue_count(asterisk: AsteriskInstall) -> int | None:
    try:
        out = asterisk.cli(f"queue show {QUEUE}", timeout=10)
    except (AsteriskError, subprocess.TimeoutExpired):  # a slow or busy CLI: this sample is missing
        return None
    m = QUEUE_COUNT.search(out)
    return int(m.group(1)) if m else None


def asterisk_channels(asterisk: AsteriskInstall) -> int | None:
    try:
        m = CHANNEL_COUNT.search(asterisk.cli("core show channels count", timeout=10))
    except (AsteriskError, subprocess.TimeoutExpired):
        return None
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------
# The system under test
# --------------------------------------------------------------------------

def bench_config_dir(workdir: Path, *, every: int | None, redis_port: int) -> Path:
    """A copy of config/ with the benchmark's queue settings, Redis and RTP range."""
    target = workdir / "config"
    shutil.copytree(REPO_ROOT / "config", target)
    programs = yaml.safe_load((target / "programs.yaml").read_text(encoding="utf-8"))
    for queue in programs["queues"]:
        if queue["id"] == QUEUE:
            queue.update(max_callers=10000, max_wait_seconds=7200)
            if every is not None:
                queue["announce_every_seconds"] = every
    (target / "programs.yaml").write_text(yaml.safe_dump(programs, allow_unicode=True, sort_keys=False),
                                          encoding="utf-8")
    service = yaml.safe_load((target / "service.yaml").read_text(encoding="utf-8"))
    s = service["service"]
    s["redis"] = {**s.get("redis", {}), "port": redis_port, "key_prefix": KEY_PREFIX}
    s["rtp_port_start"], s["rtp_port_end"] = BENCH_RTP
    (target / "service.yaml").write_text(yaml.safe_dump(service, allow_unicode=True, sort_keys=False),
                                         encoding="utf-8")
    return target


def clear_asterisk_state(asterisk: AsteriskInstall) -> None:
    """No call left over, no agent in any queue, no journal to replay."""
    if not asterisk.is_running():
        return
    asterisk.cli("channel request hangup all")
    for family in journal_families():
        asterisk.cli(f"database deltree {family}")
    asterisk.cli("database deltree Queue/PersistentMembers")
    # A member line is "PJSIP/agent1001 ..." or, when it was added with a
    # member name, "Omar Farouk (PJSIP/agent1002) ...".
    for iface in sorted(set(MEMBER_INTERFACE.findall(asterisk.cli("queue show")))):
        for q in ALL_QUEUES:
            try:
                asterisk.cli(f"queue remove member {iface} from {q}")
            except AsteriskError:
                continue  # not a member of that queue


def asterisk_pid(asterisk: AsteriskInstall, proc: subprocess.Popen | None) -> int:
    """Asterisk's pid as the host sees it (``chroot`` execs asterisk: same pid)."""
    candidates = []
    if proc is not None:
        candidates.append(proc.pid)
    pidfile = asterisk.root / "var" / "run" / "asterisk" / "asterisk.pid"
    if pidfile.exists():
        try:
            candidates.append(int(pidfile.read_text().strip()))
        except ValueError:
            pass
    # Started by someone else without a pid file: the asterisk process whose root is this one.
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and Path(f"/proc/{entry.name}/comm").read_text().strip() == "asterisk" \
                    and Path(os.readlink(f"/proc/{entry.name}/root")) == asterisk.root.resolve():
                candidates.append(int(entry.name))
        except OSError:
            continue
    for pid in candidates:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "asterisk":
                return pid
        except OSError:
            continue
    raise RuntimeError(f"cannot find Asterisk's pid (tried {candidates})")


class EngineProcess:
    """``ivr serve --config <tmp>`` with its log in a file."""

    def __init__(self, config_dir: Path, log_path: Path, metrics_url: str):
        self.log_path = log_path
        self.metrics_url = metrics_url
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen([str(REPO_ROOT / ".venv" / "bin" / "ivr"), "serve", "--config", str(config_dir)],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=REPO_ROOT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the engine exited ({self.proc.returncode}): {self.tail()}")
            try:
                if sample(read_samples(self.metrics_url, timeout=2), "ivr_ami_connected") == 1 \
                        and "AMI re-sync" in self.log_path.read_text(errors="replace"):
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the engine did not log in to AMI in {timeout:.0f} s: {self.tail()}")

    def tail(self, chars: int = 1500) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: ivr serve stops cleanly
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# --------------------------------------------------------------------------
# One step
# --------------------------------------------------------------------------

@dataclass
class Step:
    n: int
    rate: float
    ok: bool = False
    reasons: list[str] = field(default_factory=list)
    sipp: dict = field(default_factory=dict)
    counters: dict = field(default_factory=dict)
    announcements: dict = field(default_factory=dict)
    waiting_peak_engine: int = 0
    waiting_peak_asterisk: int | None = None
    plateau_s: float = 0.0
    plateau_waiting: float = 0.0
    cpu_ms_per_caller_min: dict = field(default_factory=dict)
    cpu_share: dict = field(default_factory=dict)        # cores used during the plateau
    machine_cores: float = float("nan")                  # every process on the machine, cores
    cpu_pressure: float = float("nan")                   # PSI: share of time a task waited for a CPU
    udp_per_caller_s: float = float("nan")               # datagrams sent per waiting caller per second
    redis_rtt_ms_p95: float = float("nan")               # the sampler's Redis round trips over the plateau
    rss_peak_kib: dict = field(default_factory=dict)
    rss_kib_per_caller: dict = field(default_factory=dict)
    asterisk_log: dict = field(default_factory=dict)
    lag: dict = field(default_factory=dict)              # the engine's event lag over the step (lag_summary)
    duration_s: float = 0.0


def counter_snapshot(metrics_url: str) -> dict[str, float]:
    s = read_samples(metrics_url)
    return {
        "offered": sample(s, "ivr_queue_offered_total", program=QUEUE),
        "offered_inquiry": sample(s, "ivr_queue_offered_total", program=QUEUE, request_type="inquiry"),
        "offered_all": sample(s, "ivr_queue_offered_total"),
        "abandoned": sample(s, "ivr_queue_abandoned_total", program=QUEUE),
        "answered": sample(s, "ivr_queue_answered_total", program=QUEUE),
        "overflows": sample(s, "ivr_queue_overflows_total"),
        "join": sample(s, "ivr_queue_announcements_total", program=QUEUE, kind="join"),
        "periodic": sample(s, "ivr_queue_announcements_total", program=QUEUE, kind="periodic"),
        "menu_choice": sample(s, "ivr_menu_exits_total", hotline=HOTLINE, request_type="inquiry", outcome="choice"),
    }


def lag_buckets(samples: dict) -> dict[str, dict[float, float]]:
    """consumer lane -> {bucket bound: cumulative count} of ivr_ami_event_lag_seconds."""
    out: dict[str, dict[float, float]] = {}
    for (name, labels), value in samples.items():
        if name != LAG_BUCKETS:
            continue
        d = dict(labels)
        out.setdefault(d.get("consumer", ""), {})[float(d["le"])] = value
    return out


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus's histogram_quantile on cumulative buckets (linear inside a
    bucket; in the +Inf bucket, the largest finite bound)."""
    bounds = sorted(buckets)
    total = buckets.get(math.inf, 0.0)
    if total <= 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = bound, count
    return lower


def lag_summary(before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]) -> dict:
    """The event lag over a step, per lane and the worst lane: events handled,
    p99 (interpolated as Prometheus does), and the share older than 1 s (a
    bucket bound: "p99 above 1 s" is exactly "more than 1 % older than 1 s")."""
    lanes = {}
    for lane, buckets in after.items():
        delta = {b: v - before.get(lane, {}).get(b, 0.0) for b, v in buckets.items()}
        events = delta.get(math.inf, 0.0)
        if events <= 0:
            continue
        over = events - delta.get(LAG_LIMIT_S, 0.0)
        lanes[lane] = {"events": events, "p50_s": histogram_quantile(0.5, delta),
                       "p99_s": histogram_quantile(LAG_QUANTILE, delta), "over_limit": over,
                       "over_limit_share": over / events}
    worst = max(lanes, key=lambda k: (lanes[k]["over_limit_share"], lanes[k]["p99_s"]), default=None)
    return {"lanes": lanes, "worst_lane": worst,
            "p99_s": lanes[worst]["p99_s"] if worst else float("nan"),
            "over_limit_share": lanes[worst]["over_limit_share"] if worst else float("nan"),
            "events": sum(v["events"] for v in lanes.values())}


def sipp_stats(path: Path) -> dict:
    """The last line of SIPp's statistics file (-trace_stat), by column."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    head = lines[0].rstrip(";").split(";")
    last = lines[-1].rstrip(";").split(";")
    return dict(zip(head, last))


def hms_ms(value: str) -> float | None:
    """SIPp's ``HH:MM:SS:mmm`` (or ``...:mmm:uuu``) -> seconds."""
    try:
        parts = [int(p) for p in value.split(":")]
    except (ValueError, AttributeError):
        return None
    if len(parts) < 4:
        return None
    return parts[0] * 3600 + parts[1] * 60 + parts[2] + parts[3] / 1000


def parse_engine_log(text: str) -> dict[str, dict]:
    """uid -> {offered, join, periodic: [...], abandoned} (epoch seconds)."""
    calls: dict[str, dict] = {}
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        t = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
        msg = m.group(3)
        if (o := OFFERED.match(msg)) and o.group(2) == QUEUE:
            calls.setdefault(o.group(1), {"periodic": []})["offered"] = t
        elif (a := ANNOUNCED.match(msg)) and a.group(3) == QUEUE:
            call = calls.setdefault(a.group(2), {"periodic": []})
            if a.group(1) == "join":
                call["join"] = t
            else:
                call["periodic"].append(t)
        elif (b := ABANDONED.match(msg)) and b.group(2) == QUEUE:
            calls.setdefault(b.group(1), {"periodic": []})["abandoned"] = t
    return calls


def pctl(values: list[float], p: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    return v[max(0, math.ceil(p * len(v)) - 1)]


def queue_log_entries(text: str) -> dict[str, int]:
    """uid -> when Asterisk queued the caller (queue_log ENTERQUEUE, whole seconds)."""
    out = {}
    for line in text.splitlines():
        f = line.strip().split("|")
        if len(f) > 4 and f[2] == QUEUE and f[4] == "ENTERQUEUE" and f[0].isdigit():
            out[f[1]] = int(f[0])
    return out


def announcement_timing(calls: dict[str, dict], every: int, entered: dict[str, int] | None = None) -> dict:
    """Periodic announcements per caller against their wait, from the engine's log.

    A caller who waited W seconds (offer to abandon, as the engine saw them)
    is due one at every k x ``every`` s of wait; one due less than a tick
    (3 s) + 1 s before the caller left may rightly not have been sent.
    Lateness = how long after k x ``every`` it went out.
    """
    late, missing, join_delay, offer_delay, join_lag = [], 0, [], [], []
    entered = entered or {}
    for uid, c in calls.items():
        offered = c.get("offered")
        if offered is None:
            continue
        try:
            created = float(uid.split(".")[0])  # Uniqueid: <epoch s>.<sequence>
            offer_delay.append(offered - created)
        except ValueError:
            pass
        if uid in entered:
            # Asterisk's queue_log has whole seconds: this is 0-1 s above the real lag.
            join_lag.append(offered - entered[uid])
        if "join" in c:
            join_delay.append(c["join"] - offered)
        if every <= 0:  # announced on joining only
            continue
        for t in c["periodic"]:
            waited = t - offered
            late.append(waited - every * max(1, math.floor(waited / every)))
        if "abandoned" in c:
            waited = c["abandoned"] - offered
            due = max(0, math.floor((waited - ANNOUNCE_TICK - 1.0) / every))
            missing += max(0, due - len(c["periodic"]))
    return {
        "late_p95_s": pctl(late, 0.95), "late_max_s": max(late) if late else float("nan"),
        "missing": missing, "join_delay_p95_s": pctl(join_delay, 0.95),
        "offer_delay_p50_s": pctl(offer_delay, 0.50), "offer_delay_p95_s": pctl(offer_delay, 0.95),
        "join_lag_p50_s": pctl(join_lag, 0.50), "join_lag_p95_s": pctl(join_lag, 0.95),
        "join_lag_max_s": max(join_lag) if join_lag else float("nan"), "joins_in_queue_log": len(join_lag),
        "callers_in_log": sum(1 for c in calls.values() if "offered" in c),
    }


def read_from(path: Path, offset: int) -> tuple[str, int]:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return "", offset
    return data.decode(errors="replace"), offset + len(data)


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def summarize_asterisk_log(text: str) -> dict:
    kinds: dict[str, int] = {}
    first: dict[str, str] = {}
    for line in text.splitlines():
        m = re.search(r"\] (WARNING|ERROR)\[\d+\](?:\[[^\]]*\])? ([\w.]+):", line)
        if not m:
            continue
        key = f"{m.group(1)} {m.group(2)}"
        kinds[key] = kinds.get(key, 0) + 1
        first.setdefault(key, line.strip()[-220:])
    return {"counts": kinds, "first": first}


class Bench:
    def __init__(self, args, *, workdir: Path, asterisk: AsteriskInstall, engine: EngineProcess,
                 sampler: Sampler, sipp: Sipp, carrier: str, idle_rates: dict[str, float],
                 idle_rss: dict[str, int | None]):
        self.args = args
        self.workdir = workdir
        self.asterisk = asterisk
        self.engine = engine
        self.sampler = sampler
        self.sipp = sipp
        self.carrier = carrier
        self.idle_rates = idle_rates
        self.idle_rss = idle_rss
        self.messages_log = asterisk.log_dir / "messages.log"
        self.queue_log = asterisk.log_dir / "queue_log"
        self.dtmf = write_presses(sipp.workdir, "bench-key", "1")
        self.number_base = int(time.time()) % 10_000 * 10_000  # distinct callers in every run and step
        self.current_sipp: SippProcess | None = None

    def caller_ids(self, step_index: int, n: int) -> Path:
        path = self.sipp.workdir / f"callers-{step_index}-{n}.csv"
        base = self.number_base + step_index * 10_000
        path.write_text("SEQUENTIAL\n" + "".join(f"010{(base + i) % 100_000_000:08d};\n" for i in range(n)))
        return path

    def run_step(self, index: int, n: int, baseline: Step | None) -> Step:
        a = self.args
        ramp = min(a.ramp, a.hold / 2)
        rate = max(n / ramp, 0.2)
        step = Step(n=n, rate=rate)
        before = counter_snapshot(self.engine.metrics_url)
        lag_before = lag_buckets(read_samples(self.engine.metrics_url))
        log_offset = file_size(self.engine.log_path)
        ast_offset = file_size(self.messages_log)
        qlog_offset = file_size(self.queue_log)
        script = CallerScript(number=HOTLINE, keys=((KEY_AT_MS, "1"),), hold_ms=int(a.hold * 1000),
                              caller_id="[field0]")
        stat = self.sipp.workdir / f"step-{index}-{n}.stat.csv"
        timeout_s = int(n / rate + a.hold + 60)
        started = time.monotonic()
        self.sampler.start()
        proc = self.sipp.start(f"callers-{n}", caller_scenario(script, self.dtmf), target=self.carrier, calls=n,
                               timeout_s=timeout_s,
                               extra=("-r", f"{rate:.3f}", "-l", str(n), "-inf", str(self.caller_ids(index, n)),
                                      "-trace_stat", "-stf", str(stat), "-fd", "5"))
        self.current_sipp = proc
        self.sampler.pids["sipp"] = proc.proc.pid
        code = proc.wait(timeout=timeout_s + 30)
        self.current_sipp = None
        # Drain: the engine sees every hang-up, Asterisk holds no channel.
        deadline = time.monotonic() + 30 + n / 50
        after = counter_snapshot(self.engine.metrics_url)
        channels = None
        while time.monotonic() < deadline:
            after = counter_snapshot(self.engine.metrics_url)
            channels = asterisk_channels(self.asterisk)
            if after["abandoned"] - before["abandoned"] >= after["offered"] - before["offered"] and channels == 0:
                break
            time.sleep(1.0)
        self.sampler.stop()
        self.sampler.pids["sipp"] = None
        step.lag = lag_summary(lag_before, lag_buckets(read_samples(self.engine.metrics_url)))
        step.duration_s = time.monotonic() - started
        samples = self.sampler.samples

        st = sipp_stats(stat)
        ok_calls = int(st.get("SuccessfulCall(C)") or -1)
        failed_calls = int(st.get("FailedCall(C)") or -1)
        step.sipp = {"exit": code, "successful": ok_calls, "failed": failed_calls,
                     "answer_time_avg_s": hms_ms(st.get("ResponseTime1(C)", "")), "log": str(proc.log)}
        d = {k: after[k] - before[k] for k in after}
        step.counters = d
        # Announcements and timings from the engine's own log.
        text, _ = read_from(self.engine.log_path, log_offset)
        qlog, _ = read_from(self.queue_log, qlog_offset)
        timing = announcement_timing(parse_engine_log(text), a.announce_every, queue_log_entries(qlog))
        step.announcements = {"join": d["join"], "periodic": d["periodic"], **timing}
        ast_text, _ = read_from(self.messages_log, ast_offset)
        step.asterisk_log = summarize_asterisk_log(ast_text)

        # Peak waiting callers: the engine's view and Asterisk's.
        waits = [s.waiting for s in samples if s.waiting is not None]
        step.waiting_peak_engine = max(waits) if waits else 0
        counts = [c for _, c in self.sampler.asterisk_counts]
        step.waiting_peak_asterisk = max(counts) if counts else None
        # The plateau: all N waiting (or, if never, the top 5 % of the peak).
        full = [s for s in samples if s.waiting is not None and s.waiting >= n]
        if len(full) < 2:
            top = 0.95 * step.waiting_peak_engine
            full = [s for s in samples if s.waiting is not None and s.waiting >= top and s.waiting > 0]
        if len(full) >= 2:
            start_t = full[0].t + PLATEAU_SKIP
            first = next((s for s in full if s.t >= start_t), full[0])
            last = full[-1]
            if last.t - first.t < 3.0:
                first = full[0]
            window = [s for s in samples if first.t <= s.t <= last.t]
            span = last.t - first.t
            step.plateau_s = span
            step.plateau_waiting = statistics.mean(s.waiting for s in window if s.waiting is not None)
            step.redis_rtt_ms_p95 = 1000 * pctl([s.redis_rtt for s in window if s.redis_rtt is not None], 0.95)
            for p in PROCESSES:
                c0, c1 = first.cpu.get(p), last.cpu.get(p)
                if c0 is None or c1 is None or span <= 0:
                    continue
                used = c1 - c0
                step.cpu_share[p] = used / span
                net = used - self.idle_rates.get(p, 0.0) * span
                if step.plateau_waiting > 0:
                    step.cpu_ms_per_caller_min[p] = 1000 * net / step.plateau_waiting / (span / 60)
            both = first.all_cpu.keys() & last.all_cpu.keys()
            step.machine_cores = sum(last.all_cpu[k] - first.all_cpu[k] for k in both) / span
            if first.pressure_us is not None and last.pressure_us is not None:
                step.cpu_pressure = (last.pressure_us - first.pressure_us) / 1e6 / span
            if step.plateau_waiting > 0:
                step.udp_per_caller_s = (last.udp_out - first.udp_out) / span / step.plateau_waiting
        for p in ("asterisk", "engine", "redis"):
            values = [s.rss.get(p) for s in samples if s.rss.get(p) is not None]
            if values:
                step.rss_peak_kib[p] = max(values)
                if self.idle_rss.get(p) is not None:
                    step.rss_kib_per_caller[p] = (max(values) - self.idle_rss[p]) / n

        # The verdict.
        r = step.reasons
        if code != 0 or ok_calls != n or failed_calls != 0:
            r.append(f"SIPp: exit {code}, {ok_calls} successful, {failed_calls} failed of {n}")
        if d["offered"] != n:
            r.append(f"engine counted {d['offered']:.0f} offered to {QUEUE}, not {n} "
                     f"({d['offered_all']:.0f} in all queues)")
        if d["offered_inquiry"] != d["offered"] or d["menu_choice"] != n:
            r.append(f"key 1 recognised for {d['menu_choice']:.0f} of {n} callers")
        if d["abandoned"] != n:
            r.append(f"engine counted {d['abandoned']:.0f} abandoned, not {n}")
        if d["answered"] or d["overflows"]:
            r.append(f"unexpected: {d['answered']:.0f} answered, {d['overflows']:.0f} overflows")
        if d["join"] != n:
            r.append(f"{d['join']:.0f} join announcements sent, not {n}")
        if timing["missing"]:
            r.append(f"{timing['missing']} periodic announcement(s) never sent")
        if not math.isnan(timing["late_max_s"]) and timing["late_max_s"] > a.late:
            r.append(f"a periodic announcement went out {timing['late_max_s']:.1f} s after it was due")
        base_lag = baseline.announcements["join_lag_p95_s"] if baseline is not None else float("nan")
        if not math.isnan(base_lag) and timing["join_lag_p95_s"] > base_lag + a.late:
            r.append(f"the engine learnt of joins late: it counted the offer {timing['join_lag_p95_s']:.1f} s after "
                     f"Asterisk queued the caller (p95, queue_log ENTERQUEUE; baseline {base_lag:.1f} s), so "
                     f"announcements started late")
        if baseline is not None and not math.isnan(step.udp_per_caller_s) \
                and step.udp_per_caller_s < a.moh_min * baseline.udp_per_caller_s:
            r.append(f"music on hold falling behind: {step.udp_per_caller_s:.1f} RTP datagrams per waiting caller "
                     f"per second (baseline {baseline.udp_per_caller_s:.1f})")
        if channels not in (0, None):
            r.append(f"{channels} Asterisk channel(s) still up after the drain")
        lag = step.lag
        if not lag.get("events"):
            r.append("the engine reported no event lag (ivr_ami_event_lag_seconds missing from /metrics)")
        elif lag["over_limit_share"] > 1 - LAG_QUANTILE:
            r.append(f"the engine fell behind Asterisk: p99 event lag {lag['p99_s']:.2f} s in its "
                     f"{lag['worst_lane']} lane ({100 * lag['over_limit_share']:.1f} % of its events handled more "
                     f"than {LAG_LIMIT_S:.0f} s after Asterisk sent them)")
        step.ok = not r
        return step


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or math.isnan(value) or math.isnan(base) or base <= 0:
        return "–"
    return f"{value / base:.2f}"


def fnum(value: float | None, fmt: str = "{:.1f}") -> str:
    if value is None or math.isnan(value):
        return "–"
    return fmt.format(value)


def report(steps: list[Step], idle_rates: dict[str, float], idle_rss: dict) -> None:
    if not steps:
        return
    base = steps[0]
    steps = sorted(steps, key=lambda st: st.n)
    say()
    say(f"idle before the first step: CPU asterisk {100 * idle_rates.get('asterisk', 0):.1f} %, "
        f"engine {100 * idle_rates.get('engine', 0):.1f} %, redis {100 * idle_rates.get('redis', 0):.1f} % "
        f"of a core; RSS asterisk {fnum((idle_rss.get('asterisk') or 0) / 1024)} MiB, "
        f"engine {fnum((idle_rss.get('engine') or 0) / 1024)} MiB, redis {fnum((idle_rss.get('redis') or 0) / 1024)} MiB")
    say()
    say("Completion (every call must complete):")
    say(f"  {'N':>5} {'rate/s':>6} {'SIPp ok/fail':>12} {'offered':>7} {'aband.':>6} {'peak waiting':>12} "
        f"{'announcements':>13} {'ann. late s':>11} {'join lag s':>11} {'event lag':>15} {'Redis RTT':>9} "
        f"{'RTP out':>8} {'verdict':>7}")
    say(f"  {'':>5} {'':>6} {'':>12} {'':>7} {'':>6} {'eng / ast':>12} "
        f"{'join / per.':>13} {'p95 / max':>11} {'p50 / p95':>11} {'p99 s (lane)':>15} {'p95 ms':>9} "
        f"{'/caller/s':>9} {'':>6}")
    for s in steps:
        an = s.announcements
        ast = s.waiting_peak_asterisk if s.waiting_peak_asterisk is not None else "–"
        say(f"  {s.n:>5} {s.rate:>6.1f} {s.sipp.get('successful', -1):>6} / {s.sipp.get('failed', -1):<3} "
            f"{s.counters.get('offered', 0):>7.0f} {s.counters.get('abandoned', 0):>6.0f} "
            f"{s.waiting_peak_engine:>5} / {ast:<4} "
            f"{an.get('join', 0):>5.0f} / {an.get('periodic', 0):<5.0f} "
            f"{fnum(an.get('late_p95_s')):>4} / {fnum(an.get('late_max_s')):<4} "
            f"{fnum(an.get('join_lag_p50_s')):>4} / {fnum(an.get('join_lag_p95_s')):<4} "
            f"{fnum(s.lag.get('p99_s'), '{:.2f}'):>5} ({(s.lag.get('worst_lane') or '–')[:8]:<8}) "
            f"{fnum(s.redis_rtt_ms_p95):>9} {fnum(s.udp_per_caller_s):>8} {'ok' if s.ok else 'FAILED':>7}")
    say()
    say(f"Cost per waiting caller over the plateau (all N waiting; idle subtracted); (x) = ratio to N={base.n}:")
    say(f"  {'N':>5} {'plateau':>7} {'Asterisk CPU':>19} {'engine CPU':>19} {'Asterisk RSS':>16} {'engine RSS':>16} "
        f"{'cores used during the plateau':>36} {'CPU':>8}")
    say(f"  {'':>5} {'s':>7} {'ms/caller/min (x)':>19} {'ms/caller/min (x)':>19} {'KiB/caller (x)':>16} "
        f"{'KiB/caller (x)':>16} {'ast / eng / redis / sipp / all':>36} {'pressure':>8}")
    for s in steps:
        c, m = s.cpu_ms_per_caller_min, s.rss_kib_per_caller
        bc, bm = base.cpu_ms_per_caller_min, base.rss_kib_per_caller
        shares = " / ".join(fnum(s.cpu_share.get(p), "{:.2f}") for p in PROCESSES)
        say(f"  {s.n:>5} {s.plateau_s:>7.1f} "
            f"{fnum(c.get('asterisk')):>11} ({ratio(c.get('asterisk'), bc.get('asterisk')):>5}) "
            f"{fnum(c.get('engine')):>11} ({ratio(c.get('engine'), bc.get('engine')):>5}) "
            f"{fnum(m.get('asterisk'), '{:.0f}'):>8} ({ratio(m.get('asterisk'), bm.get('asterisk')):>5}) "
            f"{fnum(m.get('engine'), '{:.0f}'):>8} ({ratio(m.get('engine'), bm.get('engine')):>5}) "
            f"{shares + ' / ' + fnum(s.machine_cores, '{:.2f}'):>36} {fnum(100 * s.cpu_pressure, '{:.0f}'):>6} %")
    say()
    say("Peak RSS (MiB): " + "; ".join(
        f"N={s.n}: asterisk {fnum(s.rss_peak_kib.get('asterisk', 0) / 1024)}, engine "
        f"{fnum(s.rss_peak_kib.get('engine', 0) / 1024)}, redis {fnum(s.rss_peak_kib.get('redis', 0) / 1024)}"
        for s in steps))
    say("Event lag per lane (ivr_ami_event_lag_seconds: Asterisk's Timestamp to handled), p50 / p99 s, events:")
    for s in steps:
        lanes = s.lag.get("lanes", {})
        say(f"  N={s.n}: " + "; ".join(f"{lane} {fnum(v['p50_s'], '{:.3f}')} / {fnum(v['p99_s'], '{:.3f}')} "
                                        f"({v['events']:.0f})" for lane, v in sorted(lanes.items())))
    for s in steps:
        if s.reasons:
            say(f"  N={s.n} failed: " + "; ".join(s.reasons))
        if s.asterisk_log.get("counts"):
            say(f"  N={s.n} Asterisk log: " + ", ".join(f"{k} x{v}" for k, v in s.asterisk_log["counts"].items()))
            for k, line in s.asterisk_log["first"].items():
                say(f"      first {k}: {line}")


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

def prepare(prefix: str, *, every: int) -> tuple[Config, Paths, Path, int, Path, Config] | None:
    """After :func:`preflight`: the shipped configuration, the paths, a work
    folder, a free port for the benchmark's redis-server, and the benchmark's
    configuration (``bench_config_dir``) with its folder; None when it cannot start."""
    shipped = preflight()
    if shipped is None:
        return None
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    redis_port = free_port()
    config_dir = bench_config_dir(workdir, every=every, redis_port=redis_port)
    return shipped, Paths.from_environment(), workdir, redis_port, config_dir, load_config(config_dir)


def preflight() -> Config | None:
    """The shipped configuration, or None (said why) when a benchmark that
    runs its own engine cannot start: SIPp or redis-server missing, or the
    engine's ports taken (``make run``, another engine, the end-to-end session)."""
    missing = [t for t in ("sipp", "redis-server") if shutil.which(t) is None]
    if missing:
        say(f"missing: {', '.join(missing)} (make test installs them)")
        return None
    shipped = load_config(REPO_ROOT / "config")
    s = shipped.service
    busy = [port for port in (s.fastagi.port, s.metrics.port) if not port_is_free(port)]
    if busy:
        say(f"ports {busy} are in use (is `make run`, an engine or the end-to-end session running?); stop it first")
        return None
    return shipped


def stop_all(*, engine: EngineProcess | None, asterisk: AsteriskInstall | None, asterisk_proc, was_running: bool,
             redis_server: RedisServer | None, shipped: Config, paths: Paths, before_setup=lambda: None) -> None:
    """Stop what a benchmark started (the engine, Asterisk unless it was
    running before, redis-server) and give Asterisk the shipped configuration
    back; ``before_setup`` undoes the benchmark's own additions first."""
    if engine is not None:
        engine.stop()
    before_setup()
    if asterisk is not None:
        try:
            clear_asterisk_state(asterisk)
        except (AsteriskError, subprocess.TimeoutExpired) as exc:
            say(f"clearing Asterisk's state failed: {exc}")
        if not was_running:
            asterisk.stop(asterisk_proc)
    if redis_server is not None:
        redis_server.stop()
    if asterisk is not None:
        setup(shipped, REPO_ROOT / "config", paths, say=lambda *_: None)


def plan_steps(args) -> list[int]:
    if args.steps:
        return [int(x) for x in args.steps.split(",")]
    if args.quick:
        return [5, 20]
    # The baseline, then every 100 callers from 200: the target (500)
    # and the old limit (300) are steps of their own.
    steps = [10, 100, *range(200, args.max_callers + 1, 100), args.max_callers]
    return sorted({s for s in steps if s <= args.max_callers})


def step_seconds(args, n: int) -> float:
    ramp = min(args.ramp, args.hold / 2)
    return ramp + args.hold + KEY_AT_MS / 1000 + 15 + n / 50


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--max-callers", type=int, default=600,
                   help="the ceiling: the last step (default 600; steps 10, 100, 200, 300, ... up to it)")
    p.add_argument("--steps", help="explicit comma-separated steps, e.g. 10,300 (the first is the baseline)")
    p.add_argument("--hold", type=float, default=None,
                   help="seconds each caller stays after pressing 1 before hanging up (default: the "
                        f"announcement interval + {HOLD_AFTER_DUE:.0f} s, so that every caller is due one "
                        "periodic announcement: 80 s as shipped)")
    p.add_argument("--ramp", type=float, default=20.0,
                   help="seconds over which a step's callers arrive, at most hold/2 (default 20)")
    p.add_argument("--announce-every", type=int, default=None,
                   help="announce_every_seconds of the benchmark's queue (default: as shipped in "
                        "config/programs.yaml, 60)")
    p.add_argument("--late", type=float, default=5.0,
                   help="a periodic announcement this many seconds late fails the step (default 5)")
    p.add_argument("--moh-min", type=float, default=0.9,
                   help="RTP sent per waiting caller below this share of the baseline's fails the step (default 0.9)")
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement before the steps")
    p.add_argument("--budget", type=float, default=1200.0,
                   help="seconds the whole run may take; a step that would not fit is not started (default 1200)")
    p.add_argument("--require-all", action="store_true",
                   help="exit status 1 when any step failed, not only the baseline (the test of --quick)")
    p.add_argument("--keep-going", action="store_true", help="run the remaining steps after a failed one")
    p.add_argument("--refine", type=int, default=2,
                   help="after a failure, up to this many steps between the largest pass and it (default 2)")
    p.add_argument("--resolution", type=int, default=50,
                   help="refine only while the largest pass and the failure are further apart (default 50)")
    p.add_argument("--quick", action="store_true",
                   help="N = 5 and 20, 25 s hold, announcements every 10 s: about 1.5 minutes")
    p.add_argument("--json", help="also write every step's figures to this file")
    args = p.parse_args()
    if args.quick:
        args.hold, args.ramp, args.announce_every, args.idle = 25.0, 5.0, 10, 5.0
        args.budget = min(args.budget, 240.0)
    shipped = load_config(REPO_ROOT / "config")
    if args.announce_every is None:
        args.announce_every = shipped.queue(QUEUE).announce_every_seconds
    if args.hold is None:
        args.hold = args.announce_every + HOLD_AFTER_DUE if args.announce_every > 0 else 60.0
    steps_planned = plan_steps(args)
    started = time.monotonic()
    # Ctrl-C or SIGTERM: unwind through the finally blocks below.
    signal.signal(signal.SIGTERM, _interrupt)
    prepared = prepare("ivr-queue-bench-", every=args.announce_every)
    if prepared is None:
        return 2
    shipped, paths, workdir, redis_port, config_dir, config = prepared
    s = shipped.service
    metrics_url = f"http://{s.metrics.host}:{s.metrics.port}/metrics"
    carrier = f"{s.carrier_sip.host}:{s.carrier_sip.port}"

    say(f"Queue capacity benchmark: queue {QUEUE} (line {HOTLINE}), steps {steps_planned}, hold {args.hold:.0f} s, "
        f"arrivals over {min(args.ramp, args.hold / 2):.0f} s, announcements every {args.announce_every} s")
    say(f"machine: nproc={os.cpu_count()}, {memory_total_gib():.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; work folder {workdir}")

    asterisk: AsteriskInstall | None = None
    asterisk_proc = None
    was_running = False
    redis_server = None
    engine = None
    bench = None
    sampler = None
    steps: list[Step] = []
    try:
        say("setting up Asterisk with the benchmark's configuration ...")
        asterisk, _ = setup(config, config_dir, paths, say=lambda *_: None)
        redis_server = RedisServer(port=redis_port, data_dir=workdir / "redis", persist=False)
        redis_server.start()
        was_running = asterisk.is_running()
        asterisk_proc = asterisk.start()
        clear_asterisk_state(asterisk)
        members = asterisk.cli(f"queue show {QUEUE}")
        if "PJSIP/" in members:
            raise RuntimeError(f"an agent is still a member of {QUEUE}:\n{members}")
        engine = EngineProcess(config_dir, workdir / "engine.log", metrics_url)
        engine.wait_ready()
        pids = {"asterisk": asterisk_pid(asterisk, asterisk_proc), "engine": engine.pid,
                "redis": redis_server.proc.pid, "sipp": None}
        say(f"running: Asterisk pid {pids['asterisk']}{' (was running already)' if was_running else ''}, "
            f"engine pid {pids['engine']}, redis-server pid {pids['redis']} on port {redis_port}")
        client = redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=2)
        sampler = Sampler(pids, client, asterisk)
        # The idle rates, with the same sampling going on as during a step.
        sampler.start()
        time.sleep(args.idle)
        sampler.stop()
        idle = sampler.samples
        span = idle[-1].t - idle[0].t
        idle_rates = {p: (idle[-1].cpu[p] - idle[0].cpu[p]) / span for p in ("asterisk", "engine", "redis")
                      if idle[0].cpu.get(p) is not None and idle[-1].cpu.get(p) is not None}
        idle_rss = {p: idle[-1].rss.get(p) for p in ("asterisk", "engine", "redis")}
        bench = Bench(args, workdir=workdir, asterisk=asterisk, engine=engine, sampler=sampler,
                      sipp=Sipp(workdir=workdir / "sipp"), carrier=carrier, idle_rates=idle_rates,
                      idle_rss=idle_rss)
        baseline = None
        todo = list(steps_planned)
        index = refined = 0
        while todo:
            n = todo.pop(0)
            left = args.budget - (time.monotonic() - started)
            if step_seconds(args, n) > left:
                say(f"N={n}: not started, it would not fit in what is left of the budget ({left:.0f} s)")
                break
            say(f"N={n}: {n} callers at {max(n / min(args.ramp, args.hold / 2), 0.2):.1f}/s ...")
            step = bench.run_step(index, n, baseline)
            index += 1
            steps.append(step)
            an = step.announcements
            say(f"N={n}: {'ok' if step.ok else 'FAILED'} in {step.duration_s:.0f} s: SIPp {step.sipp['successful']} ok / "
                f"{step.sipp['failed']} failed, offered {step.counters['offered']:.0f}, abandoned "
                f"{step.counters['abandoned']:.0f}, peak waiting {step.waiting_peak_engine} (engine) / "
                f"{step.waiting_peak_asterisk} (Asterisk), announcements {an['join']:.0f} join + "
                f"{an['periodic']:.0f} periodic (late max {fnum(an['late_max_s'])} s), plateau {step.plateau_s:.0f} s, "
                f"CPU cores asterisk {fnum(step.cpu_share.get('asterisk'), '{:.2f}')} engine "
                f"{fnum(step.cpu_share.get('engine'), '{:.2f}')}, all processes {fnum(step.machine_cores, '{:.2f}')}, "
                f"CPU pressure {fnum(100 * step.cpu_pressure, '{:.0f}')} %, RTP {fnum(step.udp_per_caller_s)}/caller/s, "
                f"event lag p99 {fnum(step.lag.get('p99_s'), '{:.2f}')} s ({step.lag.get('worst_lane')})")
            for reason in step.reasons:
                say(f"    {reason}")
            if baseline is None:
                baseline = step
            if not step.ok and not args.keep_going:
                todo = []
            if not todo and not args.keep_going and refined < args.refine:
                # Narrow the limit down between the largest pass and the first failure above it.
                passed = [st.n for st in steps if st.ok]
                above = [st.n for st in steps if not st.ok and passed and st.n > max(passed)]
                if passed and above:
                    lo, hi = max(passed), min(above)
                    mid = lo + max(1, round((hi - lo) / 2 / 25)) * 25
                    if hi - lo > args.resolution and lo < mid < hi:
                        refined += 1
                        todo.append(mid)
                        say(f"refining between N={lo} (ok) and N={hi} (failed): N={mid}")
            time.sleep(3)
        report(steps, idle_rates, idle_rss)
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
    finally:
        if sampler is not None:
            sampler.stop()
        if bench is not None and bench.current_sipp is not None:
            bench.current_sipp.stop()
        stop_all(engine=engine, asterisk=asterisk, asterisk_proc=asterisk_proc, was_running=was_running,
                 redis_server=redis_server, shipped=shipped, paths=paths)
    passed = [st.n for st in steps if st.ok]
    failed = sorted(st.n for st in steps if not st.ok)
    total = time.monotonic() - started
    if steps:
        if not passed:
            say(f"VERDICT: no step completed every call (N={failed[0]} failed); {total:.0f} s")
        else:
            largest = max(passed)
            above = [n for n in failed if n > largest]
            below = [n for n in failed if n < largest]
            text = (f"largest N with every call completing: {largest} (N={above[0]} failed)" if above else
                    f"every call completed up to N={largest} waiting callers, the largest step run "
                    f"(the limit is higher)")
            if below:
                text += f"; but N={', '.join(map(str, below))} failed"
            say(f"VERDICT: {text}; {total:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "steps": [st.__dict__ for st in steps]},
                                              indent=1, default=str))
    # A failing step is the benchmark's finding; a failing baseline means it measured nothing.
    if args.require_all:
        return 0 if steps and len(steps) == len(steps_planned) and all(st.ok for st in steps) else 1
    return 0 if steps and steps[0].ok else 1


if __name__ == "__main__":
    sys.exit(main())
