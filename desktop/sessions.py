"""Who is signed in to the desktop: agents' sessions and the sign-in throttle.

An agent signs in with the credentials of their softphone (the SIP account
``ivr setup`` generated: ``ivr agents credentials`` prints it), so there is
one account per agent and nothing new to hand out. The password is compared
in constant time. After ``MAX_FAILURES`` wrong passwords for one agent within
``FAILURE_WINDOW_SECONDS`` the agent's sign-in is refused for
``LOCK_SECONDS`` (a guessing script gets a handful of tries, not millions).

A session is a random 256-bit token (``secrets.token_urlsafe``) sent as an
HttpOnly, SameSite=Strict cookie; it ends after ``IDLE_SECONDS`` without a
request, on sign-out, or when the engine restarts (sessions live in memory:
signing in again takes a second). No I/O here: the server gives the clock
and the password lookup.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_FAILURES = 5
FAILURE_WINDOW_SECONDS = 300.0
LOCK_SECONDS = 300.0
IDLE_SECONDS = 12 * 3600.0


class SignInRefused(Exception):
    """``reason``: ``unknown_agent``, ``bad_password`` or ``locked``."""

    def __init__(self, reason: str, retry_after: float = 0.0):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass
class Session:
    token: str
    agent_id: str
    tenant: str | None
    last_seen: float


@dataclass
class _Failures:
    times: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class SessionBook:
    def __init__(self, *, password_of: Callable[[str], str | None], tenant_of: Callable[[str], str | None],
                 clock: Callable[[], float] = time.monotonic, idle_seconds: float = IDLE_SECONDS):
        """``password_of(agent_id)``: the agent's password, None for no such agent."""
        self._password_of = password_of
        self._tenant_of = tenant_of
        self._clock = clock
        self._idle = idle_seconds
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, _Failures] = {}

    def sign_in(self, agent_id: str, password: str) -> Session:
        now = self._clock()
        failures = self._failures.get(agent_id)
        if failures is not None and failures.locked_until > now:
            raise SignInRefused("locked", retry_after=failures.locked_until - now)
        expected = self._password_of(agent_id)
        # Compared even for an unknown agent, so timing does not tell which ids exist.
        good = hmac.compare_digest((expected or "\0").encode(), password.encode())
        if expected is None or not good:
            reason = "unknown_agent" if expected is None else "bad_password"
            if expected is not None:
                self._fail(agent_id, now)
            raise SignInRefused(reason)
        self._failures.pop(agent_id, None)
        session = Session(token=secrets.token_urlsafe(32), agent_id=agent_id, tenant=self._tenant_of(agent_id),
                          last_seen=now)
        self._sessions[session.token] = session
        return session

    def _fail(self, agent_id: str, now: float) -> None:
        failures = self._failures.setdefault(agent_id, _Failures())
        failures.times = [t for t in failures.times if now - t < FAILURE_WINDOW_SECONDS] + [now]
        if len(failures.times) >= MAX_FAILURES:
            failures.locked_until = now + LOCK_SECONDS
            failures.times = []

    def session(self, token: str | None) -> Session | None:
        """The live session of this token (and it is seen now), or None."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self._idle:
            del self._sessions[token]
            return None
        session.last_seen = now
        return session

    def sign_out(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)
