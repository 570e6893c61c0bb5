"""The call-record stream on a real redis-server, and `ivr report` / `ivr staffing` reading it."""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis

from app.cli import main
from metrics.call_records import CallRecord, RedisCallRecords
from app.tools import read_call_records as read_records
from metrics.report import RecordsUnavailable, month_period

DEMO = Path(__file__).resolve().parents[2] / "config"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

CAIRO = ZoneInfo("Africa/Cairo")
KEY = "ivr:call_records"


def record(uid, received, *, outcome="answered", queues=("takaful_karama",), gov="minya", hotline="1442"):
    queued = received + 20
    answered = queued + 12 if outcome == "answered" else None
    ended = (answered + 100) if answered else queued + 40
    return CallRecord(uid=uid, hotline=hotline, program=queues[-1], queues=tuple(queues), request_type="inquiry",
                      governorate=gov, received=received, queued=queued, answered=answered, ended=ended,
                      wait_seconds=12.0 if answered else 40.0, talk_seconds=100.0 if answered else None,
                      outcome=outcome)


async def test_append_and_read_a_period(redis_client):
    store = RedisCallRecords(redis_client, prefix="ivr:")
    now = time.time()
    await store.append(record("early", now - 7200))
    await store.append(record("a", now - 100))
    await store.append(record("cb", now - 50, outcome="callback"))
    await store.append(record("b", now - 10, outcome="abandoned", gov="cairo"))
    await store.append(record("cb", now - 50))      # its callback answered: a second record, same uid
    fields = await redis_client.xrange(KEY)
    assert len(fields) == 5 and fields[0][1][b"uid"] == b"early"
    got = await store.read(now - 3600, now + 1)
    assert [(r.uid, r.outcome) for r in got] == [("a", "answered"), ("b", "abandoned"), ("cb", "answered")]
    assert got.malformed == 0 and got[1].governorate == "cairo"


async def test_reads_page_by_page(redis_client):
    store = RedisCallRecords(redis_client, batch=7)
    now = time.time()
    for i in range(50):
        await store.append(record(f"u{i}", now - 1000 + i))
    calls = []
    real = redis_client.xrange

    async def counting(*args, **kwargs):
        calls.append(kwargs.get("count"))
        return await real(*args, **kwargs)

    redis_client.xrange = counting
    got = await store.read(now - 2000, now)
    assert sorted(r.uid for r in got) == sorted(f"u{i}" for i in range(50))
    assert len(calls) == 8 and set(calls) == {7}     # 7 full pages of 7, then one of 1


async def test_malformed_entries_are_skipped_counted_and_logged(redis_client, caplog):
    store = RedisCallRecords(redis_client)
    now = time.time()
    await store.append(record("good", now - 60))
    bad = record("bad", now - 60).to_fields()
    bad["received"] = "yesterday"
    await redis_client.xadd(KEY, bad)
    await redis_client.xadd(KEY, {"uid": "x"})
    with caplog.at_level(logging.WARNING, logger="metrics.call_records"):
        got = await store.read(now - 3600, now + 1)
    assert [r.uid for r in got] == ["good"]
    assert got.malformed == 2 and got.scanned == 3
    assert "'received'" in caplog.text and "missing" in caplog.text


async def test_window_follows_stream_ids(redis_client):
    # A record written a day after its period (an after-hours callback answered
    # after a holiday) is found; one written beyond the late window is not,
    # unless asked to read to the end of the stream.
    store = RedisCallRecords(redis_client, late_seconds=7 * 86400)
    start, end = month_period("2025-03", CAIRO)
    ms = int(start * 1000)
    r1, r2, r3 = (record(u, start + 3600) for u in ("in", "late", "very_late"))
    await redis_client.xadd(KEY, r1.to_fields(), id=f"{ms + 3_700_000}-0")
    await redis_client.xadd(KEY, r2.to_fields(), id=f"{int(end * 1000) + 86_400_000}-0")
    await redis_client.xadd(KEY, r3.to_fields(), id=f"{int(end * 1000) + 30 * 86_400_000}-0")
    assert sorted(r.uid for r in await store.read(start, end)) == ["in", "late"]
    assert sorted(r.uid for r in await store.read(start, end, late_seconds=None)) == ["in", "late", "very_late"]


async def test_stream_is_trimmed_approximately(redis_client):
    store = RedisCallRecords(redis_client, max_length=100)
    now = time.time()
    for i in range(600):
        await store.append(record(f"u{i}", now))
    length = await redis_client.xlen(KEY)
    assert 100 <= length < 600


async def test_unreachable_redis_is_a_clear_error(config):
    port = free_port()
    down = config.model_copy(update={"service": config.service.model_copy(update={
        "redis": config.service.redis.model_copy(update={"port": port})})})
    with pytest.raises(RecordsUnavailable, match=f"127.0.0.1:{port} is not reachable"):
        await read_records(down, 0, 1)


# ------------------------------------------------------------ the commands, end to end

@pytest.fixture
def config_dir(tmp_path, redis_server):
    """The demo configuration pointing at the test's redis-server."""
    target = tmp_path / "config"
    shutil.copytree(DEMO, target)
    service = target / "service.yaml"
    text, n = re.subn(r"port: 6379", f"port: {redis_server.port}", service.read_text())
    assert n == 1
    service.write_text(text)
    return target


@pytest.fixture
def sync_redis(redis_server):
    client = redis.Redis(host=redis_server.host, port=redis_server.port, socket_timeout=5)
    client.flushall()
    yield client
    client.flushall()
    client.close()


def test_report_command_reads_the_month(config_dir, sync_redis, capsys):
    start, end = month_period("2025-03", CAIRO)
    records = [record(f"t{i}", start + 86400 + i * 60) for i in range(9)]
    records += [record("ab", start + 90000, outcome="abandoned", gov="assiut"),
                record("nb", end - 1, queues=("nasser_bank",), hotline="14403", gov="cairo"),
                record("april", end + 10)]
    for r in records:   # stream ids at the call's end, as the engine writes them
        sync_redis.xadd(KEY, r.to_fields(), id=f"{int(r.ended * 1000)}-*")
    assert main(["report", "--tenant", "mss", "--month", "2025-03", "--format", "json", "--config", str(config_dir)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["start"] == datetime(2025, 3, 1, tzinfo=CAIRO).isoformat()
    assert data["total"]["calls"] == 11 and data["total"]["answered"] == 10
    assert data["total"]["answer_rate"] == pytest.approx(10 / 11)
    assert data["most_used_line"] == "1442"

    assert main(["report", "--tenant", "mss", "--month", "2025-03", "--format", "csv", "--config", str(config_dir)]) == 0
    assert capsys.readouterr().out.startswith("\ufeffperiod_start,")

    assert main(["report", "--tenant", "mss", "--month", "2025-03", "--bidi", "visual", "--config", str(config_dir)]) == 0
    assert "11" in capsys.readouterr().out

    assert main(["staffing", "--month", "2025-03", "--format", "json", "--config", str(config_dir)]) == 0
    advice = {a["queue"]: a for a in json.loads(capsys.readouterr().out)}
    assert advice["takaful_karama"]["offered"] == 9     # the busiest hour: 9 calls, one a minute
    assert advice["takaful_karama"]["handle_seconds"] == pytest.approx(105.0)


def test_report_command_empty_month_exits_3(config_dir, sync_redis, capsys):
    assert main(["report", "--tenant", "mss", "--month", "2024-02", "--config", str(config_dir)]) == 3
    captured = capsys.readouterr()
    assert captured.out == "" and "no call records" in captured.err and "لا توجد سجلات" in captured.err


def test_report_command_redis_down_exits_2(config_dir, capsys):
    service = config_dir / "service.yaml"
    port = free_port()
    service.write_text(re.sub(r"redis: \{host: 127.0.0.1, port: \d+", f"redis: {{host: 127.0.0.1, port: {port}",
                              service.read_text()))
    assert main(["report", "--tenant", "mss", "--month", "2025-03", "--config", str(config_dir)]) == 2
    assert f"Redis at 127.0.0.1:{port} is not reachable" in capsys.readouterr().err
