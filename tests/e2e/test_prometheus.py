"""Debian's real Prometheus scrapes the engine while a real call goes through."""

from __future__ import annotations

import pytest

from ivr.simulate.sipp import CallerScript

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
