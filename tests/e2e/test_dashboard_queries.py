"""Every query of the Grafana dashboard, evaluated by the real Prometheus that
scraped the engine while real calls went through Asterisk.

No Grafana can be installed here: ``metrics.grafana.panel_queries`` rewrites
each panel's query the way Grafana would (variables, ``$__rate_interval``,
``$__range``) and Prometheus's HTTP API evaluates it. A query that does not
parse, names a metric the engine does not export, or matches no series fails,
and the failure lists every such panel with its query, not only the first.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
import urllib.error
import urllib.parse
import urllib.request

import pytest

from cases import model
from core.paths import REPO_ROOT
from app.simulate.sipp import CallerScript, start_agent, stop_agent
from metrics.grafana import panel_queries

pytestmark = pytest.mark.e2e

DASHBOARD_FILE = REPO_ROOT / "metrics" / "grafana" / "dashboards" / "ivr-hotlines.json"


def evaluate(prometheus_url: str, expr: str) -> tuple[str | None, list]:
    """(problem or None, result) of an instant query through /api/v1/query."""
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:  # 400 bad_data: a parse error, with Prometheus's message
        try:
            body = json.load(error)
        except ValueError:
            return f"HTTP {error.code}", []
    if body.get("status") != "success":
        return f"{body.get('errorType')}: {body.get('error')}", []
    data = body["data"]
    # Stat and bar-gauge panels need an instant vector (a range vector here
    # means a forgotten rate() or increase()).
    if data["resultType"] not in ("vector", "scalar"):
        return f"result type {data['resultType']}", []
    if not data["result"]:
        return "empty result", []
    return None, data["result"]


def scrapes_after(prometheus, since: float, count: int, timeout: float) -> bool:
    """Wait until Prometheus has scraped the engine ``count`` times after ``since``
    (``timestamp(up)`` is the time of the latest scrape)."""
    seen: set[float] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stamp = prometheus.value('max(timestamp(up{job="ivr"}))')
        if stamp is not None and stamp > since:
            seen.add(stamp)
            if len(seen) >= count:
                return True
        time.sleep(0.3)
    return False


@pytest.mark.long
def test_every_dashboard_query_returns_data_after_real_calls(hotline, prometheus):
    dashboard = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))

    def prom_sum(expr: str) -> float:
        return prometheus.value(f"sum({expr})") or 0.0

    answered = hotline.metric("ivr_queue_answered_total", program="nasser_bank")
    abandoned = hotline.metric("ivr_queue_abandoned_total", program="addiction_fund")
    hangups = hotline.metric("ivr_menu_node_exits_total", outcome="hangup")
    received = hotline.metric("ivr_calls_received_total")

    # Three calls at once: each reaches a different place.
    # * Nasser Social Bank's direct line, 1 (inquiry): agent 1002 (primary
    #   for nasser_bank, not in addiction_fund) answers and talks 2 s.
    # * The unified line, 4 (Addiction Fund) then 1: nobody answers that
    #   queue; the caller waits well past short_abandon_seconds and hangs up.
    # * Nasser Social Bank's direct line again, no key: hangs up 2.5 s into
    #   the menu prompt (the IVR drop-off).
    agent = start_agent(hotline.sipp, user="agent1002", password=hotline.password("1002"),
                        target=hotline.agent_port, talk_ms=2000)
    try:
        answered_call = hotline.sipp.call(
            CallerScript(number="14403", keys=((1200, "1"),), hold_ms=60_000, caller_id="0225550111"),
            target=hotline.carrier)
        abandoned_call = hotline.sipp.call(
            CallerScript(number="1442", keys=((1200, "4"), (2000, "1")), hold_ms=16_000, caller_id="0225550112"),
            target=hotline.carrier)
        menu_hangup = hotline.sipp.call(
            CallerScript(number="14403", hold_ms=2_500, caller_id="0225550113"), target=hotline.carrier)
        assert hotline.wait_metric("ivr_queue_answered_total", answered + 1, timeout=90,
                                   program="nasser_bank") == answered + 1
        for call in (answered_call, abandoned_call, menu_hangup):
            assert call.wait(timeout=60) == 0, call.output()[-2000:]
    finally:
        stop_agent(hotline.sipp, agent, password=hotline.password("1002"), target=hotline.agent_port)
    assert hotline.wait_metric("ivr_queue_abandoned_total", abandoned + 1, timeout=20,
                               program="addiction_fund") == abandoned + 1
    assert hotline.wait_metric("ivr_menu_node_exits_total", hangups + 1, timeout=20, outcome="hangup") >= hangups + 1
    assert hotline.wait_metric("ivr_calls_received_total", received + 3, timeout=20) >= received + 3
    # A case registered and resolved (within its deadline) for the case panels;
    # the engine re-reads the figures at once when poked, as after a desktop write.
    resolved = prom_sum('ivr_cases_resolved_total{sector="nasser_bank"}')
    now = datetime.now(timezone.utc)
    case = hotline.cases.register(tenant="mss", sector="nasser_bank", kind="inquiry", severity="normal",
                                  actor="1002", at=now, subject="استفسار عن القرض")
    for step in (model.start, model.resolve):
        hotline.cases.transition("mss", case.reference, lambda c, s=step: s(c, actor="1002", at=now))
    hotline.engine.loop.call_soon_threadsafe(hotline.engine.engine.case_jobs.poke)

    # Prometheus has the new values, then scrapes twice more, so every rate
    # and increase has samples on both sides of the calls.
    assert hotline.wait_until(lambda: prom_sum('ivr_queue_answered_total{program="nasser_bank"}') >= answered + 1
                              and prom_sum('ivr_queue_abandoned_total{program="addiction_fund"}') >= abandoned + 1
                              and prom_sum('ivr_menu_node_exits_total{outcome="hangup"}') >= hangups + 1
                              and prom_sum("ivr_calls_received_total") >= received + 3
                              and prom_sum('ivr_cases_resolved_total{sector="nasser_bank"}') >= resolved + 1,
                              timeout=30), \
        "Prometheus did not scrape the calls' figures"
    assert scrapes_after(prometheus, time.time(), count=2, timeout=30), "Prometheus stopped scraping the engine"

    selections = {
        "All": None,
        "the calls' programmes and lines": {"program": "(nasser_bank|addiction_fund)", "hotline": "(1442|14403)"},
    }
    failures = []
    results = {}
    for name, variables in selections.items():
        for title, expr in panel_queries(dashboard, variables=variables, rate_interval="5m", time_range="1h"):
            problem, result = evaluate(prometheus.url, expr)
            if problem:
                failures.append(f"[{name}] {title}: {problem}\n    {expr}")
            results.setdefault((name, title), []).append(result)
    total = sum(len(r) for r in results.values())
    assert not failures, f"{len(failures)} of {total} panel queries failed:\n" + "\n".join(failures)

    # The figures move the right way for the calls just placed.
    def values(title: str, label: str) -> dict[str, float]:
        (result,) = results[("All", title)]
        return {series["metric"].get(label, ""): float(series["value"][1]) for series in result}

    assert values("نسبة الرد حسب البرنامج", "program")["nasser_bank"] > 0
    assert values("نسبة التخلي حسب البرنامج", "program")["addiction_fund"] > 0
    assert sum(values("الإنهاء داخل القوائم حسب القائمة", "node").values()) >= 1
    assert values("نسبة الحل في الموعد حسب الجهة", "sector")["nasser_bank"] == pytest.approx(1.0)
