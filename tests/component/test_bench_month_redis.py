"""The month replay through a real redis-server keeps running as the engine
changes (a small scale of ``bench/month_replay_bench.py --redis``).

It fails when the benchmark would: an error, a counter or a call record
disagreeing with the month's plan, redis-server not started or not stopped.
Its speed is checked only as a ratio to the in-memory accounting of the
same run (CPU time of this process, which a loaded machine moves less than
wall time), with a generous bound: never as a raw time.
"""

from __future__ import annotations

import re
import subprocess
import sys

from core.paths import REPO_ROOT

# The Redis path costs about 1.5x the in-memory one in this process's CPU
# (docs/benchmarks.md); 4x would mean a round trip per event came back.
MAX_CPU_RATIO = 4.0


def test_the_month_replay_through_redis_agrees_with_its_plan():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "month_replay_bench.py"), "--scale", "0.01", "--rounds", "1",
         # A long TTL: on a loaded machine a stall of the replay longer than the
         # bench's default (10 s) would expire a call's facts under it.
         "--redis", "--no-memory", "--budget", "120", "--ttl", "600", "--require-targets"],
        capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-2000:]
    assert "accounting rounds disagreeing with the plan: 0" in out, out[-3000:]
    assert "round 1 redis" in out and "DISAGREES" not in out, out[-3000:]
    # Every call's record went to the stream, as many as the plan's calls.
    calls = int(re.search(r"at scale 0\.01: ([\d,]+) calls", out).group(1).replace(",", ""))
    redis_line = next(line for line in out.splitlines() if line.startswith("round 1 redis"))
    assert f"records {calls:,}" in redis_line, redis_line
    assert "targets through Redis" in out and "met" in out.split("targets through Redis")[1].splitlines()[0], out
    cpu = re.search(r"CPU time, this process \(s\)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", out)
    assert cpu, out[-3000:]
    assert float(cpu.group(3)) < MAX_CPU_RATIO, cpu.group(0)
