"""The state folder's disk full while real callers come in (issue 12, fault 6).

Redis keeps its append-only file in the state folder. Here that folder is a
small tmpfs the test fills: Redis then refuses every write (MISCONF). The
engine must keep serving calls, say loudly that it cannot persist
(ivr_redis_persistence_ok, an error in its log, the IvrRedisCannotPersist
alert), lose nothing already written, and count every call once when the
disk has room again.
"""

from __future__ import annotations

import shutil
import subprocess
import time

from fault_stack import FORSA_INQUIRY, PREFIX, QUEUE, clear_members, report, wait_until


def test_a_full_disk_under_redis_stops_no_call_and_loses_nothing(stack, tmp_path):
    clear_members(stack)
    folder = tmp_path / "state"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], check=True)
    stack.cleanups.append(lambda: subprocess.run(["umount", "-l", str(folder)], check=False))
    # Redis moves onto the small folder with what it holds (its AOF).
    server = stack.redis_server
    server.stop()
    shutil.copytree(server.data_dir, folder / "redis")
    server.data_dir = folder / "redis"
    server.start()
    records_before = stack.redis.xlen(f"{PREFIX}call_records")
    keys_before = stack.redis.dbsize()
    assert records_before > 0, "the earlier tests wrote call records"
    # Fill the disk: Redis's next AOF write fails.
    filler = folder / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    assert shutil.disk_usage(folder).free < 64 * 1024
    since = time.time()
    traffic = stack.callers(calls=20, rate=1, keys=FORSA_INQUIRY, hold_ms=20_000, name="disk-full")
    assert wait_until(lambda: stack.engine.metric("ivr_redis_persistence_ok") == 0, 60)
    full_at = time.monotonic()
    assert traffic.wait(timeout=180) is not None
    entered = {f[2] for f in stack.queue_log() if len(f) > 4 and f[4] == "ENTERQUEUE" and f[0].isdigit()
               and int(f[0]) >= int(since) - 1}
    # Said loudly: in the engine's log (and by the gauge, which the alert reads).
    assert "Redis cannot write to its disk" in stack.engine.log.read_text(errors="replace")
    assert stack.records_since(since) == [], "Redis took writes on a full disk?"
    filler.unlink()
    freed_at = time.monotonic()
    assert wait_until(lambda: stack.engine.metric("ivr_redis_persistence_ok") == 1, 60)
    assert wait_until(lambda: len(stack.records_since(since)) >= 20, 180), len(stack.records_since(since))
    figures = stack.figures("state folder's disk full (Redis's AOF) during 20 calls", placed=20, since=since,
                            traffic=traffic)
    figures.recover_seconds = round(time.monotonic() - freed_at, 1)
    figures.notes = (f"disk full for {freed_at - full_at:.0f} s; queues entered {sorted(entered)}; "
                     f"{records_before} earlier records and {keys_before} keys kept")
    report(figures)
    assert figures.dropped == 0 and figures.reached_queue == 20
    assert entered == {QUEUE}
    assert figures.distinct_calls == 20 and figures.records == 20
    assert set(figures.counted) <= {"abandoned", "short_abandoned"}
    # Nothing written before the disk filled was lost, and it is on disk: a
    # restart of Redis from its AOF gives it all back.
    server.stop()
    server.start()
    assert stack.redis.xlen(f"{PREFIX}call_records") == records_before + 20
    assert stack.redis.dbsize() >= keys_before
