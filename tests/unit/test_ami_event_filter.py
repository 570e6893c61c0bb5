"""The engine's AMI user is sent only the events its consumers act on
(core.contract.ENGINE_AMI_EVENTS, manager.conf eventfilter): the list and
the parser (queues/ami/events.py) must not drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.configuration import load_config
from core.contract import ENGINE_AMI_EVENTS
from dialplans.generate import render_manager
from core.secrets import SecretStore
from queues.ami.events import _PARSERS, OtherEvent, parse_event

# Items of the answers to the engine's actions: replies, which Asterisk
# never filters, not events.
REPLIES = {"QueueEntry", "QueueMember", "DBGetTreeResponse", "CoreShowChannel"}


@pytest.fixture
def config():
    return load_config(Path(__file__).resolve().parents[2] / "config")


@pytest.fixture
def secrets(config, tmp_path: Path) -> SecretStore:
    store = SecretStore(tmp_path / "s.json")
    store.ensure(config)
    return store


def test_every_event_the_parser_types_is_let_through_and_nothing_else():
    typed = set(_PARSERS) - REPLIES
    assert typed | {"UserEvent"} == set(ENGINE_AMI_EVENTS)
    for name in ENGINE_AMI_EVENTS:
        if name != "UserEvent":
            assert not isinstance(parse_event({"Event": name}), OtherEvent), name


def test_the_engine_user_gets_one_include_filter_per_event_and_the_monitor_none(config, secrets):
    manager = render_manager(config, secrets)
    engine, monitor = manager.split(f"[{config.service.ami.monitor_username}]")
    names = re.findall(r"^eventfilter\(action\(include\),name\((\w+)\)\) =$", engine, re.M)
    assert names == list(ENGINE_AMI_EVENTS)
    assert "eventfilter" not in monitor
    # No exclude filter: an include list alone means "these and nothing else".
    assert "action(exclude)" not in manager
