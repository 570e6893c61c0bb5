"""The engine says loudly when Redis cannot write to its disk."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from core.configuration import load_config
from metrics.registry import EngineMetrics
from queues.live import PersistenceWatch


@pytest.fixture(scope="module")
def config():
    return load_config(Path(__file__).resolve().parents[2] / "config")


async def test_a_failed_aof_write_sets_the_gauge_to_0_and_logs_once_then_recovery(config, caplog):
    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry=registry)
    infos = iter([{"aof_enabled": 1, "aof_last_write_status": "ok", "rdb_last_bgsave_status": "ok"},
                  {"aof_enabled": 1, "aof_last_write_status": "err", "rdb_last_bgsave_status": "ok"},
                  {"aof_enabled": 1, "aof_last_write_status": "err", "rdb_last_bgsave_status": "ok"},
                  ConnectionError("Redis away"),
                  {"aof_enabled": 1, "aof_last_write_status": "ok", "rdb_last_bgsave_status": "ok"}])

    async def info():
        item = next(infos)
        if isinstance(item, Exception):
            raise item
        return item

    watch = PersistenceWatch(info=info, metrics=metrics)
    gauge = lambda: registry.get_sample_value("ivr_redis_persistence_ok")  # noqa: E731
    assert gauge() == 1
    with caplog.at_level(logging.ERROR, logger="queues.live"):
        assert await watch.check() is True and gauge() == 1
        assert await watch.check() is False and gauge() == 0
        assert await watch.check() is False and gauge() == 0
        assert await watch.check() is None and gauge() == 0     # unreachable: left as it was
        assert await watch.check() is True and gauge() == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2, errors                              # once when it fails, once when it recovers
    assert "cannot write to its disk" in errors[0] and "again" in errors[1]


def test_a_failed_snapshot_counts_too_and_an_aof_that_is_off_does_not():
    assert PersistenceWatch.healthy({"aof_enabled": 0, "aof_last_write_status": "err"}) is True
    assert PersistenceWatch.healthy({"rdb_last_bgsave_status": "err"}) is False
    assert PersistenceWatch.healthy({}) is True
