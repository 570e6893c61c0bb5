"""Debian's real Prometheus scrapes the engine while a real call goes through."""

from __future__ import annotations

import json
import urllib.request

import pytest

from app.simulate.sipp import CallerScript

pytestmark = pytest.mark.e2e


def test_prometheus_sees_a_call_offered_and_abandoned(hotline, prometheus):
    offered = hotline.metric("ivr_queue_offered_total", program="addiction_fund")
    abandoned = hotline.metric("ivr_queue_abandoned_total", program="addiction_fund")
    # Every known programme is exported from the first scrape, at zero if need be.
    programs = {r["metric"]["program"] for r in prometheus.query("ivr_queue_offered_total")}
    assert programs == {q.id for q in hotline.config.queues}
    caller = hotline.sipp.call(CallerScript(number="1442", keys=((1200, "4"), (2000, "1")), hold_ms=14_000),
                               target=hotline.carrier)
    assert caller.wait(timeout=60) == 0, caller.output()[-2000:]
    expr = 'sum(ivr_queue_{}_total{{program="addiction_fund"}})'
    assert hotline.wait_until(lambda: prometheus.value(expr.format("offered")) == offered + 1, timeout=20)
    assert hotline.wait_until(lambda: prometheus.value(expr.format("abandoned")) == abandoned + 1, timeout=20)
    # No series carries a caller number: every label value is a known, bounded one.
    for series in prometheus.query('{__name__=~"ivr_.*"}'):
        for label, value in series["metric"].items():
            assert "0225550100" not in value, (label, value)
    # The shipped recording rules run on the real scrape: the abandonment
    # rate of the programme and of the line the call came in on.
    ratio = 'program:ivr_queue_abandoned_per_offered:ratio_rate5m{program="addiction_fund"}'
    assert hotline.wait_until(lambda: (prometheus.value(ratio) or 0) > 0, timeout=30), ratio
    line = 'hotline:ivr_queue_offered_excluding_short_abandoned:rate5m{hotline="1442"}'
    assert hotline.wait_until(lambda: (prometheus.value(line) or 0) > 0, timeout=30), line


def test_the_shipped_rules_load_and_evaluate_without_error(hotline, prometheus):
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=5) as response:
        groups = json.load(response)["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    alerts = {r["name"] for r in rules if r["type"] == "alerting"}
    assert {"IvrAnswerRateBelowTarget", "IvrServiceLevelBelowTarget", "IvrNoAgentLoggedIn", "IvrScrapeDown",
            "IvrLiveFiguresStale"} <= alerts
    assert hotline.wait_until(lambda: all(r.get("lastEvaluation", "").startswith("2") for r in _rules(prometheus)),
                              timeout=90), "some rules were never evaluated"
    broken = [(r["name"], r.get("lastError")) for r in _rules(prometheus) if r.get("health") != "ok"]
    assert not broken, broken
    # The engine is up and its live figures are fresh: those alerts are quiet.
    firing = {r["name"] for r in _rules(prometheus) if r["type"] == "alerting" and r.get("state") == "firing"}
    assert not firing & {"IvrScrapeDown", "IvrLiveFiguresStale"}, firing


def _rules(prometheus) -> list[dict]:
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=5) as response:
        return [rule for group in json.load(response)["data"]["groups"] for rule in group["rules"]]
