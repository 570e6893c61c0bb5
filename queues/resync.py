"""After each AMI login: catch up on what happened while the engine was away.

AMI does not replay the events a client missed. So, after every login:

* callers who joined a queue meanwhile are still listed by ``QueueStatus``:
  the waiting callers are rebuilt from it, and each ``QueueEntry`` goes to
  accounting as the join it stands for;
* agents are rebuilt from the same reply's ``QueueMember`` entries;
* calls that ended meanwhile are in the dialplan's AstDB journal
  (``DBGetTree`` of the last hours' families), fed to accounting as the
  ``IvrCallEnd`` each entry stands for;
* callbacks whose placeholder vanished (``CoreShowChannels`` no longer has
  its channel) are placed again.

Accounting counts each fact once, so what was already seen live changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.contract import journal_families
from metrics.registry import EngineMetrics
from queues.agents.tracker import AgentTracker
from queues.ami.actions import AmiClient, CoreShowChannels, DBGetTree, QueueStatus
from queues.ami.events import AmiEvent, CoreShowChannel, QueueEntry
from queues.callbacks.dispatcher import CallbackDispatcher
from queues.calls.journal import entries_to_events
from queues.waiting import WaitingTracker

log = logging.getLogger(__name__)

REPLY_TIMEOUT_SECONDS = 15


class AmiResync:
    def __init__(self, *, ami: AmiClient, feed: Callable[[AmiEvent], None], agents: AgentTracker,
                 waiting: WaitingTracker, callbacks: CallbackDispatcher, metrics: EngineMetrics,
                 logins: Callable[[], int] = lambda: 1):
        """``feed``: where the events made up here go (the event pump, so that
        they reach accounting in order with the live ones). ``logins``: how
        many AMI logins there have been (a re-sync after the first is a reconnect)."""
        self._ami = ami
        self._feed = feed
        self._agents = agents
        self._waiting = waiting
        self._callbacks = callbacks
        self._metrics = metrics
        self._logins = logins
        self.count = 0  # re-syncs completed

    async def __call__(self) -> None:
        if self._logins() > 1:
            self._metrics.ami_reconnects.inc()
        status = await self._ami.send(QueueStatus(), timeout=REPLY_TIMEOUT_SECONDS)
        entries = [e for e in status.events if isinstance(e, QueueEntry)]
        await self._agents.apply_queue_status(status.events)
        await self._waiting.resync(entries)
        for entry in entries:
            self._feed(entry)
        ended = []
        for family in journal_families():
            reply = await self._ami.send(DBGetTree(family=family), timeout=REPLY_TIMEOUT_SECONDS)
            ended += entries_to_events(reply.events)
        for event in ended:
            self._feed(event)
        channels = await self._ami.send(CoreShowChannels(), timeout=REPLY_TIMEOUT_SECONDS)
        live = {e.uniqueid for e in channels.events if isinstance(e, CoreShowChannel)}
        replaced = await self._callbacks.recover(live)
        self.count += 1
        log.info("AMI re-sync: %d caller(s) waiting in queues, %d ended call(s) in the journal, "
                 "%d callback(s) placed again", len(entries), len(ended), len(replaced))
