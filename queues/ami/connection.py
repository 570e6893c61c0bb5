"""The AMI connection: the only module that imports panoramisk.

It sends typed actions (``queues.ami.actions``) and returns typed replies,
and puts every event, parsed at the edge (``queues.ami.events``), on one
queue in arrival order. panoramisk's ``Manager`` reconnects after a lost
connection, but it has three traps this wrapper closes:

* an action can wait for ever (``QueueAdd`` never resolves): every action here
  is bounded by ``action_timeout``;
* its keep-alive ``Ping`` never checks for an answer, so a half-open link
  looks alive: here a Ping that is not answered in time closes the link and
  panoramisk reconnects;
* event callbacks that are coroutines run as separate tasks, in no fixed
  order: here every event goes, in arrival order, into one asyncio queue
  that a single consumer drains;
* a connection lost before the Manager has taken it (a peer that accepts and
  closes at once: uvloop delivers the loss first) made its protocol raise
  AttributeError in the event loop, and no reconnect was ever scheduled
  (found by make test-faults, AMI cut for ten minutes): ``_Protocol`` notes
  such a loss and ``_Manager`` reconnects; and a login left unanswered is
  given up after two keep-alive periods;
* its protocol logs the whole action when a write fails, the Login's secret
  included: ``_Protocol`` names only the action.

After each login ``on_login`` runs (the engine re-syncs queue state there).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from typing import Awaitable, Callable

from panoramisk import Manager
from panoramisk import actions as ami_actions
from panoramisk.ami_protocol import AMIProtocol

from .actions import Action, AmiTimeout, Ping, Reply, parse_reply
from .events import AmiEvent, parse_event

log = logging.getLogger(__name__)


class _Protocol(AMIProtocol):
    """panoramisk's protocol, safe when the link is lost before the Manager
    has taken it, and never logging an action's fields."""

    lost_early = False

    def connection_lost(self, exc):
        if self.factory is None:
            # The Manager has not run connection_made yet: nothing to hand the
            # loss to. _Manager.connection_made sees the flag and reconnects.
            self.lost_early = True
            self.closed = True
            return
        super().connection_lost(exc)

    def send(self, data, as_list=False):
        # panoramisk's send, except that a failed write names only the action
        # (its own logs the whole of it: a Login's secret included), and that
        # nothing is written on a link already closing (its loss reconnects).
        if not isinstance(data, ami_actions.Action):
            data = (ami_actions.Command if "Command" in data else ami_actions.Action)(data, as_list=as_list)
        data.as_list = as_list
        self.responses[data.id] = data
        if data.action_id:
            self.responses[data.action_id] = data
        if not self.transport.is_closing():
            try:
                self.transport.write(str(data).encode(getattr(self, "encoding", "ascii")))
            except Exception as exc:
                self.log.warning("AMI: could not send %s (%s)", data.get("Action"), type(exc).__name__)
        return data.future


class _Manager(Manager):
    """panoramisk's Manager, told not to reconnect once we are shutting down,
    and reconnecting after a connection lost before it took it."""

    closing = False

    def connect(self, *args, **kwargs):
        if self.closing:
            return None
        return super().connect(*args, **kwargs)

    def connection_made(self, f):
        super().connection_made(f)
        if not f.cancelled() and f.exception() is None and getattr(self.protocol, "lost_early", False):
            log.info("AMI connection closed by the peer as it opened; reconnecting")
            self.connection_lost(None)

    def connection_lost(self, exc):
        if self.closing:
            return
        super().connection_lost(exc)


class AmiConnection:
    def __init__(self, *, host: str, port: int, username: str, secret: str,
                 action_timeout: float = 5.0, ping_interval: float = 10.0,
                 on_login: Callable[[], Awaitable[None]] | None = None,
                 on_state: Callable[[bool], None] | None = None,
                 max_queued_events: int = 100_000, recorder=None):
        self._recorder = recorder  # queues.ami.recording.SessionRecorder (tests only)
        self._config = dict(host=host, port=port, username=username, secret=secret)
        self._action_timeout = action_timeout
        self._ping_interval = ping_interval
        self._on_login = on_login
        self._on_state = on_state
        self.events: asyncio.Queue[AmiEvent] = asyncio.Queue(max_queued_events)
        # Each event's ref: this connection's id and a sequence number (a
        # consumer retrying one delivery recognises its own earlier work).
        self._id = secrets.token_hex(4)
        self._seq = itertools.count(1)
        self.logins = 0
        self.logged_in = asyncio.Event()
        self._manager: _Manager | None = None
        self._keepalive: asyncio.Task | None = None
        self._login_tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._manager = _Manager(
            **self._config,
            # Our own keep-alive below; panoramisk's ping would still run, so
            # push it far out.
            ping_delay=3600, ping_interval=3600, reconnect_timeout=2,
            on_login=self._logged_in, on_disconnect=self._disconnected,
            on_connect=lambda manager: None, protocol_factory=_Protocol,
        )
        self._manager.register_event("*", self._enqueue)
        self._manager.connect()
        self._keepalive = asyncio.create_task(self._keep_alive(), name="ami-keepalive")

    async def close(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._manager is not None:
            self._manager.closing = True
            self._manager.close()
        for task in list(self._login_tasks):
            task.cancel()

    def next_ref(self) -> str:
        """A fresh delivery ref, for events the engine makes up itself (a re-sync)."""
        return f"{self._id}:{next(self._seq)}"

    async def send(self, action: Action, *, timeout: float | None = None) -> Reply:
        """Send one action; its typed reply. AmiTimeout rather than a wait for ever,
        ConnectionError when not logged in."""
        if self._manager is None or not self.logged_in.is_set():
            raise ConnectionError("AMI not logged in")
        fields = action.headers()
        # as_list from the action itself: panoramisk's own guess is wrong for
        # QueueAdd and an async Originate (queues/ami/actions.py).
        future = self._manager.send_action(fields, as_list=action.lists_events)
        try:
            raw = await asyncio.wait_for(asyncio.shield(future), timeout or self._action_timeout)
        except asyncio.TimeoutError:
            future.cancel()
            raise AmiTimeout(f"AMI action {action.name} got no complete answer") from None
        if self._recorder is not None:
            self._recorder.reply(fields, raw)
        return parse_reply(action, raw, ref=self.next_ref() if action.lists_events else "")

    # --- panoramisk callbacks ---------------------------------------------
    def _enqueue(self, manager, message) -> None:
        if self._recorder is not None:
            self._recorder.event(message)
        event = parse_event({str(k): str(v) for k, v in message.items()}, ref=self.next_ref())
        try:
            self.events.put_nowait(event)
        except asyncio.QueueFull:
            log.error("AMI event queue full; dropped %s", event.name)

    def _logged_in(self, manager) -> None:
        self.logins += 1
        self.logged_in.set()
        log.info("AMI logged in to %s:%s (login #%d)", self._config["host"], self._config["port"], self.logins)
        if self._on_state:
            self._on_state(True)
        if self._on_login is not None:
            task = asyncio.ensure_future(self._run_on_login())
            self._login_tasks.add(task)
            task.add_done_callback(self._login_tasks.discard)

    async def _run_on_login(self) -> None:
        try:
            await self._on_login()
        except Exception:
            log.exception("AMI re-sync after login failed")

    def _disconnected(self, manager, exc) -> None:
        self.logged_in.clear()
        log.warning("AMI connection lost (%s); panoramisk reconnects", exc or "closed")
        if self._on_state:
            self._on_state(False)

    async def _keep_alive(self) -> None:
        missed = 0
        unanswered = None  # the Login future seen unanswered at the last tick
        while True:
            await asyncio.sleep(self._ping_interval)
            manager = self._manager
            if manager is None:
                continue
            if not self.logged_in.is_set():
                protocol = getattr(manager, "protocol", None)
                if getattr(manager, "authenticated", None) is not False or protocol is None:
                    unanswered = None
                    continue
                pending = getattr(manager, "authenticated_future", None)
                if pending is None:  # answered, and not with Success
                    unanswered = None
                    log.error("AMI login refused for user %r: check the secret (ivr setup)",
                              self._config["username"])
                    continue
                # Connected, the Login sent, no answer: if the same Login is
                # still unanswered a period later, a link still open is given
                # up and made again (a peer that swallows the Login). A new
                # connection brings a new Login.
                if pending is unanswered:
                    unanswered = None
                    self._reconnect(manager, "AMI login unanswered; connecting again")
                else:
                    unanswered = pending
                continue
            unanswered = None
            try:
                await self.send(Ping(), timeout=self._action_timeout)
                missed = 0
            except (AmiTimeout, ConnectionError):
                missed += 1
                log.warning("AMI Ping unanswered (%d)", missed)
                if missed >= 2 and getattr(manager, "protocol", None) is not None:
                    missed = 0
                    self._reconnect(manager, "AMI link unanswering; connecting again")

    @staticmethod
    def _reconnect(manager: _Manager, why: str) -> None:
        """Drop a link that is open but unanswering; its loss makes a new one.
        A link already closed has had its reconnect scheduled by that loss."""
        transport = getattr(manager.protocol, "transport", None)
        if transport is not None and not transport.is_closing():
            log.warning(why)
            transport.close()
