"""The dialplan and the engine agree on their shared names, defined once in core.contract.

The generated dialplan is read back: every context the engine originates
into exists, every user event the consumers parse is sent with the headers
they read, every FastAGI route the dialplan calls is served, every variable
the engine sets is read. And no engine module spells one of these names
itself: they come from core/contract.py.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from core.configuration import load_config
from core.contract import (JOURNAL_FAMILY, PLACEHOLDER_PREFIX, Context, Header, IvrAction, Route, UserEvent, Var,
                           dial_channel_id, hold_channel_id, journal_families, placeholder_ref)
from core.secrets import SecretStore
from dialplans.generate import render_extensions, render_manager, render_pjsip

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config():
    return load_config(ROOT / "config")


@pytest.fixture(scope="module")
def dialplan(config):
    return render_extensions(config)


def constants(cls) -> dict[str, str]:
    return {k: v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str)}


def test_every_context_is_in_the_dialplan(dialplan, config):
    sections = set(re.findall(r"^\[([\w-]+)\]", dialplan, re.M))
    assert set(constants(Context).values()) <= sections, set(constants(Context).values()) - sections
    # The endpoints' contexts (pjsip.conf) are the contract's too.
    store = SecretStore(Path(tempfile.mkdtemp()) / "secrets.json")
    store.ensure(config)
    pjsip = render_pjsip(config, store)
    assert f"context={Context.FROM_CARRIER}" in pjsip and f"context={Context.AGENTS}" in pjsip
    assert "secret" in render_manager(config, store)


def test_every_user_event_is_sent_with_its_headers(dialplan):
    sent = dict(re.findall(r"UserEvent\((\w+),([^)\n]*(?:\)[^)\n]*)*)\)", dialplan))
    for name, event in constants(UserEvent).items():
        if event == UserEvent.ROUTE:
            assert event not in dialplan  # only replays send it
            continue
        assert event in sent, event
    headers = {h.split(":")[0] for args in sent.values() for h in args.split(",") if ":" in h}
    for header in (Header.HOTLINE, Header.CALL_UID, Header.QUEUE, Header.MEMBER, Header.QUEUE_STATUS,
                   Header.CALLBACK_ID, Header.STAGE, Header.STATUS):
        assert header in headers, header


def test_every_route_the_dialplan_calls_is_served(dialplan, config):
    from ivr.routes import engine_routes
    from metrics.registry import EngineMetrics
    from prometheus_client import CollectorRegistry
    from queues.agents.desk import AgentDesk
    from queues.agents.store import MemoryAgentStateStore
    from queues.ami.actions import NoAmi
    from queues.callbacks.store import MemoryCallbackStore
    from queues.calls.store import MemoryCallStateStore
    from queues.priority import MemoryRecentCallers

    called = set(re.findall(r"AGI\(agi://[\d.:]+/(\w+),", dialplan))
    called |= set(re.findall(r"AGI\([^,()]*ivr-agi,--config=[^,]*,--state=[^,]*,(\w+),", dialplan))
    assert called == set(Route.ALL)
    metrics = EngineMetrics(config, CollectorRegistry())
    routes = engine_routes(config=config, metrics=metrics, store=MemoryCallStateStore(),
                           callbacks=MemoryCallbackStore(), national_id_key=b"k" * 32,
                           recent=MemoryRecentCallers(keep_seconds=0),
                           desk=AgentDesk(ami=NoAmi(), store=MemoryAgentStateStore(), config=config, metrics=metrics),
                           place_of=lambda queue, uid: None)
    assert set(routes) == set(Route.ALL)


def test_every_variable_the_engine_sets_is_read_by_the_dialplan(dialplan):
    for var in (Var.QUEUE, Var.PRIORITY, Var.ACTION, Var.PROGRAM, Var.REQUEST_TYPE, Var.HOTLINE,
                Var.QUEUE_POSITION, Var.QUEUE_TIMEOUT, Var.CB_QUEUE, Var.CB_NUMBER, Var.CB_RING, Var.CB_TIMEOUT,
                Var.CB_POSITION, Var.ANNOUNCE_FILES, Var.ANNOUNCE_TARGET, Var.ANNOUNCE_QUEUE, Var.ANNOUNCE_UID):
        assert "${" + var + "}" in dialplan, var
    for value in (IvrAction.CLOSED, IvrAction.CALLBACK):
        assert f'"${{{Var.ACTION}}}" = "{value}"' in dialplan, value


def test_the_journal_is_written_where_it_is_read(dialplan):
    assert f"Set(DB({JOURNAL_FAMILY}${{STRFTIME(${{EPOCH}},UTC,%d%H)}}/${{{Var.CALL_UID}}})=" in dialplan
    assert all(f.startswith(JOURNAL_FAMILY) and len(f) == len(JOURNAL_FAMILY) + 4 for f in journal_families())


def test_placeholder_ids_round_trip():
    assert placeholder_ref(hold_channel_id("17", 2)) == ("q", "17", 2)
    assert placeholder_ref(dial_channel_id("17", 2)) == ("d", "17", 2)
    assert hold_channel_id("17", 2).startswith(PLACEHOLDER_PREFIX)
    assert placeholder_ref("1732467000.42") is None


def test_no_engine_module_spells_a_shared_name_itself():
    names = {*constants(UserEvent).values(), *constants(Context).values(), *constants(Var).values(),
             JOURNAL_FAMILY}
    names.discard(Context.AGENTS)  # also an ordinary word
    pattern = re.compile("[\"'](" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + ")[\"']")
    offenders = []
    for package in ("app", "ivr", "queues", "metrics", "dialplans", "core"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "contract.py" and path.parent.name == "core":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []


def test_the_engine_originates_only_local_channels_into_its_originate_only_contexts():
    """AMI's `originate` class would let its holder call any number through the
    carrier; the engine's typed Originate refuses anything but a Local channel
    between its own originate-only contexts, before it is sent."""
    import pytest

    from queues.ami.actions import Originate

    ok = Originate(channel="Local/17@ivr-callback-hold/n", context="ivr-callback-dial", exten="17")
    assert ok.headers()["Channel"] == "Local/17@ivr-callback-hold/n"
    for channel, context in [("PJSIP/01001234567@carrier-out", "ivr-callback-dial"),
                             ("Local/01001234567@from-carrier", "ivr-callback-dial"),
                             ("Local/17@ivr-callback-hold/n", "ivr-answer"),
                             ("Local/17@agents", "ivr-announce-spy"),
                             ("Local/1@ivr-announce/n,Dial(PJSIP/x@carrier-out)", "ivr-announce-spy"),
                             ("", "")]:
        with pytest.raises(ValueError, match="Originate refused"):
            Originate(channel=channel, context=context)


def test_a_call_file_carries_one_attempt_and_no_line_a_variable_could_add():
    """The engine's calls are call files (queues.spool): one attempt, no
    archive, each variable on its own Setvar line; a value with a line break
    (it would add lines of its own, e.g. another Channel) is refused."""
    from queues.ami.actions import Originate

    call = Originate(channel="Local/17a2@ivr-callback-hold/n", context="ivr-callback-dial", exten="17a2",
                     timeout_ms=4_200_500, variables=("IVR_CB_NUMBER=01001234567", "IVR_ANNOUNCE_FILES=a&b,c"))
    assert call.call_file().splitlines() == [
        "Channel: Local/17a2@ivr-callback-hold/n", "Context: ivr-callback-dial", "Extension: 17a2", "Priority: 1",
        "WaitTime: 4201", "MaxRetries: 0", "Archive: no", "Setvar: IVR_CB_NUMBER=01001234567",
        "Setvar: IVR_ANNOUNCE_FILES=a&b,c"]
    for variables, exten in [(("IVR_CB_NUMBER=0100\nChannel: PJSIP/1@carrier-out",), "17"),
                             (("IVR_CB_NUMBER=0100\r",), "17"), (("no equals sign",), "17"),
                             (("BAD NAME=1",), "17"), ((), "17\nChannel: x"), ((), "")]:
        with pytest.raises(ValueError, match="Originate refused"):
            Originate(channel="Local/17a2@ivr-callback-hold/n", context="ivr-callback-dial", exten=exten,
                      variables=variables)


def test_placeholders_are_known_by_their_channel_names():
    """A call file cannot choose a Uniqueid: a placeholder's events are read
    by its channel's name (Local/<id>a<placement>@ivr-callback-hold-...)."""
    from core.contract import canonical_uniqueid, placeholder_key, split_placeholder_key
    from queues.ami.events import parse_event

    assert placeholder_key("17", 2) == "17a2" and split_placeholder_key("17a2") == ("17", 2)
    assert split_placeholder_key("17") == ("17", None)
    assert canonical_uniqueid("Local/17a2@ivr-callback-hold-0000001f;2", "1733.5") == "cbq17a2"
    assert canonical_uniqueid("Local/17a2@ivr-callback-hold-0000001f;1", "1733.4") == "cbd17a2"
    for channel in ("PJSIP/carrier-00000001", "Local/17@ivr-callback-hold-0000001f;2",
                    "Local/17a2@ivr-announce-0000001f;2", "Local/17a2@ivr-callback-hold-0000001f;2x"):
        assert canonical_uniqueid(channel, "1733.5") == "1733.5"
    join = parse_event({"Event": "QueueCallerJoin", "Queue": "forsa", "Position": "1", "Uniqueid": "1733.5",
                        "Channel": "Local/17a2@ivr-callback-hold-0000001f;2"})
    assert join.uniqueid == "cbq17a2"
    connect = parse_event({"Event": "AgentConnect", "Queue": "forsa", "Uniqueid": "1733.5", "DestUniqueid": "1733.9",
                           "Channel": "Local/17a2@ivr-callback-hold-0000001f;2", "DestChannel": "PJSIP/a-1"})
    assert (connect.uniqueid, connect.dest_uniqueid) == ("cbq17a2", "1733.9")
