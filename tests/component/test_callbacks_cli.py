"""``ivr callbacks`` against a real redis-server: callbacks made by the real
store and dispatcher (fake AMI), then listed, shown and cancelled by the CLI.
A caller number must never appear unmasked in what the tool prints."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from test_callback_dispatcher_redis import OPEN, FakeAmi

import app.cli
from app.tools import ami_with_secret, connect_ami, connect_redis, tool_metrics
from queues.callbacks.cli import DEFAULT_LIMIT, run_callbacks_command
from core.paths import Paths
from core.privacy import NumberCipher
from core.secrets import CALLBACKS_KEY
from metrics.registry import EngineMetrics
from queues.callbacks import CallbackDispatcher, RedisCallbackStore
from queues.ami.events import parse_event

NOW = OPEN.timestamp()
N_OLD, N_DONE, N_QUEUED, N_WAIT = "01001234561", "01112345672", "01223456783", "01501234564"
ALL_NUMBERS = (N_OLD, N_DONE, N_QUEUED, N_WAIT)
# The callbacks' Fernet key (fernet:callbacks): the store keeps numbers with
# it, the tool decrypts them to print them masked.
CALLBACKS_FERNET_KEY = NumberCipher.generate_key()
CIPHER = NumberCipher(CALLBACKS_FERNET_KEY)


class ClosingAmi(FakeAmi):
    closed = False

    async def close(self):
        self.closed = True


def with_service(config, **changes):
    """The demo config with service.redis / service.ami fields replaced."""
    service = config.service
    for part, values in changes.items():
        service = service.model_copy(update={part: getattr(service, part).model_copy(update=values)})
    return config.model_copy(update={"service": service})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def cli_config(config, redis_server):
    return with_service(config, redis={"host": redis_server.host, "port": redis_server.port})


class Seeded:
    """Four callbacks: 1 ended two days ago, 2 connected, 3 queued, 4 waiting (forsa)."""

    def __init__(self, config, client):
        self.registry = CollectorRegistry()
        self.metrics = EngineMetrics(config, registry=self.registry)
        self.store = RedisCallbackStore(client, cipher=CIPHER, prefix=config.service.redis.key_prefix)
        self.ami = ClosingAmi()
        self.dispatcher = CallbackDispatcher(config=config, metrics=self.metrics, store=self.store, ami=self.ami,
                                             clock=lambda: OPEN)

    async def request(self, number, *, created, due=None, **kw):
        fields = {"hotline": "1442", "reason": "queue", "call_uid": f"u{number[-2:]}", "program": "takaful_karama",
                  "queue": "takaful_karama", "priority": 3, "position": 2, "request_type": "inquiry"}
        fields.update(kw)
        return await self.store.request(number=number, now=created, due_at=due, **fields)

    async def event(self, **fields):
        return await self.dispatcher.handle(parse_event(fields))

    async def seed(self):
        self.old = await self.request(N_OLD, created=NOW - 2 * 86400, due=NOW + 86400, reason="closed",
                                      program="", queue="")
        assert await self.store.transition(self.old, from_states=("waiting",), state="done",
                                           changes={"outcome": "no_answer", "last_status": "NOANSWER",
                                                    "attempts": 3}, event="no_answer")
        self.done = await self.request(N_DONE, created=NOW - 1800)
        assert await self.dispatcher.tick(OPEN) == [self.done]
        assert await self.event(Event="QueueCallerJoin", Uniqueid=f"cbq{self.done}a1") == "queued"
        assert await self.event(Event="AgentConnect", Uniqueid=f"cbq{self.done}a1", MemberName="Mona") == "dialling"
        assert await self.event(Event="UserEvent", UserEvent="IvrCallbackResult", CallbackId=self.done,
                                Stage="dial", Status="ANSWER", Uniqueid=f"cbd{self.done}a1") == "connected"
        self.queued = await self.request(N_QUEUED, created=NOW - 600)
        assert await self.dispatcher.tick(OPEN) == [self.queued]
        assert await self.event(Event="QueueCallerJoin", Uniqueid=f"cbq{self.queued}a1") == "queued"
        self.waiting = await self.request(N_WAIT, created=NOW - 60, due=NOW + 3600, program="forsa",
                                          queue="forsa", hotline="14406")
        return self


@pytest.fixture
async def seeded(cli_config, redis_client):
    return await Seeded(cli_config, redis_client).seed()


def args(action, callback_id=None, *, state="recent", program=None, limit=DEFAULT_LIMIT, format="text"):
    return argparse.Namespace(action=action, callback_id=callback_id, state=state, program=program, limit=limit,
                              format=format)


async def run(config, ns, **kw):
    out, err = io.StringIO(), io.StringIO()
    kw.setdefault("now", NOW)
    # What app.tools wires for `ivr callbacks`, unless the test gives its own.
    kw.setdefault("redis_factory", connect_redis)
    kw.setdefault("ami_factory", ami_with_secret(Paths.from_environment()))
    kw.setdefault("metrics", tool_metrics(config))
    kw.setdefault("cipher_factory", lambda config: CIPHER)
    code = await run_callbacks_command(ns, config, out=out, err=err, **kw)
    return code, out.getvalue(), err.getvalue()


def listed_ids(text: str) -> list[str]:
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["id", "number"]
    return [line.split()[0] for line in lines[1:] if line.split() and line.split()[0].isdigit()]


def assert_masked(text: str) -> None:
    for number in ALL_NUMBERS:
        assert number not in text
        assert number[2:] not in text  # nor the national part without the leading 01


# --- list -------------------------------------------------------------------------------------


async def test_default_list_shows_active_and_recent_done_masked(cli_config, seeded):
    code, out, err = await run(cli_config, args("list"))
    assert (code, err) == (0, "")
    assert listed_ids(out) == [seeded.waiting, seeded.queued, seeded.done]  # newest first; the old one hidden
    assert_masked(out)
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "*********64" in rows[seeded.waiting] and "*********83" in rows[seeded.queued]
    queued = rows[seeded.queued].split()
    assert queued[1:7] == ["*********83", "1442", "takaful_karama", "queue", "queued", "0/3"]
    done = rows[seeded.done].split()
    assert done[5:9] == ["done", "1/3", "connected", "ANSWER"]  # answered on the first call
    # Created and next try in Cairo time: the waiting one is due an hour after OPEN (10:00 Cairo).
    waiting = rows[seeded.waiting]
    assert "2026-11-22 09:59" in waiting and waiting.rstrip().endswith("2026-11-22 11:00")
    assert rows[seeded.queued].rstrip().endswith("-")  # no next try unless waiting


async def test_state_filters(cli_config, seeded):
    async def ids(**kw):
        code, out, err = await run(cli_config, args("list", **kw))
        assert code == 0, err
        assert_masked(out)
        return listed_ids(out)

    assert await ids(state="all") == [seeded.waiting, seeded.queued, seeded.done, seeded.old]
    assert await ids(state="done") == [seeded.done, seeded.old]
    assert await ids(state="active") == [seeded.waiting, seeded.queued]
    assert await ids(state="waiting") == [seeded.waiting]
    assert await ids(state="queued") == [seeded.queued]
    # An after-hours callback has no programme: it belongs to its hotline's fallback queue.
    assert await ids(state="all", program="shared") == [seeded.old]
    assert await ids(program="forsa") == [seeded.waiting]
    assert await ids(state="all", program="takaful_karama") == [seeded.queued, seeded.done]
    code, out, _ = await run(cli_config, args("list", state="dialling"))
    assert (code, out.strip()) == (0, "no callbacks (state dialling)")


async def test_limit_keeps_the_newest_and_says_there_are_more(cli_config, seeded):
    code, out, _ = await run(cli_config, args("list", state="all", limit=2))
    assert code == 0
    assert listed_ids(out) == [seeded.waiting, seeded.queued]
    assert "newest 2 shown" in out.splitlines()[-1]
    code, out, _ = await run(cli_config, args("list", state="all", limit=4))
    assert listed_ids(out) == [seeded.waiting, seeded.queued, seeded.done, seeded.old]
    assert "newest" not in out


async def test_json_list(cli_config, seeded):
    code, out, _ = await run(cli_config, args("list", state="all", limit=3, format="json"))
    assert code == 0
    assert_masked(out)
    doc = json.loads(out)
    assert doc["more"] is True and doc["limit"] == 3 and doc["timezone"] == "Africa/Cairo"
    by_id = {cb["id"]: cb for cb in doc["callbacks"]}
    assert list(by_id) == [seeded.waiting, seeded.queued, seeded.done]
    assert by_id[seeded.waiting]["number"] == "*********64"
    assert by_id[seeded.waiting]["next_at"] == "2026-11-22T11:00:00+02:00"
    assert by_id[seeded.waiting]["queue"] == "forsa" and by_id[seeded.waiting]["hotline"] == "14406"
    assert by_id[seeded.done]["outcome"] == "connected" and by_id[seeded.done]["next_at"] is None
    assert by_id[seeded.queued]["state"] == "queued" and by_id[seeded.queued]["max_attempts"] == 3
    code, out, _ = await run(cli_config, args("list", state="dialling", format="json"))
    assert code == 0 and json.loads(out)["callbacks"] == []


async def test_list_usage_errors(cli_config, seeded):
    code, out, err = await run(cli_config, args("list", program="no_such"))
    assert code == 2 and out == ""
    assert "unknown programme or queue 'no_such'" in err and "takaful_karama" in err
    code, _, err = await run(cli_config, args("list", "3"))
    assert code == 2 and "takes no id" in err


# --- show -------------------------------------------------------------------------------------


async def test_show_with_history(cli_config, seeded):
    code, out, err = await run(cli_config, args("show", seeded.done))
    assert (code, err) == (0, "")
    assert_masked(out)
    assert "*********72" in out
    lines = out.splitlines()
    assert lines[0] == f"callback {seeded.done} (Africa/Cairo)"
    assert "  state         done" in lines and "  outcome       connected" in lines
    history = lines[lines.index("history:") + 1:]
    assert [line.split()[2] for line in history] == ["requested", "queued", "agent", "connected"]
    assert "number=*********72" in history[0] and "reason=queue" in history[0]
    # Only this callback's entries, although the stream holds the others' too.
    code, out, _ = await run(cli_config, args("show", seeded.waiting, format="json"))
    assert code == 0
    assert_masked(out)
    doc = json.loads(out)
    assert doc["id"] == seeded.waiting and doc["state"] == "waiting" and doc["number"] == "*********64"
    assert [h["event"] for h in doc["history"]] == ["requested"]
    assert doc["history"][0]["number"] == "*********64" and doc["history"][0]["queue"] == "forsa"


async def test_show_unknown_or_malformed_id(cli_config, seeded):
    code, out, err = await run(cli_config, args("show", "999"))
    assert code == 2 and out == "" and "no callback 999" in err
    code, _, err = await run(cli_config, args("show", "abc"))
    assert code == 2 and "callback ids are numbers" in err
    code, _, err = await run(cli_config, args("show"))
    assert code == 2 and "needs a callback id" in err


# --- cancel -----------------------------------------------------------------------------------


async def test_cancel_a_queued_callback_hangs_up_its_placeholder(cli_config, seeded, caplog):
    caplog.set_level(logging.DEBUG)
    ami = ClosingAmi()

    async def ami_factory(config):
        return ami

    code, out, err = await run(cli_config, args("cancel", seeded.queued), ami_factory=ami_factory,
                               metrics=seeded.metrics)
    assert (code, err) == (0, "")
    assert out.strip() == (f"callback {seeded.queued} (*********83, takaful_karama) cancelled (was queued); "
                           "its placeholder was hung up (it leaves the queue)")
    assert ami.actions == [{"Action": "Hangup", "Channel": f"/^Local/{seeded.queued}a[0-9]+@ivr-callback-hold-/"}]
    assert ami.closed
    cb = await seeded.store.get(seeded.queued)
    assert (cb.state, cb.outcome, cb.last_status) == ("done", "cancelled", "CANCELLED")
    # Counted by the running engine (here: the seeded dispatcher), once, on its next tick.
    cancelled = {"tenant": "mss", "program": "takaful_karama", "outcome": "cancelled"}
    assert seeded.registry.get_sample_value("ivr_callbacks_total", cancelled) == 0
    await seeded.dispatcher.tick(OPEN)
    await seeded.dispatcher.tick(OPEN)
    assert seeded.registry.get_sample_value("ivr_callbacks_total", cancelled) == 1
    assert await seeded.store.active_ids() == [seeded.waiting]
    assert_masked(out + caplog.text)
    # The history says so; a second cancel is refused with its outcome.
    _, out, _ = await run(cli_config, args("show", seeded.queued))
    assert out.splitlines()[-1].split()[2] == "cancelled"
    code, out, err = await run(cli_config, args("cancel", seeded.queued), ami_factory=ami_factory)
    assert code == 2 and out == ""
    assert f"callback {seeded.queued} has already ended: cancelled" in err
    assert len(ami.actions) == 1


async def test_cancel_a_waiting_callback(cli_config, seeded):
    ami = ClosingAmi()

    async def ami_factory(config):
        return ami

    code, out, _ = await run(cli_config, args("cancel", seeded.waiting), ami_factory=ami_factory,
                             metrics=seeded.metrics)
    assert code == 0 and out.strip().endswith("cancelled (was waiting)")
    assert ami.actions == []  # nothing in Asterisk to hang up
    assert await seeded.store.get(seeded.waiting) is not None
    # No longer due: the dispatcher will not place it.
    assert seeded.registry.get_sample_value("ivr_callbacks_total", {"tenant": "mss", "program": "forsa", "outcome": "cancelled"}) == 0
    assert await seeded.dispatcher.tick(OPEN + timedelta(hours=2)) == []
    assert seeded.registry.get_sample_value("ivr_callbacks_total", {"tenant": "mss", "program": "forsa", "outcome": "cancelled"}) == 1


async def test_cancel_refused(cli_config, seeded):
    async def no_ami(config):
        raise AssertionError("AMI must not be reached for a refused cancel")

    code, out, err = await run(cli_config, args("cancel", seeded.done), ami_factory=no_ami)
    assert code == 2 and out == ""
    assert err.strip() == (f"callback {seeded.done} has already ended: connected (ANSWER, 1 attempt(s)); "
                           "nothing to cancel")
    code, _, err = await run(cli_config, args("cancel", "4242"), ami_factory=no_ami)
    assert code == 2 and "no callback 4242" in err
    code, _, err = await run(cli_config, args("cancel", "-1"), ami_factory=no_ami)
    assert code == 2 and "callback ids are numbers, not '-1'" in err


async def test_cancel_with_asterisk_down_changes_nothing(cli_config, seeded):
    port = closed_port()
    down = with_service(cli_config, ami={"port": port})

    async def ami_factory(config):
        return await connect_ami(config, "secret", timeout=0.5)

    code, out, err = await run(down, args("cancel", seeded.queued), ami_factory=ami_factory)
    assert code == 1 and out == ""
    assert f"127.0.0.1:{port}" in err
    cb = await seeded.store.get(seeded.queued)
    assert cb.state == "queued" and cb.outcome == ""


async def test_redis_unreachable(config):
    port = closed_port()
    down = with_service(config, redis={"host": "127.0.0.1", "port": port})
    for ns in (args("list"), args("show", "1"), args("cancel", "1")):
        code, out, err = await run(down, ns)
        assert code == 1 and out == ""
        assert f"Redis is not reachable at 127.0.0.1:{port}" in err


# --- the `ivr` command --------------------------------------------------------------------------


def test_ivr_callbacks_through_the_command_line(redis_server, tmp_path, capsys, monkeypatch):
    """`ivr callbacks ...` parses, loads the configuration and reads Redis (a copy of the demo
    configuration pointing at the test Redis)."""
    # A state folder of the test's own, with the callbacks' key `ivr setup` generates.
    monkeypatch.setenv("IVR_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "secrets.json").write_text(json.dumps({CALLBACKS_KEY: CALLBACKS_FERNET_KEY}))
    demo = Path(app.cli.REPO_ROOT) / "config"
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for path in demo.glob("*.yaml"):
        text = path.read_text()
        if path.name == "service.yaml":
            assert "port: 6379" in text
            text = text.replace("port: 6379", f"port: {redis_server.port}")
        (config_dir / path.name).write_text(text)

    async def seed():
        await _flush(redis_server)
        client = aioredis.Redis(host=redis_server.host, port=redis_server.port)
        try:
            await RedisCallbackStore(client, cipher=CIPHER, prefix="ivr:").request(
                hotline="14406", number=N_WAIT, reason="queue", call_uid="u1", program="forsa", queue="forsa")
        finally:
            await client.aclose()

    asyncio.run(seed())
    assert app.cli.main(["callbacks", "list", "--config", str(config_dir), "--program", "forsa"]) == 0
    out = capsys.readouterr().out
    assert listed_ids(out) == ["1"] and "*********64" in out and N_WAIT not in out
    assert app.cli.main(["callbacks", "show", "1", "--format", "json", "--config", str(config_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["number"] == "*********64"
    assert app.cli.main(["callbacks", "cancel", "--config", str(config_dir)]) == 2
    assert "needs a callback id" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        app.cli.main(["callbacks", "list", "--limit", "0", "--config", str(config_dir)])
    assert exit_.value.code == 2 and "must be 1 or more" in capsys.readouterr().err
    asyncio.run(_flush(redis_server))


async def _flush(redis_server):
    client = aioredis.Redis(host=redis_server.host, port=redis_server.port)
    try:
        await client.flushall()
    finally:
        await client.aclose()
