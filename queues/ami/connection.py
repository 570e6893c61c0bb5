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
  that a single consumer drains.

After each login ``on_login`` runs (the engine re-syncs queue state there).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from typing import Awaitable, Callable

from panoramisk import Manager

from .actions import Action, AmiTimeout, Ping, Reply, parse_reply
from .events import AmiEvent, parse_event

log = logging.getLogger(__name__)


class _Manager(Manager):
    """panoramisk's Manager, told not to reconnect once we are shutting down."""

    closing = False

    def connect(self, *args, **kwargs):
        if self.closing:
            return None
        return super().connect(*args, **kwargs)

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
            on_connect=lambda manager: None,
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
        while True:
            await asyncio.sleep(self._ping_interval)
            manager = self._manager
            if manager is None:
                continue
            if not self.logged_in.is_set():
                if getattr(manager, "authenticated", None) is False and getattr(manager, "protocol", None):
                    log.error("AMI login refused for user %r: check the secret (ivr setup)",
                              self._config["username"])
                continue
            try:
                await self.send(Ping(), timeout=self._action_timeout)
                missed = 0
            except (AmiTimeout, ConnectionError):
                missed += 1
                log.warning("AMI Ping unanswered (%d)", missed)
                if missed >= 2 and getattr(manager, "protocol", None) is not None:
                    missed = 0
                    transport = getattr(manager.protocol, "transport", None)
                    if transport is not None:
                        transport.close()  # connection_lost -> reconnect
