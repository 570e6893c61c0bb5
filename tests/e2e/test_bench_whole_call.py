"""The whole-call benchmark (bench/whole_call_bench.py, issue 13 item 1)
keeps running: its --quick mode places real SIPp calls on all four paths
(native dialplan, FastAGI, classic AGI, a minimal pyst2 script) through the
real Asterisk and fails as the benchmark would: a call that does not
complete (SIPp, queue_log ENTERQUEUE, the engine's counters). Its targets
(issue 13) are reported, met or not: the benchmark fails on them only with
``--require-targets`` (not met today: docs/benchmarks.md).

It starts its own Asterisk configuration, redis-server and ``ivr serve``,
so it cannot share the end-to-end session: it runs before any test that
starts it (the long tests' files sort after this one) and fails clearly
when the engine's ports are taken. About three minutes: ``make test-long``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.paths import REPO_ROOT

pytestmark = pytest.mark.long


def test_the_whole_call_benchmark_completes_every_call_and_reports_its_targets():
    result = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "whole_call_bench.py"), "--quick"],
                            capture_output=True, text=True, timeout=600)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-2000:]
    for path in ("native", "fastagi", "classic", "pyst2"):
        assert f"round 1 {path}: ok" in out, path
    assert "FastAGI in all / native" in out and "classic / minimal pyst2" in out
    assert "VERDICT: every call completed; targets" in out
