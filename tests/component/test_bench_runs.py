"""The benchmark keeps running as the engine changes (a small run, real sockets)."""

from __future__ import annotations

import subprocess
import sys

from core.paths import REPO_ROOT


def test_the_fastagi_benchmark_completes_every_session():
    # A warm-up and two rounds, as the full run has: ours keeps its callers
    # from one round to the next, so a session that reused a caller number
    # would turn into a repeat caller and fail the command sequence (it did).
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "fastagi_bench.py"), "--sessions", "30", "--rounds", "2",
         "--per-slot", "1", "--budget", "60", "--floor"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "rounds with errors or missing sessions: 0" in result.stdout
    assert 'EXEC "MSet" "IVR_QUEUE=nasser_bank,' in result.stdout   # the engine's route, in one command
    assert "server CPU per session (ms)" in result.stdout.split("the floor")[1]   # the floor measured too


def test_the_month_replay_benchmark_runs_and_agrees_with_its_plan():
    # A hundredth of March: the benchmark's own check (counters equal the
    # month's plan) must pass, and it must print its ratio and memory.
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "month_replay_bench.py"), "--scale", "0.01", "--rounds", "1"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "(b)/(a)" in result.stdout and "MiB" in result.stdout, result.stdout[-3000:]


def test_the_case_store_benchmark_meets_its_targets_on_both_backends():
    # 30,000 cases on SQLite and on a real PostgreSQL: the same targets as the
    # million-case run (p99 lookups under 5 ms, a work-queue page under 50 ms,
    # registrations fast enough, the figures under 5 s), so a store change that
    # breaks them fails here too. 600 lookups each, so that a p99 is not one
    # outlier. (About 35 s of make test; 100,000 cases took 80 s.)
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "case_store_bench.py"), "--cases", "30000", "--lookups",
         "600", "--creates", "150", "--rounds", "2"], capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    for backend in ("sqlite", "postgresql"):
        for line in ("case by reference", "citizen's open cases", "sector work queue", "registrations:",
                     "case figures"):
            assert f"[{backend}] {line}" in result.stdout, line
    assert "vs baseline" in result.stdout
    assert "targets missed: none" in result.stdout, result.stdout[-3000:]
