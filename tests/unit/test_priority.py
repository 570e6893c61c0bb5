"""Priority rules and repeat-caller recognition (in-memory store)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from core.configuration import load_config
from core.configuration.model import Distribution, PriorityRule
from metrics.registry import EngineMetrics
from queues.priority import (
    MemoryRecentCallers,
    caller_priority,
    count_priority,
    hash_caller,
    keep_seconds,
)

DEMO = Path(__file__).resolve().parents[2] / "config"
KEY = b"k" * 32
HOUR = 3600.0
T0 = 1_750_000_000.0


@pytest.fixture(scope="module")
def config():
    # Demo rules: services_card 5 (programme), callback 8, repeat_caller 3 (24 h).
    return load_config(DEMO)


def with_rules(config, *rules):
    return config.model_copy(update={"distribution": Distribution(priorities=rules)})


class NoStore:
    """A recent-callers store that must not be asked."""

    async def seen(self, hotline, caller_hash, now):
        raise AssertionError("the store was read although no rule needs it")

    async def record(self, hotline, caller_hash, now):
        raise AssertionError("caller_priority never records")


async def priority(config, *, program="forsa", caller="01001234567", hotline="1442", store=None,
                   callback=False, now=T0):
    return await caller_priority(config=config, program=program,
                                 caller_hash=hash_caller(caller, KEY) if caller else None,
                                 hotline=hotline, recent_store=store or MemoryRecentCallers(keep_seconds=86400),
                                 callback_pending=callback, now=now)


async def test_no_rule_matches(config):
    assert await priority(config) == (0, None)


async def test_programme_rule(config):
    assert await priority(config, program="services_card") == (5, "services_card")


async def test_callback_rule_wins_over_lower_ones(config):
    assert await priority(config, program="services_card", callback=True) == (8, "callback")


async def test_repeat_caller_within_the_window(config):
    store = MemoryRecentCallers(keep_seconds=keep_seconds(config))
    caller = hash_caller("01001234567", KEY)
    assert await priority(config, store=store) == (0, None)
    await store.record("1442", caller, T0)
    assert await priority(config, store=store, now=T0 + 23 * HOUR) == (3, "repeat_caller")
    # Another line, another caller, or too late: not a repeat.
    assert await priority(config, store=store, hotline="1443", now=T0 + HOUR) == (0, None)
    assert await priority(config, store=store, caller="01001234568", now=T0 + HOUR) == (0, None)
    assert await priority(config, store=store, now=T0 + 25 * HOUR) == (0, None)
    # The higher programme rule still wins for a repeat caller.
    assert await priority(config, store=store, program="services_card", now=T0 + HOUR) == (5, "services_card")


async def test_window_is_checked_even_if_the_store_remembers_longer(config):
    store = MemoryRecentCallers(keep_seconds=7 * 24 * 3600)
    await store.record("1442", hash_caller("01001234567", KEY), T0)
    assert await priority(config, store=store, now=T0 + 30 * HOUR) == (0, None)


async def test_withheld_number_never_reads_the_store(config):
    assert await priority(config, caller=None, store=NoStore()) == (0, None)
    assert await priority(config, caller="anonymous", store=NoStore()) == (0, None)


async def test_store_not_read_without_a_repeat_rule(config):
    cfg = with_rules(config, PriorityRule(name="vip", priority=4, program="forsa"))
    assert await priority(cfg, store=NoStore()) == (4, "vip")


async def test_every_condition_of_a_rule_must_hold(config):
    cfg = with_rules(config, PriorityRule(name="forsa_repeat", priority=6, program="forsa", repeat_within_hours=2))
    store = MemoryRecentCallers(keep_seconds=keep_seconds(cfg))
    await store.record("1442", hash_caller("01001234567", KEY), T0)
    assert await priority(cfg, store=store, now=T0 + HOUR) == (6, "forsa_repeat")
    assert await priority(cfg, store=store, program="nasser_bank", now=T0 + HOUR) == (0, None)
    assert await priority(cfg, store=store, now=T0 + 3 * HOUR) == (0, None)


async def test_tie_goes_to_the_first_rule_listed(config):
    cfg = with_rules(config, PriorityRule(name="first", priority=4, program="forsa"),
                     PriorityRule(name="second", priority=4, callback=True))
    assert await priority(cfg, callback=True) == (4, "first")


def test_keep_seconds_is_the_longest_window(config):
    assert keep_seconds(config) == 24 * 3600
    assert keep_seconds(with_rules(config, PriorityRule(name="aa", priority=1, program="forsa"))) == 0
    assert keep_seconds(with_rules(config, PriorityRule(name="aa", priority=1, repeat_within_hours=2),
                                   PriorityRule(name="bb", priority=2, repeat_within_hours=48))) == 48 * 3600


async def test_memory_store_keeps_nothing_without_a_window():
    store = MemoryRecentCallers(keep_seconds=0)
    await store.record("1442", "abc", T0)
    assert await store.seen("1442", "abc", T0 + 1) is None


def test_hash_caller_normalises_and_hides_the_number():
    plain = hash_caller("01001234567", KEY)
    assert plain == hash_caller("+20 100 123 4567", KEY) == hash_caller("00201001234567", KEY)
    assert plain == hash_caller("201001234567", KEY) == hash_caller("010-0123-4567", KEY)
    assert plain != hash_caller("01001234568", KEY)
    assert plain != hash_caller("01001234567", b"another key")
    assert len(plain) == 32 and int(plain, 16) >= 0
    assert "1001234567" not in plain
    # Foreign numbers are hashed by their digits.
    assert hash_caller("+44 20 7946 0000", KEY) == hash_caller("442079460000", KEY)
    for withheld in (None, "", "anonymous", "<unknown>"):
        assert hash_caller(withheld, KEY) is None
    with pytest.raises(ValueError):
        hash_caller("01001234567", b"")


def test_count_priority(config):
    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry=registry)
    count_priority(metrics, queue="services_card", rule="services_card")
    count_priority(metrics, queue="services_card", rule=None)
    assert registry.get_sample_value("ivr_queue_priority_calls_total",
                                     {"tenant": "mss", "program": "services_card", "rule": "services_card"}) == 1.0


class RedisAway:
    """A recent-callers store whose Redis is stopped."""

    async def seen(self, hotline, caller_hash, now):
        from redis.exceptions import ConnectionError

        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    async def record(self, hotline, caller_hash, now):
        raise AssertionError("caller_priority never records")


async def test_with_redis_away_only_the_repeat_rule_is_skipped(config):
    # The Services Card rule does not need Redis: the caller keeps priority 5.
    assert await priority(config, program="services_card", store=RedisAway()) == (5, "services_card")
    assert await priority(config, program="services_card", callback=True, store=RedisAway()) == (8, "callback")
    # A repeat caller cannot be recognised: normal priority, not an error.
    assert await priority(config, store=RedisAway()) == (0, None)
