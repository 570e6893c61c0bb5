"""The agent desk's domain errors; ``result`` labels each in ivr_agent_actions_total."""

from __future__ import annotations

from collections.abc import Iterable

from core.configuration.model import PauseReason

class AgentError(Exception):
    """A request the desk refused; ``result`` labels it in ivr_agent_actions_total."""

    result = "error"


class UnknownAgent(AgentError):
    result = "unknown_agent"


class UnknownPauseReason(AgentError):
    result = "unknown_reason"

    def __init__(self, reason: str, valid: Iterable[PauseReason]):
        self.reason = reason
        self.valid = tuple(valid)
        super().__init__(f"unknown pause reason {reason!r}; valid: "
                         + ", ".join(f"{r.code}={r.id}" for r in self.valid))


class NotLoggedIn(AgentError):
    result = "not_logged_in"


class AlreadyLoggedIn(AgentError):
    """Logged in already, from the same softphone (another one is a move, not an error)."""

    result = "already_logged_in"


class AsteriskError(AgentError):
    """Asterisk could not do it: the caller says "service unavailable"."""


class AsteriskUnavailable(AsteriskError):
    result = "unavailable"


class AsteriskRefused(AsteriskError):
    """AMI answered with an error we do not expect (e.g. "No such queue": the
    configuration was changed without ``ivr setup``)."""

    result = "refused"
