"""AMI actions the engine sends, and their replies, as typed values (no I/O).

Each action is a frozen dataclass that knows its headers and how Asterisk
answers it: with one ``Response`` message, or with a ``Response`` followed
by a list of events ending in ``...Complete`` (``lists_events``). The
connection (``queues.ami.connection``) sends it and hands the raw answer to
:func:`parse_reply`, so the consumers get a :class:`Reply` with a success
flag, a message and typed events, and never see panoramisk.

Answers known to misbehave, handled here:

* panoramisk decides by itself whether an answer is a list, and guesses
  wrong for ``QueueAdd``: Asterisk's "Added interface to queue" looks like
  the start of an event list, and the action never resolves. Every action
  here says whether it lists events, and the connection passes that on
  (``as_list``), so no guess is made;
* an asynchronous ``Originate`` is answered "Originate successfully queued",
  which panoramisk also takes for a list; its outcome comes later, as an
  ``OriginateResponse`` event;
* the benign refusals ("Unable to add interface: Already there", "Unable to
  remove interface: Not there", "Interface not found", "No such queue") are
  ordinary ``Response: Error`` replies: :meth:`Reply.refused_because` tells
  them apart without string matching in the callers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from core.contract import Context

from .events import AmiEvent, parse_event

__all__ = [
    "Action", "CoreShowChannels", "DBGetTree", "Hangup", "Originate", "Ping", "QueueAdd", "QueuePause",
    "QueueRemove", "QueueStatus", "Reply", "parse_reply", "AmiClient", "AmiTimeout", "NoAmi",
]

Headers = dict[str, "str | list[str]"]


class AmiTimeout(TimeoutError):
    """An action got no complete answer in time."""


@dataclass(frozen=True, slots=True)
class Action:
    name: ClassVar[str] = ""
    lists_events: ClassVar[bool] = False

    def headers(self) -> Headers:
        return {"Action": self.name}


@dataclass(frozen=True, slots=True)
class Ping(Action):
    name: ClassVar[str] = "Ping"


@dataclass(frozen=True, slots=True)
class QueueStatus(Action):
    """Every queue's members (``QueueMember``) and waiting callers (``QueueEntry``)."""

    name: ClassVar[str] = "QueueStatus"
    lists_events: ClassVar[bool] = True
    queue: str = ""

    def headers(self) -> Headers:
        out: Headers = {"Action": self.name}
        if self.queue:
            out["Queue"] = self.queue
        return out


@dataclass(frozen=True, slots=True)
class DBGetTree(Action):
    """The AstDB entries of one family (``DBGetTreeResponse`` events)."""

    name: ClassVar[str] = "DBGetTree"
    lists_events: ClassVar[bool] = True
    family: str = ""

    def headers(self) -> Headers:
        return {"Action": self.name, "Family": self.family}


@dataclass(frozen=True, slots=True)
class CoreShowChannels(Action):
    """Every live channel (``CoreShowChannel`` events)."""

    name: ClassVar[str] = "CoreShowChannels"
    lists_events: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class QueueAdd(Action):
    name: ClassVar[str] = "QueueAdd"
    queue: str = ""
    interface: str = ""
    penalty: int = 0
    member_name: str = ""
    state_interface: str = ""
    paused: bool = False

    def headers(self) -> Headers:
        return {"Action": self.name, "Queue": self.queue, "Interface": self.interface, "Penalty": str(self.penalty),
                "MemberName": self.member_name, "StateInterface": self.state_interface or self.interface,
                "Paused": "true" if self.paused else "false"}


@dataclass(frozen=True, slots=True)
class QueueRemove(Action):
    name: ClassVar[str] = "QueueRemove"
    queue: str = ""
    interface: str = ""

    def headers(self) -> Headers:
        return {"Action": self.name, "Queue": self.queue, "Interface": self.interface}


@dataclass(frozen=True, slots=True)
class QueuePause(Action):
    """Pause or resume a member; without ``queue``, in every queue at once."""

    name: ClassVar[str] = "QueuePause"
    interface: str = ""
    paused: bool = True
    reason: str = ""
    queue: str = ""

    def headers(self) -> Headers:
        out: Headers = {"Action": self.name, "Interface": self.interface, "Paused": "true" if self.paused else "false"}
        if self.queue:
            out["Queue"] = self.queue
        if self.reason:
            out["Reason"] = self.reason
        return out


# Local/<exten>@<context>[/n]: the only channel the engine originates.
_LOCAL_CHANNEL = re.compile(r"Local/([0-9A-Za-z]+)@([a-z-]+)(/n)?")


@dataclass(frozen=True, slots=True)
class Originate(Action):
    """A call from a channel into a context of the engine's dialplan.

    The engine places it as a call file (``queues.spool``), not by AMI: its
    AMI user has no ``originate`` class, which would let anyone holding the
    secret call any channel, the carrier's included (Asterisk cannot limit
    it to some channels). ``timeout_ms`` is how long the channel may take to
    answer (the call file's ``WaitTime``). ``variables``: ``NAME=value``,
    one ``Setvar`` line each, so no value is ever split on a comma.
    :meth:`headers` is the same call as an AMI Originate (the tests' record).
    """

    name: ClassVar[str] = "Originate"
    channel: str = ""
    context: str = ""
    exten: str = "s"
    priority: int = 1
    timeout_ms: int = 30_000
    variables: tuple[str, ...] = ()
    action_id: str = ""

    def __post_init__(self) -> None:
        # Least privilege, on the engine's side too: the engine only ever
        # originates a Local channel into its own originate-only contexts
        # (which check the number before any Dial), with no application; an
        # Originate built otherwise is a bug, refused before it is placed.
        m = _LOCAL_CHANNEL.fullmatch(self.channel)
        if m is None or m.group(2) not in Context.ORIGINATE_ONLY or self.context not in Context.ORIGINATE_ONLY:
            raise ValueError(f"Originate refused: {self.channel!r} into {self.context!r} is not a Local channel "
                             "between the engine's originate-only contexts")
        if not re.fullmatch(r"[0-9A-Za-z]+", self.exten) or any(
                "=" not in v or not v.split("=", 1)[0].isidentifier() or any(c in v for c in "\r\n\0")
                for v in self.variables):
            # A line break in a value would add lines of its own to the call file.
            raise ValueError("Originate refused: an extension or a variable that a call file cannot carry")

    def headers(self) -> Headers:
        out: Headers = {"Action": self.name}
        if self.action_id:
            out["ActionID"] = self.action_id
        out.update({"Channel": self.channel, "Context": self.context, "Exten": self.exten,
                    "Priority": str(self.priority), "Async": "true", "Timeout": str(self.timeout_ms),
                    "Variable": list(self.variables)})
        return out

    def call_file(self) -> str:
        """The call as Asterisk's pbx_spool reads it (one attempt, no archive)."""
        lines = [f"Channel: {self.channel}", f"Context: {self.context}", f"Extension: {self.exten}",
                 f"Priority: {self.priority}", f"WaitTime: {max(1, -(-self.timeout_ms // 1000))}",
                 "MaxRetries: 0", "Archive: no"]
        lines += [f"Setvar: {v}" for v in self.variables]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Hangup(Action):
    """Hang up channels; ``channel`` may be a POSIX regex between slashes."""

    name: ClassVar[str] = "Hangup"
    channel: str = ""

    def headers(self) -> Headers:
        return {"Action": self.name, "Channel": self.channel}


@dataclass(frozen=True, slots=True)
class Reply:
    """Asterisk's answer: ``ok`` for ``Response: Success``; ``events`` for list actions."""

    ok: bool
    message: str = ""
    events: tuple[AmiEvent, ...] = field(default=())

    def refused_because(self, *reasons: str) -> bool:
        """A refusal whose message contains one of ``reasons`` (case-insensitive)."""
        text = self.message.lower()
        return not self.ok and any(r.lower() in text for r in reasons)


def _messages(raw: Any) -> list[Mapping[str, Any]]:
    if raw is None:
        return []
    if isinstance(raw, (list, tuple)):
        return [m for m in raw if m is not None]
    return [raw]


def _get(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    if value is None:
        return ""
    return str(value)


def parse_reply(action: Action, raw: Any, *, ref: str = "") -> Reply:
    """The typed form of panoramisk's answer (one message or a list of them)."""
    messages = _messages(raw)
    response = next((m for m in messages if _get(m, "Response")), messages[0] if messages else {})
    ok = _get(response, "Response").lower() in ("success", "follows", "goodbye")
    events: Iterable[AmiEvent] = ()
    if action.lists_events:
        events = tuple(parse_event({str(k): str(v) for k, v in dict(m).items()}, ref=f"{ref}:{n}" if ref else "")
                       for n, m in enumerate(messages) if _get(m, "Event"))
    return Reply(ok=ok, message=_get(response, "Message"), events=tuple(events))


class AmiClient(Protocol):
    """What the consumers need of the connection: send an action, get its reply.

    Raises ``ConnectionError`` when AMI is not logged in and
    :class:`AmiTimeout` (a ``TimeoutError``) when no complete
    answer came in time."""

    async def send(self, action: Action, *, timeout: float | None = None) -> Reply: ...


class NoAmi:
    """For a process without Asterisk (``ivr serve --no-ami``, ``ivr agents list``):
    every action fails as "AMI unreachable"."""

    logged_in = None

    async def send(self, action: Action, *, timeout: float | None = None) -> Reply:
        raise ConnectionError("no AMI connection")
