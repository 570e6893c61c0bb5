"""Supervision from real calls: call records in Redis, `ivr report`, the
staffing gauge and the wallboard served by the engine (docs/metrics.md)."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import time
import urllib.request
from datetime import datetime

import pytest

from app.simulate.sipp import CallerScript, start_agent, stop_agent
from app.tools import read_call_records
from metrics.report import report_timezone, run_report_command

pytestmark = pytest.mark.e2e


def _records_since(hotline, since: float):
    engine = hotline.engine.engine
    return hotline.engine.run(engine.records.read(since, time.time() + 60, late_seconds=None))


def test_real_calls_become_call_records_a_report_and_wallboard_figures(hotline, tmp_path):
    since = time.time() - 1
    received = hotline.metric("ivr_calls_received_total", hotline="14403")
    agent = start_agent(hotline.sipp, user="agent1002", password=hotline.password("1002"),
                        target=hotline.agent_port, talk_ms=3000)
    try:
        # Nasser Social Bank's line, 1 (inquiry): answered by agent 1002, who talks 3 s.
        answered_call = hotline.sipp.call(
            CallerScript(number="14403", keys=((1200, "1"),), hold_ms=60_000, caller_id="0225550121"),
            target=hotline.carrier)
        # The unified line, 4 (Addiction Fund) then 1: nobody serves it; gives up after ~12 s in the queue.
        abandoned_call = hotline.sipp.call(
            CallerScript(number="1442", keys=((1200, "4"), (2000, "1")), hold_ms=16_000, caller_id="0225550122"),
            target=hotline.carrier)
        # Nasser's line again, hangs up during the menu.
        menu_call = hotline.sipp.call(CallerScript(number="14403", hold_ms=2_500, caller_id="0225550123"),
                                      target=hotline.carrier)
        for call in (answered_call, abandoned_call, menu_call):
            assert call.wait(timeout=90) == 0, call.output()[-2000:]
    finally:
        stop_agent(hotline.sipp, agent, password=hotline.password("1002"), target=hotline.agent_port)
    assert hotline.wait_metric("ivr_calls_received_total", received + 2, timeout=20, hotline="14403") == received + 2

    # --- call records: one per call, with the facts the IVR gathered --------------
    def ours():
        return [r for r in _records_since(hotline, since) if r.uid]

    assert hotline.wait_until(lambda: len(ours()) >= 3, timeout=30), [r.to_fields() for r in ours()]
    by_outcome = {}
    for r in ours():
        by_outcome.setdefault(r.outcome, []).append(r)
    answered = [r for r in by_outcome.get("answered", []) if r.program == "nasser_bank"]
    assert answered, by_outcome
    a = answered[-1]
    assert a.hotline == "14403" and a.request_type == "inquiry" and a.queues == ("nasser_bank",)
    assert a.received <= a.queued <= a.answered <= a.ended
    assert 2.0 <= a.talk_seconds <= 15.0, a.to_fields()
    assert a.wait_seconds is not None and a.wait_seconds < 20
    abandoned = [r for r in by_outcome.get("abandoned", []) if r.program == "addiction_fund"]
    assert abandoned and abandoned[-1].hotline == "1442" and abandoned[-1].wait_seconds > 5, by_outcome
    assert [r for r in by_outcome.get("ivr_hangup", []) if r.hotline == "14403"], by_outcome
    for r in ours():  # never a caller number in a record
        assert "0225550" not in json.dumps(r.to_fields())

    # --- ivr report over today, from the same Redis -------------------------------
    today = datetime.now(report_timezone(hotline.config)).date().isoformat()
    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(month=None, date_from=today, date_to=today, format="json", bidi="logical",
                              tenant="mss")
    assert run_report_command(args, hotline.config, stdout=out, stderr=err, reader=read_call_records) == 0, err.getvalue()
    report = json.loads(out.getvalue())
    assert report["total"]["calls"] >= 3
    nasser = next(p for p in report["programs"] if p["queue"] == "nasser_bank")
    assert nasser["figures"]["answered"] >= 1
    text = io.StringIO()
    args.format = "text"
    assert run_report_command(args, hotline.config, stdout=text, stderr=err, reader=read_call_records) == 0
    assert "بنك ناصر الاجتماعي" in text.getvalue()
    # A month with no call: a clear message and exit code 3, never a table of 0 %.
    empty = argparse.Namespace(month="2019-02", date_from=None, date_to=None, format="text", bidi="logical",
                               tenant="mss")
    err = io.StringIO()
    assert run_report_command(empty, hotline.config, stdout=io.StringIO(), stderr=err,
                              reader=read_call_records) == 3
    assert "2019" in err.getvalue()

    # --- the wallboard served by the engine ----------------------------------------
    wb = hotline.config.service.wallboard
    url = f"http://{wb.host}:{wb.port}"
    with urllib.request.urlopen(f"{url}/wallboard.json", timeout=10) as resp:
        snap = json.loads(resp.read())
    nasser = next(p for p in snap["programs"] if p["id"] == "nasser_bank")
    assert nasser["answered"] >= 1 and nasser["answer_ratio"] is not None
    assert snap["totals"]["received"] >= 3 and snap["live"] is True
    with urllib.request.urlopen(url + "/", timeout=10) as resp:
        page = resp.read().decode()
    assert 'dir="rtl"' in page
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is missing: run `make test`, which installs it")
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000",
                          "--dump-dom", url + "/"], capture_output=True, text=True, timeout=90).stdout
    assert "بنك ناصر الاجتماعي" in dom, dom[-2000:]
    shot = tmp_path / "wallboard.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000",
                    "--window-size=1280,800", f"--screenshot={shot}", url + "/"], capture_output=True, timeout=90)
    assert shot.exists() and shot.stat().st_size > 10_000
    print(f"wallboard screenshot: {shot}")


def test_the_staffing_gauge_is_exported_from_the_last_hour(hotline):
    # The engine computes it once a minute from the call records.
    assert hotline.wait_until(lambda: hotline.metric("ivr_live_figures_up") == 1, timeout=20)
    assert hotline.wait_until(
        lambda: any(s for s in [hotline.metric("ivr_staffing_agents_needed", program=q.id)
                                for q in hotline.config.queues]), timeout=90), \
        "no programme has a staffing figure although calls were offered in the last hour"
    assert hotline.metric("ivr_staffing_offered_per_hour") > 0
