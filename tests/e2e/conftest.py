"""End-to-end fixtures: the real Asterisk, a private Redis, the engine, SIPp.

The session builds (once, cached) or reuses the Asterisk root, writes the
generated configuration, starts Asterisk and a redis-server on a free port,
and runs the engine in a background thread, exactly as `ivr serve` does.
Tests place SIPp calls and poll the engine's /metrics with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo
from pathlib import Path
from collections.abc import Callable

import pytest

from dialplans.asterisk import AsteriskInstall
from dialplans.generate import render_queues
from app.cli import engine_with_secrets, new_engine_loop, setup
from cases.database import make_engine, migrate
from cases.store import CaseStore
from core.configuration import load_config
from app.engine import Engine
from core.paths import REPO_ROOT, Paths
from app.redis_server import RedisServer, port_is_free
from core.secrets import SecretStore
from app.simulate.metrics_reader import read_samples, sample
from app.simulate.relay import TcpRelay
from app.simulate.sipp import Sipp, start_agent, stop_agent
from ivr.prompts import PromptLibrary
from queues.agents import AgentState
from queues.calls.journal import journal_families

REQUIRED_TOOLS = ("sipp", "redis-server", "espeak-ng", "sox")


# Tests that start their own Asterisk, Redis and engine (a benchmark's short
# run) and need the engine's ports: they run before any test starts the
# session's `hotline`, which holds those ports until the session ends.
OWN_STACK_MODULES = ("test_bench_whole_call.py", "test_queue_capacity_bench.py")


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
    own = [i for i in items if "/e2e/" in str(i.fspath) and i.fspath.basename in OWN_STACK_MODULES]
    if own:
        rest = [i for i in items if i not in own]
        first_e2e = next((n for n, i in enumerate(rest) if "/e2e/" in str(i.fspath)), len(rest))
        items[:] = rest[:first_e2e] + own + rest[first_e2e:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def e2e_config(config):
    """The shipped configuration with shorter timings where a test would
    otherwise wait for minutes (a queue's 10-minute max wait, say).

    * forsa: a caller overflows after 25 s; an agent's phone rings 6 s.
    * abnaa_misr: wait estimates start from a 12 s handle time; no wrap-up;
      announcements every 15 s.
    * callbacks: two calls to the citizen, 5 s apart, each ringing 8 s; the
      per-number daily limit out of the way (the closed-hours test calls from
      one fixed number on each run, and the test Redis keeps the day's count).
    """
    changes = {
        "forsa": {"max_wait_seconds": 25, "ring_timeout_seconds": 6, "retry_seconds": 1},
        "abnaa_misr": {"default_handle_seconds": 12, "wrapup_seconds": 0, "announce_every_seconds": 15},
    }
    queues = tuple(q.model_copy(update=changes.get(q.id, {})) for q in config.queues)
    d = config.distribution
    callbacks = d.callbacks.model_copy(update={"attempts": 2, "retry_after_seconds": 5, "ring_seconds": 8,
                                               "max_per_number_per_day": 100})
    return config.model_copy(update={"queues": queues,
                                     "distribution": d.model_copy(update={"callbacks": callbacks})})


def _clear_members(asterisk: AsteriskInstall) -> None:
    if asterisk.is_running():
        # A member line reads "Amina Hassan (PJSIP/agent1001) (ringinuse ...": the
        # member name comes first, the interface in the first parentheses.
        queue = None
        for line in asterisk.cli("queue show").splitlines():
            header = re.match(r"^(\w+) has \d+ calls", line)
            if header:
                queue = header.group(1)
                continue
            member = re.search(r"\((PJSIP/[^\s)]+)\)", line)
            if member and queue:
                asterisk.cli(f"queue remove member {member.group(1)} from {queue}")
        left = [line for line in asterisk.cli("queue show").splitlines() if "(PJSIP/" in line]
        if left:
            raise RuntimeError(f"queue members left after clearing: {left}")
        asterisk.cli("database deltree Queue/PersistentMembers")


def _clear_journal(asterisk: AsteriskInstall) -> None:
    if asterisk.is_running():
        for family in journal_families():
            asterisk.cli(f"database deltree {family}")


class EngineThread:
    """The engine on its own event loop in a thread, so tests can block on SIPp.

    ``make_engine`` builds it; ``restart`` stops it and builds a new one, as
    restarting ``ivr serve`` does (nothing survives in the process: only
    Redis and Asterisk keep what they hold)."""

    def __init__(self, make_engine: Callable[[], Engine], *, loop: asyncio.AbstractEventLoop,
                 thread: threading.Thread):
        self.make_engine = make_engine
        self.engine = make_engine()
        self.loop = loop
        self.thread = thread

    def start(self) -> None:
        self.run(self.engine.start())
        deadline = time.monotonic() + 20
        while not self.engine.ami.logged_in.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not self.engine.ami.logged_in.is_set():
            raise RuntimeError("the engine could not log in to AMI")

    def restart(self, while_down: Callable[[], None] = lambda: None) -> Engine:
        """Stop the engine, run ``while_down``, start a new engine; return it."""
        self.run(self.engine.stop())
        while_down()
        self.engine = self.make_engine()
        self.start()
        return self.engine

    def run(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, *after) -> None:
        try:
            self.run(self.engine.stop())
        finally:
            for coro in after:
                self.run(coro)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class SwitchableClock:
    """The engine's clock in the tests: it starts inside opening hours (a
    Sunday morning in Cairo) so that tests pass at any hour, and runs from
    there, as time does (a callback retry is due seconds later); a test may
    move it (``clock.now = ...``)."""

    OPEN = datetime(2026, 11, 22, 10, 0, tzinfo=ZoneInfo("Africa/Cairo"))  # Sunday 10:00

    def __init__(self):
        self.now = self.OPEN

    @property
    def now(self) -> datetime:
        return self._base + timedelta(seconds=time.monotonic() - self._set_at)

    @now.setter
    def now(self, value: datetime) -> None:
        self._base, self._set_at = value, time.monotonic()

    def __call__(self) -> datetime:
        return self.now


class Hotline:
    """What a test needs: config, credentials, SIPp, and /metrics polling."""

    def __init__(self, config, secrets: SecretStore, sipp: Sipp, engine: EngineThread, asterisk: AsteriskInstall,
                 ami_proxy: TcpRelay):
        self.ami_proxy = ami_proxy
        self.config = config
        self.secrets = secrets
        self.sipp = sipp
        self.engine = engine
        self.asterisk = asterisk
        s = config.service
        self.carrier = f"{s.carrier_sip.host}:{s.carrier_sip.port}"
        self.agent_port = f"{s.agent_sip.host}:{s.agent_sip.port}"
        self.metrics_url = f"http://{s.metrics.host}:{s.metrics.port}/metrics"

    def metric(self, name: str, **labels: str) -> float:
        return sample(read_samples(self.metrics_url), name, **labels)

    def wait_metric(self, name: str, target: float, timeout: float = 60.0, **labels: str) -> float:
        deadline = time.monotonic() + timeout
        value = self.metric(name, **labels)
        while value < target and time.monotonic() < deadline:
            time.sleep(0.25)
            value = self.metric(name, **labels)
        return value

    def wait_until(self, predicate, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.2)
        return predicate()

    def password(self, agent_id: str) -> str:
        return self.secrets.agent_password(f"agent{agent_id}")

    def hang_up(self, caller_id: str) -> int:
        """Hang up, in Asterisk, every channel of the caller ``caller_id``: a
        SIPp caller that is only stopped sends no BYE and would stay queued
        (a later test's agent would answer it)."""
        names = []
        for line in self.asterisk.cli("core show channels concise").splitlines():
            fields = line.split("!")
            if len(fields) > 7 and fields[7] == caller_id:
                names.append(fields[0])
        for name in names:
            self.asterisk.cli(f"channel request hangup {name}")
        return len(names)

    @contextlib.contextmanager
    def queue_limit(self, queue_id: str, max_callers: int):
        """For the duration of a test, Asterisk's queue ``queue_id`` takes at
        most ``max_callers`` callers (queues.conf ``maxlen``, reloaded). A
        limit for the whole session would send other tests' callers to the
        overflow."""
        queues = tuple(q.model_copy(update={"max_callers": max_callers}) if q.id == queue_id else q
                       for q in self.config.queues)
        path = self.asterisk.etc / "queues.conf"
        shipped = path.read_text()
        path.write_text(render_queues(self.config.model_copy(update={"queues": queues})))
        try:
            self.asterisk.cli(f"queue reload parameters {queue_id}")
            yield
        finally:
            path.write_text(shipped)
            self.asterisk.cli(f"queue reload parameters {queue_id}")


@pytest.fixture(scope="session")
def hotline(tmp_path_factory):
    if os.environ.get("IVR_SKIP_E2E"):
        pytest.skip("IVR_SKIP_E2E is set")
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"end-to-end tests need {', '.join(missing)}: run `make test`, which installs them")
    base = e2e_config(load_config(REPO_ROOT / "config"))
    s = base.service
    busy = [p for p in (s.fastagi.port, s.metrics.port, s.wallboard.port, s.desktop.port) if not port_is_free(p)]
    if busy:
        pytest.fail(f"ports {busy} are in use (is `make run` running?); stop it before the end-to-end tests")
    paths = Paths.from_environment()
    # Asterisk gets the configuration as shipped, with the few test timings above.
    asterisk, secrets = setup(base, REPO_ROOT / "config", paths, say=lambda *_: None)
    redis_port = _free_port()
    redis = RedisServer(port=redis_port, data_dir=tmp_path_factory.mktemp("redis"), persist=False)
    redis.start()
    was_running = asterisk.is_running()
    proc = asterisk.start()
    # Leftovers from an earlier interrupted run would keep agents "in use".
    asterisk.cli("channel request hangup all")
    _clear_journal(asterisk)
    # Agents logged in by an earlier run (members persist in AstDB) are
    # forgotten: each test logs in whom it needs.
    _clear_members(asterisk)
    # The engine gets a private Redis on a free port (tests never touch a real
    # deployment's state) and reaches AMI through a relay the tests can cut.
    proxy = TcpRelay(s.ami.port)
    loop = new_engine_loop()   # uvloop, as ivr serve runs
    thread = threading.Thread(target=loop.run_forever, daemon=True, name="engine")
    thread.start()
    proxy_port = asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(10)
    config = base.model_copy(update={"service": s.model_copy(update={
        "redis": s.redis.model_copy(update={"port": redis_port, "key_prefix": "ivr-e2e:"}),
        "ami": s.ami.model_copy(update={"port": proxy_port}),
    })})
    clock = SwitchableClock()
    # IVR_AMI_RECORD=<folder>: every AMI event and reply, one file per test
    # (queues/ami/recording.py), to refresh the sessions in tests/data/ami.
    recorder = None
    if os.environ.get("IVR_AMI_RECORD"):
        from queues.ami.recording import SessionRecorder, pytest_test_name

        recorder = SessionRecorder(Path(os.environ["IVR_AMI_RECORD"]), name_of=pytest_test_name)
    # The cases of the session: a SQLite file of its own, migrated as `ivr setup` does.
    case_store = CaseStore(engine=make_engine(f"sqlite:///{tmp_path_factory.mktemp('cases')}/cases.sqlite3"),
                           config=config.cases)
    migrate(case_store.engine)
    prompt_seconds = PromptLibrary(sounds_dir=asterisk.sounds, cache_dir=paths.prompt_cache, overrides_dir=None,
                                   language=config.service.language).durations()
    # Built as `ivr serve` builds it from the secrets (app.cli.engine_with_secrets).
    engine = EngineThread(lambda: engine_with_secrets(config, paths, secrets, prompt_seconds=prompt_seconds,
                                                      case_store=case_store, clock=clock, ami_recorder=recorder),
                          loop=loop, thread=thread)
    try:
        engine.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    # Every agent logged in, as at the start of a shift (tests that need
    # another state set it and put it back).
    for agent in config.agents:
        engine.run(engine.engine.agent_desk.login(agent.id, source="cli"))
    sipp = Sipp(workdir=tmp_path_factory.mktemp("sipp"))
    try:
        hotline = Hotline(config, secrets, sipp, engine, asterisk, proxy)
        hotline.clock = clock
        hotline.cases = case_store
        yield hotline
    finally:
        engine.stop(proxy.close())
        # No test call may outlive the session, and their journal must not be
        # replayed into `make run`'s Redis.
        if asterisk.is_running():
            asterisk.cli("channel request hangup all")
        _clear_journal(asterisk)
        _clear_members(asterisk)
        if not was_running:
            asterisk.stop(proc)
        redis.stop()


@pytest.fixture
def desk(hotline):
    """The engine's agent desk, with the baseline (every agent logged in,
    none paused) put back after the test."""
    engine = hotline.engine

    class Desk:
        def __getattr__(self, name):
            # The engine's desk at call time: a test may restart the engine.
            return lambda *a, **kw: engine.run(getattr(engine.engine.agent_desk, name)(*a, **kw))

    yield Desk()
    desk = Desk()
    for agent in hotline.config.agents:
        view = desk.view(agent.id)
        if view.state is AgentState.OFFLINE:
            desk.login(agent.id, source="cli")
        elif view.state is AgentState.PAUSED:
            desk.resume(agent.id, source="cli")


@pytest.fixture
def phones(hotline):
    """Start softphones; each is unregistered and stopped after the test."""
    started = []

    def start(agent_id: str, **kw):
        kw.setdefault("talk_ms", 3000)
        agent = start_agent(hotline.sipp, user=f"agent{agent_id}", password=hotline.password(agent_id),
                            target=hotline.agent_port, **kw)
        started.append((agent_id, agent))
        return agent

    def stop(agent) -> None:
        for agent_id, a in list(started):
            if a is agent:
                stop_agent(hotline.sipp, a, password=hotline.password(agent_id), target=hotline.agent_port)
                started.remove((agent_id, a))

    start.stop = stop
    start.started = started
    yield start
    for agent_id, agent in started:
        stop_agent(hotline.sipp, agent, password=hotline.password(agent_id), target=hotline.agent_port)


# How often the tests' Prometheus scrapes the engine, and how long it waits
# for a scrape. A scrape renders every pre-initialised series (about 12,000
# series, 1.4 MB) and costs the engine 0.3-0.5 s of CPU on this
# machine when idle; at one scrape a second with a 1 s timeout (the former
# setting) the engine spent half a core on it, and on a loaded CI machine
# every scrape timed out (up == 0 for minutes). Production scrapes every 15 s
# (metrics/prometheus.yml).
SCRAPE_SECONDS = 3


class Prometheus:
    """Debian's real Prometheus, scraping the engine every SCRAPE_SECONDS."""

    def __init__(self, workdir: Path, target: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        # The shipped recording and alerting rules are loaded as in production.
        rules = "".join(f"  - {path}\n" for path in sorted((REPO_ROOT / "metrics" / "rules").glob("*.yml")))
        config.write_text(
            f"global:\n  scrape_interval: {SCRAPE_SECONDS}s\n  scrape_timeout: {SCRAPE_SECONDS}s\n"
            "  evaluation_interval: 1s\n"
            f"rule_files:\n{rules}"
            f"scrape_configs:\n  - job_name: ivr\n    static_configs:\n      - targets: ['{target}']\n")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=(workdir / "prometheus.log").open("w"), start_new_session=True)

    def query(self, expr: str) -> list[dict]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        try:
            result = self.query(expr)
        except OSError:
            return None
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def prometheus(hotline, tmp_path_factory):
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is missing: run `make test`, which installs it")
    m = hotline.config.service.metrics
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"), f"{m.host}:{m.port}")
    try:
        if not hotline.wait_until(lambda: prom.value('up{job="ivr"}') == 1, timeout=30):
            pytest.fail("Prometheus did not scrape the engine")
        yield prom
    finally:
        prom.stop()
