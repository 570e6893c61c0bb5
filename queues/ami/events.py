"""AMI events as typed values, parsed from the header dicts at the edge.

Asterisk sends every event as ``Header: value`` lines; panoramisk hands them
over as a case-insensitive dict of strings. :func:`parse_event` turns that
dict into one frozen dataclass per event the engine acts on, with numbers
parsed, flags as booleans and each field under one name, so no consumer
reads a header, guesses a type or knows panoramisk. It does no I/O and never
raises: a header that is missing is ``""`` (text) or ``None`` (a number, a
flag, a time), a value that does not parse is ``None`` too, and an event the
engine does not follow is an :class:`OtherEvent` with its name.

AMI names, as Asterisk 22's app_queue and the generated dialplan send them
(checked against recorded sessions in ``tests/data/ami/``):

* every event may carry ``Timestamp`` (``timestampevents = yes``: Asterisk's
  clock, epoch seconds with microseconds); events about a channel carry its
  snapshot (``Channel``, ``Uniqueid``, ``Linkedid``, ``CallerIDNum``...);
  agent events carry the agent's channel again with a ``Dest`` prefix;
* trap: ``Priority`` in a channel snapshot is the channel's *dialplan*
  priority (the step of its extension), not the queue priority. Only
  ``QueueEntry`` (a QueueStatus reply) carries the queue priority, and only
  there is it parsed (:attr:`QueueEntry.priority`);
* ``QueueCallerAbandon.HoldTime`` is seconds waited (the docs say epoch);
  ``AgentRingNoAnswer.RingTime`` is milliseconds; ``AgentConnect`` has
  ``HoldTime`` and ``RingTime`` in seconds;
* the ``QueueMember`` entries of a QueueStatus reply name the member
  ``Name`` and its interface ``Location``; the member events call the same
  things ``MemberName`` and ``Interface``. Both parse to one
  :class:`MemberEvent` shape;
* older Asterisk versions sent a pause's reason as ``Reason`` rather than
  ``PausedReason``; both are read.

The user events are the generated dialplan's (``core.contract.UserEvent``);
their headers are named there too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from core.contract import Context, Header, UserEvent, canonical_uniqueid

__all__ = [
    "AgentCalled", "AgentComplete", "AgentConnect", "AgentDump", "AgentEvent", "AgentRingNoAnswer", "AmiEvent",
    "Announced", "CallEnded", "CallRouted", "CallStarted", "CallbackAnswered", "CallbackResult", "ChannelEvent",
    "CoreShowChannel", "DBGetTreeResponse", "MemberAdded", "MemberEvent", "MemberPause", "MemberRemoved",
    "MemberStatus", "OriginateResponse", "OtherEvent", "QueueCallerAbandon", "QueueCallerJoin",
    "QueueCallerLeave", "QueueEntry", "QueueExited", "QueueMember", "parse_event",
]


def _text(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value.__class__ is str:   # what AMI gives: returned as it is (the hot path)
        return value
    return "" if value is None else str(value)


def _float(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw if raw.__class__ is str else str(raw))   # float() ignores surrounding blanks
    except ValueError:   # "" and blanks too
        return None
    return value if math.isfinite(value) else None


def _int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(str(raw).strip())
    except ValueError:
        return None


def _flag(headers: Mapping[str, str], name: str) -> bool | None:
    """``1``/``0`` (and app_queue's ``true``/``false``, ``yes``/``no``); None when absent."""
    raw = headers.get(name)
    if raw is None:
        return None
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    return None


def _epoch(headers: Mapping[str, str], name: str) -> float | None:
    """An epoch time; ``0`` (app_queue's "never") is None."""
    value = _float(headers, name)
    return value if value is not None and value > 0 else None


# --- the base shapes -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AmiEvent:
    """What every event has: its name, Asterisk's time, and who delivered it.

    ``timestamp`` is None when the event had no (or no valid, positive)
    ``Timestamp``; ``timestamp_raw`` keeps what was sent, so that a consumer
    can say a malformed one was malformed. ``ref`` names one delivery of the
    event (the connection and a sequence number, given by the connection or
    by the re-sync that produced the event): a consumer that retries the
    same delivery after an error recognises its own earlier work by it.
    """

    name: str
    timestamp: float | None = None
    timestamp_raw: str = ""
    ref: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEvent(AmiEvent):
    """An event about a channel: its snapshot's identity."""

    uniqueid: str = ""
    linkedid: str = ""
    channel: str = ""
    caller_id: str = field(default="", repr=False)  # a caller's number: never logged unmasked


@dataclass(frozen=True, slots=True, kw_only=True)
class OtherEvent(AmiEvent):
    """An event the engine does not follow (``FullyBooted``, ``Newchannel``...)."""

    uniqueid: str = ""


# --- app_queue: callers --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerJoin(ChannelEvent):
    queue: str = ""
    position: int | None = None   # 1 = next to be answered
    count: int | None = None      # callers in the queue, this one included


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerLeave(ChannelEvent):
    queue: str = ""
    position: int | None = None
    count: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerAbandon(ChannelEvent):
    """Not a true abandon: app_queue also sends it on a timeout or an empty queue."""

    queue: str = ""
    position: int | None = None
    original_position: int | None = None
    hold_time: float | None = None  # seconds waited


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEntry(ChannelEvent):
    """One waiting caller in a QueueStatus reply (also fed to accounting after a re-sync)."""

    queue: str = ""
    position: int | None = None
    wait: int | None = None       # seconds since the caller's latest entry into Queue()
    priority: int | None = None   # the queue priority (QUEUE_PRIO), unlike a snapshot's Priority


# --- app_queue: agents ringing and talking --------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentEvent(ChannelEvent):
    """A queue call and the member it is offered to. The channel fields are
    the caller's; ``dest_uniqueid`` is the agent's channel of this ring."""

    queue: str = ""
    interface: str = ""
    member_name: str = ""
    dest_uniqueid: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentCalled(AgentEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRingNoAnswer(AgentEvent):
    ring_time_ms: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConnect(AgentEvent):
    hold_time: float | None = None   # seconds the caller waited
    ring_time: float | None = None   # seconds the agent's phone rang


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentComplete(AgentEvent):
    hold_time: float | None = None
    talk_time: float | None = None
    reason: str = ""                 # caller, agent, transfer


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDump(AgentEvent):
    """The agent hung up while the call was being announced to them."""


# --- app_queue: members -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberEvent(AmiEvent):
    """A queue member's state. ``paused`` is None when the event says nothing of it."""

    queue: str = ""
    interface: str = ""
    member_name: str = ""
    state_interface: str = ""
    penalty: str = ""
    paused: bool | None = None
    paused_reason: str = ""
    last_pause: float | None = None
    login_time: float | None = None
    last_call: float | None = None
    in_call: bool | None = None
    status: str = ""                 # the member's device state (1 not in use, 5 unavailable...)
    calls_taken: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberAdded(MemberEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberRemoved(MemberEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberPause(MemberEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberStatus(MemberEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMember(MemberEvent):
    """One member in a QueueStatus reply."""


# --- the generated dialplan's user events ---------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted(ChannelEvent):
    """``IvrCallStart``: a call answered on a hotline."""

    hotline: str = ""
    call_uid: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRouted(ChannelEvent):
    """``IvrRoute``: what the IVR learnt of a call (sent by replays; the live
    IVR writes the same facts itself)."""

    hotline: str = ""
    program: str = ""
    request_type: str = ""
    governorate: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(ChannelEvent):
    """``IvrCallEnd``: the caller's channel hung up (the hang-up handler), or
    a journal entry read back after an AMI outage (``source="journal"``)."""

    hotline: str = ""
    queue: str = ""          # the queue the caller was in, if any
    member: str = ""         # the agent's interface, once one was connected
    queue_status: str = ""
    call_uid: str = ""
    cause: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueExited(ChannelEvent):
    """``IvrQueueExit``: the caller left Queue() alive (timeout, full, callback...)."""

    queue: str = ""
    queue_status: str = ""
    call_uid: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackResult(ChannelEvent):
    """``IvrCallbackResult``: a callback placeholder left the queue (stage
    ``queue``) or the call to the citizen ended (stage ``dial``)."""

    callback_id: str = ""
    stage: str = ""
    status: str = ""
    member: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackAnswered(ChannelEvent):
    """``IvrCallbackAnswered``: the citizen answered a callback."""

    callback_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Announced(ChannelEvent):
    """``IvrAnnounced``: a position announcement finished playing."""

    queue: str = ""
    call_uid: str = ""
    status: str = ""


# --- answers to the engine's actions --------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginateResponse(AmiEvent):
    """The outcome of an asynchronous Originate."""

    action_id: str = ""
    response: str = ""
    reason: str = ""
    uniqueid: str = ""
    channel: str = ""

    @property
    def success(self) -> bool:
        return self.response.lower() == "success"


@dataclass(frozen=True, slots=True, kw_only=True)
class DBGetTreeResponse(AmiEvent):
    """One AstDB entry of a DBGetTree reply: ``/<family>/<key>`` and its value."""

    key: str = ""
    value: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreShowChannel(AmiEvent):
    """One live channel in a CoreShowChannels reply."""

    uniqueid: str = ""
    channel: str = ""


# --- the parser ------------------------------------------------------------------------------


def _base(headers: Mapping[str, str], name: str, ref: str) -> dict:
    raw = _text(headers, "Timestamp")
    ts = _float(headers, "Timestamp")
    return {"name": name, "timestamp": ts if ts is not None and ts > 0 else None, "timestamp_raw": raw,
            "ref": ref}


def _channel(headers: Mapping[str, str], name: str, ref: str) -> dict:
    return {**_base(headers, name, ref), "uniqueid": _text(headers, "Uniqueid"),
            "linkedid": _text(headers, "Linkedid"), "channel": _text(headers, "Channel"),
            "caller_id": _text(headers, "CallerIDNum")}


def _agent(headers: Mapping[str, str], name: str, ref: str) -> dict:
    return {**_channel(headers, name, ref), "queue": _text(headers, "Queue"),
            "interface": _text(headers, "Interface"), "member_name": _text(headers, "MemberName"),
            "dest_uniqueid": _text(headers, "DestUniqueid")}


def _member(headers: Mapping[str, str], name: str, ref: str) -> dict:
    return {
        **_base(headers, name, ref),
        "queue": _text(headers, "Queue"),
        # QueueStatus's QueueMember says Location and Name; the events Interface and MemberName.
        "interface": _text(headers, "Interface") or _text(headers, "Location"),
        "member_name": _text(headers, "MemberName") or _text(headers, "Name"),
        "state_interface": _text(headers, "StateInterface"),
        "penalty": _text(headers, "Penalty"),
        "paused": _flag(headers, "Paused"),
        "paused_reason": _text(headers, "PausedReason") or _text(headers, "Reason"),
        "last_pause": _epoch(headers, "LastPause"),
        "login_time": _epoch(headers, "LoginTime"),
        "last_call": _epoch(headers, "LastCall"),
        "in_call": _flag(headers, "InCall"),
        "status": _text(headers, "Status"),
        "calls_taken": _int(headers, "CallsTaken"),
    }


def _user(headers: Mapping[str, str], ref: str) -> AmiEvent:
    kind = _text(headers, "UserEvent")
    ch = _channel(headers, "UserEvent:" + kind, ref)
    h = lambda name: _text(headers, name)  # noqa: E731
    if kind == UserEvent.CALL_START:
        return CallStarted(**ch, hotline=h(Header.HOTLINE), call_uid=h(Header.CALL_UID))
    if kind == UserEvent.CALL_END:
        return CallEnded(**ch, hotline=h(Header.HOTLINE), queue=h(Header.QUEUE), member=h(Header.MEMBER),
                         queue_status=h(Header.QUEUE_STATUS), call_uid=h(Header.CALL_UID), cause=h(Header.CAUSE),
                         source=h(Header.SOURCE))
    if kind == UserEvent.ROUTE:
        return CallRouted(**ch, hotline=h(Header.HOTLINE), program=h(Header.PROGRAM),
                          request_type=h(Header.REQUEST_TYPE), governorate=h(Header.GOVERNORATE))
    if kind == UserEvent.QUEUE_EXIT:
        return QueueExited(**ch, queue=h(Header.QUEUE), queue_status=h(Header.QUEUE_STATUS),
                           call_uid=h(Header.CALL_UID))
    if kind == UserEvent.CALLBACK_RESULT:
        return CallbackResult(**ch, callback_id=h(Header.CALLBACK_ID), stage=h(Header.STAGE),
                              status=h(Header.STATUS), member=h(Header.MEMBER))
    if kind == UserEvent.CALLBACK_ANSWERED:
        return CallbackAnswered(**ch, callback_id=h(Header.CALLBACK_ID))
    if kind == UserEvent.ANNOUNCED:
        return Announced(**ch, queue=h(Header.QUEUE), call_uid=h(Header.CALL_UID), status=h(Header.STATUS))
    return OtherEvent(**_base(headers, "UserEvent:" + kind, ref), uniqueid=ch["uniqueid"])


def _queue_caller(cls):
    def parse(headers: Mapping[str, str], name: str, ref: str) -> AmiEvent:
        extra = {"queue": _text(headers, "Queue"), "position": _int(headers, "Position")}
        if cls is QueueCallerAbandon:
            extra.update(original_position=_int(headers, "OriginalPosition"),
                         hold_time=_float(headers, "HoldTime"))
        elif cls is QueueEntry:
            extra.update(wait=_int(headers, "Wait"), priority=_int(headers, "Priority"))
        else:
            extra["count"] = _int(headers, "Count")
        return cls(**_channel(headers, name, ref), **extra)
    return parse


def _agent_event(cls):
    def parse(headers: Mapping[str, str], name: str, ref: str) -> AmiEvent:
        extra = {}
        if cls is AgentRingNoAnswer:
            extra["ring_time_ms"] = _float(headers, "RingTime")
        elif cls is AgentConnect:
            extra.update(hold_time=_float(headers, "HoldTime"), ring_time=_float(headers, "RingTime"))
        elif cls is AgentComplete:
            extra.update(hold_time=_float(headers, "HoldTime"), talk_time=_float(headers, "TalkTime"),
                         reason=_text(headers, "Reason"))
        return cls(**_agent(headers, name, ref), **extra)
    return parse


def _member_event(cls):
    return lambda headers, name, ref: cls(**_member(headers, name, ref))


_PARSERS: dict[str, Callable[[Mapping[str, str], str, str], AmiEvent]] = {
    "QueueCallerJoin": _queue_caller(QueueCallerJoin),
    "QueueCallerLeave": _queue_caller(QueueCallerLeave),
    "QueueCallerAbandon": _queue_caller(QueueCallerAbandon),
    "QueueEntry": _queue_caller(QueueEntry),
    "AgentCalled": _agent_event(AgentCalled),
    "AgentRingNoAnswer": _agent_event(AgentRingNoAnswer),
    "AgentConnect": _agent_event(AgentConnect),
    "AgentComplete": _agent_event(AgentComplete),
    "AgentDump": _agent_event(AgentDump),
    "QueueMemberAdded": _member_event(MemberAdded),
    "QueueMemberRemoved": _member_event(MemberRemoved),
    "QueueMemberPause": _member_event(MemberPause),
    "QueueMemberStatus": _member_event(MemberStatus),
    "QueueMember": _member_event(QueueMember),
    "OriginateResponse": lambda h, name, ref: OriginateResponse(
        **_base(h, name, ref), action_id=_text(h, "ActionID"), response=_text(h, "Response"),
        reason=_text(h, "Reason"), uniqueid=_text(h, "Uniqueid"), channel=_text(h, "Channel")),
    "DBGetTreeResponse": lambda h, name, ref: DBGetTreeResponse(**_base(h, name, ref), key=_text(h, "Key"),
                                                                value=_text(h, "Val")),
    "CoreShowChannel": lambda h, name, ref: CoreShowChannel(**_base(h, name, ref), uniqueid=_text(h, "Uniqueid"),
                                                            channel=_text(h, "Channel")),
}


def parse_event(headers: Mapping[str, str], *, ref: str = "") -> AmiEvent:
    """The typed form of one event's headers; never raises.

    >>> parse_event({"Event": "QueueCallerJoin", "Queue": "forsa", "Uniqueid": "1.2", "Position": "3"}).position
    3
    >>> parse_event({"Event": "Newchannel"}).name
    'Newchannel'
    """
    headers = _placeholders_named(headers)
    name = _text(headers, "Event")
    if name == "UserEvent":
        return _user(headers, ref)
    parser = _PARSERS.get(name)
    if parser is None:
        return OtherEvent(**_base(headers, name, ref), uniqueid=_text(headers, "Uniqueid"))
    return parser(headers, name, ref)


_HOLD = f"@{Context.CALLBACK_HOLD}-"


def _placeholders_named(headers: Mapping[str, str]) -> Mapping[str, str]:
    """A callback placeholder's Uniqueid (and DestUniqueid) by its channel's
    name (``core.contract.canonical_uniqueid``): the engine places them by
    call file, which cannot choose a Uniqueid. Other events pass untouched."""
    changed: dict[str, str] = {}
    for channel_header, id_header in (("Channel", "Uniqueid"), ("DestChannel", "DestUniqueid")):
        channel = _text(headers, channel_header)
        if _HOLD in channel:
            canonical = canonical_uniqueid(channel, _text(headers, id_header))
            if canonical != _text(headers, id_header):
                changed[id_header] = canonical
    return {**headers, **changed} if changed else headers
