"""Month replay benchmark: a whole month of AMI events through the engine's queue accounting.

    .venv/bin/python bench/month_replay_bench.py [--scale 1.0] [--rounds 3] [--seed 20260301]

Target: the ministry's whole March (164,477 calls, about 794,000 events,
``app.simulate.month``) accounted in under 60 s of wall time on this machine.

What is measured
----------------
* (a) the baseline: producing the stream alone (``generate_month`` iterated,
  nothing done with the events), events/s;
* (b) the same stream parsed event by event (``queues.ami.events.parse_event``,
  as the AMI connection does) and fed through
  ``queues.calls.accounting.QueueAccounting.handle`` with the in-memory call state
  store (``MemoryCallStateStore``) and the engine's metrics
  (``EngineMetrics(config)`` on a fresh registry), as ``ivr serve`` wires
  them but without Redis: the accounting logic and the metrics, not the
  network.

Both are measured in the same run, alternately (a b, b a, a b, ...), and the
report gives medians and the ratio (b)/(a), which is what counts on a noisy
machine; (b) − (a) is the accounting's own share. Each round's process CPU
time is reported beside its wall time: on a machine shared with other jobs
it moves less than wall time. Memory is measured in two
child processes (this file with ``--_memory``), so that neither the timing
rounds nor each other disturb it: one reads the RSS growth (``VmRSS`` before
and after the feed, ``VmHWM``), the other runs the feed under ``tracemalloc``
(peak, and what is still held at the end: the metrics' label sets and the
call state store, which keeps every call's facts, the in-memory stand-in for
Redis' one-day TTL) and, for
comparison, the generator alone.

After each (b) round the accounting's counters are compared with the
month's plan (``month_plan``): offered, answered, abandoned and
short-abandoned per programme must agree to the call, and no event may be
counted ``malformed``, ``unknown_queue`` or ``clock_skew``. A disagreement
is printed and makes the exit status 1.

``make_accounting`` is the one place that builds the accounting: adapt it
when ``QueueAccounting``'s constructor changes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import inspect
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from core.configuration import load_config
from app.simulate.month import generate_month, month_plan
from queues.ami.events import parse_event
from metrics.registry import EngineMetrics
from queues.calls.accounting import QueueAccounting
from queues.calls.store import MemoryCallStateStore

TARGET_SECONDS = 60.0   # a whole month, generator + accounting
BAD_KINDS = ("malformed", "unknown_queue", "clock_skew")


# --------------------------------------------------------------------------
# The accounting under test
# --------------------------------------------------------------------------

class CountingSink:
    """Stands for the call record stream: counts records, keeps none."""

    def __init__(self) -> None:
        self.records = 0

    async def append(self, record) -> None:
        self.records += 1


def make_accounting(config):
    """QueueAccounting as the engine builds it, on in-memory state and a fresh registry."""
    metrics = EngineMetrics(config)
    sink = CountingSink()
    kwargs = {"store": MemoryCallStateStore(), "metrics": metrics}
    if "records" in inspect.signature(QueueAccounting).parameters:
        kwargs["records"] = sink
    return QueueAccounting(**kwargs), metrics, sink


async def feed(accounting, events) -> collections.Counter:
    """Every event parsed as the AMI connection does (``parse_event``) and
    through ``handle``; what it did, counted."""
    outcomes: collections.Counter[str] = collections.Counter()
    for event in events:
        outcomes[await accounting.handle(parse_event(event))] += 1
    return outcomes


class LogCounter(logging.Handler):
    """Counts the accounting's warnings instead of printing 100,000 of them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: collections.Counter[str] = collections.Counter()
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1
        if len(self.first) < 3:
            self.first.append(record.getMessage())


# --------------------------------------------------------------------------
# Rounds
# --------------------------------------------------------------------------

def round_generator(config, args) -> dict:
    started, cpu0 = time.perf_counter(), time.process_time()
    n = 0
    for _ in generate_month(config, seed=args.seed, scale=args.scale):
        n += 1
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    return {"wall": wall, "cpu": cpu, "events": n}


def round_accounting(config, args, plan_by_program) -> dict:
    accounting, metrics, sink = make_accounting(config)
    started, cpu0 = time.perf_counter(), time.process_time()
    outcomes = asyncio.run(feed(accounting, generate_month(config, seed=args.seed, scale=args.scale)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    counted = counted_by_program(metrics)
    mismatches = []
    for program, planned in plan_by_program.items():
        got = counted.get(program, {})
        for field in ("offered", "answered", "abandoned", "short_abandoned"):
            if got.get(field, 0) != getattr(planned, field):
                mismatches.append(f"{program} {field}: counted {got.get(field, 0):.0f}, "
                                  f"generated {getattr(planned, field)}")
    bad = {k: outcomes[k] for k in BAD_KINDS if outcomes[k]}
    return {"wall": wall, "cpu": cpu, "events": sum(outcomes.values()), "outcomes": dict(outcomes),
            "records": sink.records, "mismatches": mismatches, "bad": bad}


def counted_by_program(metrics) -> dict[str, dict[str, float]]:
    """The accounting's queue counters, summed per programme (one pass over the registry)."""
    names = {"ivr_queue_offered_total": "offered", "ivr_queue_answered_total": "answered",
             "ivr_queue_abandoned_total": "abandoned", "ivr_queue_short_abandoned_total": "short_abandoned"}
    out: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
    for metric in metrics.registry.collect():
        for s in metric.samples:
            field = names.get(s.name)
            if field and s.value:
                out[s.labels["program"]][field] += s.value
    return out


# --------------------------------------------------------------------------
# Memory, in a child process
# --------------------------------------------------------------------------

def proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def memory_child(args: argparse.Namespace) -> None:
    config = load_config(REPO_ROOT / "config")

    def events():
        return generate_month(config, seed=args.seed, scale=args.scale)

    result: dict[str, float] = {}
    if args._memory == "rss":
        accounting, _metrics, _sink = make_accounting(config)
        rss0, hwm0 = proc_status_kib("VmRSS"), proc_status_kib("VmHWM")
        asyncio.run(feed(accounting, events()))
        result = {"rss_before_kib": rss0, "rss_after_kib": proc_status_kib("VmRSS"),
                  "hwm_before_kib": hwm0, "hwm_after_kib": proc_status_kib("VmHWM")}
    else:
        tracemalloc.start()
        for _ in events():
            pass
        _, generator_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        accounting, _metrics, _sink = make_accounting(config)
        asyncio.run(feed(accounting, events()))
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result = {"generator_peak": generator_peak, "feed_peak": peak - base, "feed_held": current - base}
    print(json.dumps(result), flush=True)


def measure_memory(args: argparse.Namespace, kind: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--scale", str(args.scale), "--seed", str(args.seed),
           "--_memory", kind]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.memory_timeout, cwd=REPO_ROOT,
                             check=False)
    except subprocess.TimeoutExpired:
        return {"failed": f"timed out after {args.memory_timeout:.0f} s"}
    if out.returncode != 0:
        return {"failed": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="share of the month (default 1.0: all 164,477 calls)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each, alternating (default 3)")
    p.add_argument("--seed", type=int, default=20260301)
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the two memory child runs")
    p.add_argument("--memory-timeout", type=float, default=600.0, help="seconds per memory child (default 600)")
    p.add_argument("--json", help="also write every round's figures to this file")
    p.add_argument("--_memory", choices=("rss", "tracemalloc"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if not 0 < args.scale <= 10:
        p.error(f"--scale must be in (0, 10], got {args.scale}")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    logs = LogCounter()
    logging.getLogger().addHandler(logs)
    logging.getLogger().setLevel(logging.WARNING)
    if args._memory:
        memory_child(args)
        return

    config = load_config(REPO_ROOT / "config")
    plan = month_plan(config, scale=args.scale)
    plan_total = plan.total()
    plan_by_program = {k[0]: c for k, c in plan.by("program").items()}
    print(f"Month replay benchmark: {plan.year}-{plan.month:02d} at scale {args.scale}: "
          f"{plan_total.offered:,} calls, {plan_total.answered:,} answered, seed {args.seed}, "
          f"{args.rounds} round(s) of each")
    print(f"machine: nproc={os.cpu_count()}, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")

    results: dict[str, list[dict]] = {"generator": [], "accounting": []}
    failures = 0
    for i in range(args.rounds):
        order = ("generator", "accounting") if i % 2 == 0 else ("accounting", "generator")
        for name in order:
            r = round_generator(config, args) if name == "generator" else \
                round_accounting(config, args, plan_by_program)
            results[name].append(r)
            line = (f"round {i + 1} {name:<10} {r['wall']:7.2f} s wall {r['cpu']:7.2f} s CPU  "
                    f"{r['events'] / r['wall']:>10,.0f} events/s")
            if name == "accounting":
                line += f"  records {r['records']:,}  outcomes {r['outcomes']}"
                if r["mismatches"] or r["bad"]:
                    failures += 1
                    line += f"\n    DISAGREES with the plan: {r['mismatches'][:6]} {r['bad']}"
            print(line, flush=True)

    gen = statistics.median(r["wall"] for r in results["generator"])
    acc = statistics.median(r["wall"] for r in results["accounting"])
    gen_cpu = statistics.median(r["cpu"] for r in results["generator"])
    acc_cpu = statistics.median(r["cpu"] for r in results["accounting"])
    events = results["generator"][0]["events"]
    month_wall = acc / args.scale
    print()
    print(f"medians over {args.rounds} round(s), {events:,} events, {plan_total.offered:,} calls:")
    print(f"  {'':<34}{'(a) generator':>15}{'(b) gen+acct':>15}{'(b)-(a) acct':>15}{'(b)/(a)':>9}")
    print(f"  {'wall time (s)':<34}{gen:>15.2f}{acc:>15.2f}{acc - gen:>15.2f}{acc / gen:>9.2f}")
    print(f"  {'CPU time (s)':<34}{gen_cpu:>15.2f}{acc_cpu:>15.2f}{acc_cpu - gen_cpu:>15.2f}"
          f"{acc_cpu / gen_cpu:>9.2f}")
    print(f"  {'events/s':<34}{events / gen:>15,.0f}{events / acc:>15,.0f}"
          f"{events / (acc - gen) if acc > gen else float('nan'):>15,.0f}")
    print(f"  {'calls/s':<34}{plan_total.offered / gen:>15,.0f}{plan_total.offered / acc:>15,.0f}")
    print(f"  {'whole month, projected (s)':<34}{gen / args.scale:>15.1f}{month_wall:>15.1f}")
    print(f"  {'whole month, projected CPU (s)':<34}{gen_cpu / args.scale:>15.1f}{acc_cpu / args.scale:>15.1f}")
    verdict = "meets" if month_wall < TARGET_SECONDS else "MISSES"
    print(f"  target: whole month under {TARGET_SECONDS:.0f} s with accounting -> {verdict} "
          f"({'measured' if args.scale == 1.0 else 'projected linearly from scale ' + str(args.scale)})")

    memory: dict[str, dict] = {}
    if args.memory:
        memory["rss"] = measure_memory(args, "rss")
        memory["tracemalloc"] = measure_memory(args, "tracemalloc")
        rss, tm = memory["rss"], memory["tracemalloc"]
        print("  memory (child processes):")
        if "failed" in rss:
            print(f"    RSS run failed: {rss['failed']}")
        else:
            print(f"    RSS growth over the feed (MiB)      {mib(1024 * (rss['rss_after_kib'] - rss['rss_before_kib'])):>8}"
                  f"   (peak VmHWM growth {mib(1024 * (rss['hwm_after_kib'] - rss['hwm_before_kib']))})")
        if "failed" in tm:
            print(f"    tracemalloc run failed: {tm['failed']}")
        else:
            print(f"    tracemalloc peak, feed (MiB)        {mib(tm['feed_peak']):>8}"
                  f"   (generator alone {mib(tm['generator_peak'])})")
            print(f"    held by accounting at the end (MiB) {mib(tm['feed_held']):>8}"
                  f"   ({tm['feed_held'] / plan_total.offered:,.0f} bytes a call: the call state store, "
                  f"and the metrics' label sets)")
    print(f"  accounting rounds disagreeing with the plan: {failures}; "
          f"warnings logged: {logs.counts.get('WARNING', 0)} {logs.first[:2]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "_memory"},
                                               "rounds": results, "memory": memory}, indent=1, default=str))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
