"""The seed's March, replayed: a whole month of AMI events (app/simulate/month.py)
through the engine's own accounting, then `ivr report` over the call records
it wrote, must give the ministry's published figures within rounding.

The press release (../shared/seeds/000_*.txt): 164,477 calls, 84 % answered;
Takaful & Karama the most used line, over 98,000 calls, 91,000 answered
(93 %), busiest in Minya, Assiut and Beheira, quietest in South Sinai and the
Red Sea; Nasser Social Bank 35,000 calls, over 43 % answered; the Integrated
Services Card 96 % answered, busiest in Cairo and Giza.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import pytest
from prometheus_client import CollectorRegistry

from core.configuration import load_config
from core.paths import REPO_ROOT
from app.simulate.month import generate_month
from metrics.call_records import MemoryCallRecords
from metrics.registry import EngineMetrics, sample_sum
from metrics.report import build_report, month_period, render_json, render_text, report_timezone
from queues.calls.accounting import QueueAccounting
from queues.calls.store import MemoryCallStateStore
from queues.ami.events import parse_event


@pytest.fixture(scope="module")
def replayed():
    config = load_config(REPO_ROOT / "config")
    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry=registry)
    records = MemoryCallRecords()
    accounting = QueueAccounting(store=MemoryCallStateStore(), metrics=metrics, records=records)

    async def run():
        kinds: dict[str, int] = {}
        for event in generate_month(config, year=2026, month=3):
            kind = await accounting.handle(parse_event(event))
            kinds[kind] = kinds.get(kind, 0) + 1
        return kinds

    kinds = asyncio.run(run())
    start, end = month_period("2026-03", report_timezone(config))
    read = asyncio.run(records.read(start, end))
    report = build_report(read, config=config, start=start, end=end)
    return config, registry, kinds, report


def test_every_event_of_the_month_is_accounted(replayed):
    _, _, kinds, _ = replayed
    assert set(kinds) == {"accounted"}, kinds


def test_the_report_gives_the_ministrys_march_figures(replayed):
    _, _, _, report = replayed
    assert report.total.calls == 164_477
    assert round(report.total.answer_rate * 100) == 84
    # The most used line is Takaful & Karama's.
    assert report.most_used_line == "14401"
    assert report.most_used_program == "takaful_karama"
    programs = {p.queue: p for p in report.programs}
    takaful = programs["takaful_karama"].figures
    assert takaful.calls == 98_000 and takaful.answered == 91_000
    assert round(takaful.answer_rate * 100) == 93
    nasser = programs["nasser_bank"].figures
    assert nasser.calls == 35_000
    assert 0.43 < nasser.answer_rate < 0.44  # "over 43 %"
    assert round(programs["services_card"].figures.answer_rate * 100) == 96
    # Governorates as the article describes them.
    assert programs["takaful_karama"].busiest_governorates[:3] == ["minya", "assiut", "beheira"]
    assert set(programs["takaful_karama"].quietest_governorates[:2]) == {"south_sinai", "red_sea"}
    assert programs["services_card"].busiest_governorates[:2] == ["cairo", "giza"]
    assert set(programs["services_card"].quietest_governorates[:2]) == {"new_valley", "matrouh"}


def test_the_live_counters_agree_with_the_records(replayed):
    _, registry, _, report = replayed
    assert sample_sum(registry, "ivr_calls_received_total") == 164_477
    assert sample_sum(registry, "ivr_queue_offered_total") == report.total.calls
    assert sample_sum(registry, "ivr_queue_answered_total") == report.total.answered
    assert sample_sum(registry, "ivr_queue_abandoned_total") == report.total.abandoned
    assert sample_sum(registry, "ivr_queue_short_abandoned_total") == report.total.short_abandoned
    assert sample_sum(registry, "ivr_queue_answered_total", program="takaful_karama") == 91_000
    assert sample_sum(registry, "ivr_queue_answered_within_threshold_total") == report.total.answered_within_threshold
    assert sample_sum(registry, "ivr_calls_ended_total") == 164_477


def test_the_printed_report_is_arabic_and_machine_readable(replayed):
    config, _, _, report = replayed
    text = render_text(report, bidi="logical")
    assert "164,477" in text and "تكافل وكرامة" in text and "84" in text
    data = json.loads(render_json(report))
    assert data["total"]["calls"] == 164_477
    assert datetime.fromisoformat(data["start"]).month == 3


def test_ivr_staffing_on_the_replayed_month_says_what_nasser_social_bank_lacks(capsys):
    from app.cli import main

    assert main(["staffing", "--month", "2026-03", "--replay", "--format", "json"]) == 0
    advice = {a["queue"]: a for a in json.loads(capsys.readouterr().out)}
    nasser = advice["nasser_bank"]
    # Its busiest hour needs more agents than the demo configuration has.
    assert nasser["agents_needed"] > nasser["agents_configured"] >= 1
    assert nasser["shortfall"] == nasser["agents_needed"] - nasser["agents_configured"]
    assert nasser["traffic_erlangs"] > 5
