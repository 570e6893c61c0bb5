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
