"""The calls the engine places (callback placeholders, announcements, service
checks), handed to Asterisk as call files.

Asterisk's ``pbx_spool`` places a call for each file that appears in its
``outgoing`` folder (inotify: at once). The engine writes the file whole in
a folder of its own beside it, mode 0600, and renames it in, so Asterisk
never reads half a file. Why not AMI Originate: AMI's ``originate`` class
lets whoever holds the secret call any channel, the carrier's with any
number included, and Asterisk cannot narrow it; writing into the spool
folder needs the files of the Asterisk it serves. The engine's AMI user
keeps no ``originate`` class (docs/reliability.md, *Security*).

Each call is one attempt (``MaxRetries: 0``): the engine follows it from
the dialplan's events and places it again itself. Asterisk deletes a file
when its call ends (a placeholder's lasts as long as it waits in the queue:
its number is in a 0600 file of Asterisk's for that long, then gone).
:meth:`CallFileSpool.purge` removes the engine's files that Asterisk has not
taken in time (it was down): an old announcement or check is not placed
late.
"""

from __future__ import annotations

import logging
import os
import time
from itertools import count
from pathlib import Path

from queues.ami.actions import Originate, Reply

log = logging.getLogger(__name__)

PREFIX = "ivr-"


class CallFileSpool:
    """``send(Originate)`` as a call file in ``outgoing`` (Asterisk's
    ``<astspooldir>/outgoing``); the same ``send`` as the AMI connection, so
    the placing code does not know which one it has."""

    def __init__(self, outgoing: Path, *, clock=time.time):
        self.outgoing = Path(outgoing)
        self._work = self.outgoing.parent / "ivr-outgoing-tmp"
        self._clock = clock
        self._seq = count(1)

    async def send(self, action: Originate, *, timeout: float | None = None) -> Reply:
        if not isinstance(action, Originate):
            raise TypeError(f"a call file places calls only, not {action.name}")
        name = f"{PREFIX}{action.context}-{action.exten}-{os.getpid()}-{next(self._seq)}.call"
        try:
            self._work.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self._work / name
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(action.call_file())
            self.outgoing.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, self.outgoing / name)
        except OSError as exc:   # the disk full, the folder gone: the caller places it again later
            return Reply(ok=False, message=f"call file not written ({type(exc).__name__}: {exc.strerror or exc})")
        return Reply(ok=True, message="Call file queued")

    def purge(self, older_than_seconds: float) -> int:
        """Remove the engine's call files Asterisk has not taken for that long
        (Asterisk was down); returns how many. A taken file is being placed."""
        cutoff = self._clock() - older_than_seconds
        removed = 0
        for folder in (self.outgoing, self._work):
            try:
                entries = list(folder.glob(f"{PREFIX}*.call"))
            except OSError:
                continue
            for path in entries:
                try:
                    if path.stat().st_mtime < cutoff and not _taken(path):
                        path.unlink()
                        removed += 1
                except OSError:
                    continue
        if removed:
            log.warning("%d call file(s) not taken by Asterisk in %.0fs removed (their calls are placed again "
                        "by the engine if still due)", removed, older_than_seconds)
        return removed


def _taken(path: Path) -> bool:
    # pbx_spool appends "StartRetry: ..." to a file when it places its call.
    try:
        return b"StartRetry:" in path.read_bytes()
    except OSError:
        return True
