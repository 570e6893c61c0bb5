"""Fault fixtures: the real stack with the engine as its own process.

``make test-faults`` (and CI, after ``make test`` and ``make test-long``)
runs these. Unlike tests/e2e, the engine runs as ``ivr serve`` in a process
of its own, so a test can ``kill -9`` it, stop it (SIGSTOP), and start it
again, as an operator's supervisor would. Redis keeps an append-only file,
so stopping it loses nothing it acknowledged. SIPp callers arrive at a
steady rate. Each fault test reports calls placed, calls that reached a
queue, calls dropped, facts counted against calls placed, callbacks lost
and the time to recover, as a JSON line in ``$IVR_FAULT_REPORT`` (default:
the session's temporary folder), printed at the end; docs/reliability.md
gives the figures of one run and the command.
"""

from __future__ import annotations

import shutil

import pytest

from app.cli import setup
from app.redis_server import RedisServer, port_is_free
from app.simulate.relay import ThreadedRelay
from app.simulate.sipp import Sipp
from core.configuration import load_config
from core.paths import REPO_ROOT, Paths
from queues.calls.journal import journal_families

from fault_stack import REQUIRED_TOOLS, EngineProcess, Stack, engine_config_dir, free_port


def pytest_collection_modifyitems(items):
    for item in items:
        if "/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"fault tests need {', '.join(missing)}: run `make test-faults`, which installs them")
    config = load_config(REPO_ROOT / "config")
    s = config.service
    busy = [p for p in (s.fastagi.port, s.metrics.port, s.wallboard.port, s.desktop.port) if not port_is_free(p)]
    if busy:
        pytest.fail(f"ports {busy} are in use (is `make run` running?); stop it before the fault tests")
    paths = Paths.from_environment()
    asterisk, _ = setup(config, REPO_ROOT / "config", paths, say=lambda *_: None)
    work = tmp_path_factory.mktemp("faults")
    redis_server = RedisServer(port=free_port(), data_dir=work / "redis", persist=True)
    redis_server.start()
    was_running = asterisk.is_running()
    proc = asterisk.start()
    asterisk.cli("channel request hangup all")
    for family in journal_families():
        asterisk.cli(f"database deltree {family}")
    relay = ThreadedRelay(s.ami.port)
    config_dir = engine_config_dir(work, redis_server.port, relay.port)
    engine = EngineProcess(config_dir, work / "engine.log", f"http://{s.metrics.host}:{s.metrics.port}/metrics")
    engine.start()
    st = Stack(config=load_config(config_dir), config_dir=config_dir, asterisk=asterisk, redis_server=redis_server,
               engine=engine, sipp=Sipp(workdir=work / "sipp"), workdir=work, relay=relay, asterisk_proc=proc)
    try:
        yield st
    finally:
        engine.stop()
        relay.close()
        for cleanup in reversed(st.cleanups):
            cleanup()
        st.hang_up_all()
        for family in journal_families():
            if asterisk.is_running():
                asterisk.cli(f"database deltree {family}")
        if not was_running:
            asterisk.stop(st.asterisk_proc)
        redis_server.stop()
