"""The engine's calls as call files (queues.spool): whole or not at all,
0600, and the ones Asterisk did not take removed after a while."""

from __future__ import annotations

import asyncio
import os
import stat
import time

import pytest

from queues.ami.actions import Hangup, Originate
from queues.spool import CallFileSpool

CALL = Originate(channel="Local/17a1@ivr-callback-hold/n", context="ivr-callback-dial", exten="17a1",
                 variables=("IVR_CB_NUMBER=01001234567",))


def test_a_call_file_lands_whole_in_outgoing_readable_only_by_its_owner(tmp_path):
    spool = CallFileSpool(tmp_path / "outgoing")
    reply = asyncio.run(spool.send(CALL))
    assert reply.ok
    (path,) = (tmp_path / "outgoing").iterdir()
    assert path.read_text() == CALL.call_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.name.startswith("ivr-ivr-callback-dial-17a1-") and path.suffix == ".call"
    assert list((tmp_path / "ivr-outgoing-tmp").iterdir()) == []   # written aside, renamed in


def test_a_spool_that_cannot_be_written_says_so_and_places_nothing(tmp_path):
    (tmp_path / "outgoing").write_text("a file where the folder should be")
    reply = asyncio.run(CallFileSpool(tmp_path / "outgoing").send(CALL))
    assert not reply.ok and "call file not written" in reply.message
    with pytest.raises(TypeError):
        asyncio.run(CallFileSpool(tmp_path / "x").send(Hangup(channel="Local/1@ivr-announce-1;1")))


def test_purge_removes_only_old_untaken_files_of_the_engine(tmp_path):
    now = time.time()
    spool = CallFileSpool(tmp_path / "outgoing", clock=lambda: now)
    for _ in range(3):
        asyncio.run(spool.send(CALL))
    old, taken, fresh = sorted((tmp_path / "outgoing").iterdir())
    os.utime(old, (now - 120, now - 120))
    taken.write_text(taken.read_text() + "StartRetry: 1733 (1)\n")
    os.utime(taken, (now - 120, now - 120))
    foreign = tmp_path / "outgoing" / "someone-else.call"
    foreign.write_text("Channel: Local/1@x\n")
    os.utime(foreign, (now - 120, now - 120))
    assert spool.purge(30) == 1
    assert sorted(p.name for p in (tmp_path / "outgoing").iterdir()) == sorted([taken.name, fresh.name, foreign.name])
