"""The names the generated dialplan and the engine share, defined once.

Asterisk and the engine meet in a handful of places: the FastAGI routes the
dialplan calls, the channel variables one side sets for the other to read,
the user events the dialplan sends over AMI (and their headers), the AstDB
family of the call journal, the contexts the engine originates into, the ids
of the channels it creates, and the folder the prompts live in.
``dialplans/generate.py`` writes every one of them from this module and the
engine reads them from here, so a name cannot change on one side only
(``tests/unit/test_contract.py`` reads the generated dialplan back against
this module).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Final

# --- prompts -----------------------------------------------------------------------------------

# Prompts live under sounds/<language>/ivr/; Asterisk adds the language.
PROMPT_DIR: Final = "ivr"
# The codecs every SIP endpoint allows (carrier and agents: the generated
# pjsip.conf's `allow=`). Each prompt and the music on hold is written in each
# of them beside its .wav (ivr/prompts.py): Asterisk opens the file whose
# format is the channel's, so playback on a G.711 call needs no transcoding.
ENDPOINT_CODECS: Final = ("ulaw", "alaw")


def prompt_path(prompt_id: str) -> str:
    """The sound file name Asterisk plays for a prompt id (no language, no extension)."""
    return f"{PROMPT_DIR}/{prompt_id}"


# --- FastAGI routes: agi://host:port/<route>,<args> ------------------------------------------------


class Route:
    HOTLINE: Final = "hotline"     # [ivr-answer]: the menus; arg 1 the hotline number
    SURVEY: Final = "survey"       # [ivr-survey]: the post-call rating; arg 1 the programme
    AGENT: Final = "agent"         # [agents]: feature codes; action, endpoint, reason code, address
    CALLBACK: Final = "callback"   # [ivr-queue-keys]: the callback key in a queue; arg 1 the queue
    OVERFLOW: Final = "overflow"   # [ivr-overflow]: a queue's limit reached; queue, QUEUESTATUS
    SERVICE_CHECK: Final = "service_check"   # [ivr-service-check]: reference, tenant

    ALL: Final = (HOTLINE, SURVEY, AGENT, CALLBACK, OVERFLOW, SERVICE_CHECK)


# The key the dialplan puts in every FastAGI URL (``agi://host:port/<route>?key=<secret>``):
# the engine serves only the Asterisk that holds it, not any local process
# that can open a socket on the loopback (ivr.agi.fastagi).
AGI_KEY_PARAM: Final = "key"


# --- deadlines on the engine -----------------------------------------------------------------------

# Asterisk waits for a FastAGI peer's next command with no time limit, so a
# hung engine (stopped, deadlocked, swapping) would hold a caller in silence.
# Every AGI() runs under the channel's absolute timeout: the dialplan arms it
# for the engine's first command, the engine re-arms it before each step it
# asks Asterisk for (the step's longest length plus the slack) and shortens
# it to the slack when a step ends early. When it fires, AGI() returns at
# once (AGIEXITONHANGUP) and the context's ``T`` extension sends the caller
# on, to the queue the IVR chose or the hotline's fallback.
DEADLINE_VARIABLE: Final = "TIMEOUT(absolute)"
AGI_FIRST_COMMAND_SECONDS: Final = 6
AGI_STEP_SLACK_SECONDS: Final = 4


# --- contexts ------------------------------------------------------------------------------------


class Context:
    FROM_CARRIER: Final = "from-carrier"
    ANSWER: Final = "ivr-answer"
    QUEUE: Final = "ivr-queue"
    QUEUE_SKILLS: Final = "ivr-queue-skills"
    OVERFLOW: Final = "ivr-overflow"
    QUEUE_KEYS: Final = "ivr-queue-keys"
    SURVEY: Final = "ivr-survey"
    AGENT_PREDIAL: Final = "ivr-agent-predial"
    AGENT_CONNECT: Final = "ivr-agent-connect"
    HANGUP: Final = "ivr-hangup"
    CARRIER_OUT_INBOUND: Final = "carrier-out-inbound"
    # Only the engine's call files (queues.spool) enter these.
    CALLBACK_HOLD: Final = "ivr-callback-hold"
    CALLBACK_DIAL: Final = "ivr-callback-dial"
    CALLBACK_END: Final = "ivr-callback-end"
    CALLBACK_ANSWERED: Final = "ivr-callback-answered"
    ANNOUNCE: Final = "ivr-announce"
    ANNOUNCE_SPY: Final = "ivr-announce-spy"
    # The service check: ;2 of Local/<reference>@ivr-service-check-dial rings
    # the citizen, ;1 runs the question once they answer.
    SERVICE_CHECK_DIAL: Final = "ivr-service-check-dial"
    SERVICE_CHECK: Final = "ivr-service-check"
    # Agents' softphones.
    AGENTS: Final = "agents"
    AGENTS_DONE: Final = "agents-done"

    ORIGINATE_ONLY: Final = (CALLBACK_HOLD, CALLBACK_DIAL, CALLBACK_END, CALLBACK_ANSWERED, ANNOUNCE, ANNOUNCE_SPY,
                             SERVICE_CHECK_DIAL, SERVICE_CHECK)


# --- channel variables ---------------------------------------------------------------------------


def inherited(variable: str) -> str:
    """Asterisk's ``__`` prefix: the variable follows the channel into every
    channel it creates (the agent's, through Queue()), so the agent side and
    the hang-up handler see it too."""
    return "__" + variable


class Var:
    # Set by the engine for the dialplan.
    QUEUE: Final = "IVR_QUEUE"                    # the queue the IVR chose
    PRIORITY: Final = "IVR_PRIORITY"              # the caller's queue priority (unset: normal)
    ACTION: Final = "IVR_ACTION"                  # see Action below
    PROGRAM: Final = "IVR_PROGRAM"                # inherited: the agent's phone and the survey see it
    REQUEST_TYPE: Final = "IVR_REQUEST_TYPE"      # inherited
    GOVERNORATE: Final = "IVR_GOVERNORATE"        # inherited
    CALLER_NAME: Final = "CALLERID(name)"         # what the agent's softphone shows
    QUEUE_POSITION: Final = "IVR_QUEUE_POSITION"  # back from the callback menu: the caller's place
    QUEUE_TIMEOUT: Final = "IVR_QUEUE_TIMEOUT"    # ... and the rest of their max wait
    # Set by the dialplan (read back by the hang-up handler and the journal).
    HOTLINE: Final = "IVR_HOTLINE"
    FALLBACK: Final = "IVR_FALLBACK"
    AGI_MODE: Final = "IVR_AGI_MODE"
    CALL_UID: Final = "IVR_CALL_UID"
    IN_QUEUE: Final = "IVR_IN_QUEUE"
    # Originate variables of a callback placeholder ([ivr-callback-hold] / [ivr-callback-dial]).
    CB_QUEUE: Final = "IVR_CB_QUEUE"
    CB_NUMBER: Final = "IVR_CB_NUMBER"
    CB_RING: Final = "IVR_CB_RING"
    CB_TIMEOUT: Final = "IVR_CB_TIMEOUT"
    CB_POSITION: Final = "IVR_CB_POSITION"
    # Originate variables of an announcement ([ivr-announce] / [ivr-announce-spy]).
    ANNOUNCE_FILES: Final = "IVR_ANNOUNCE_FILES"
    ANNOUNCE_TARGET: Final = "IVR_ANNOUNCE_TARGET"
    ANNOUNCE_QUEUE: Final = "IVR_ANNOUNCE_QUEUE"
    ANNOUNCE_UID: Final = "IVR_ANNOUNCE_UID"
    # Originate variables of a service check ([ivr-service-check-dial] / [ivr-service-check]).
    CHECK_NUMBER: Final = "IVR_CHECK_NUMBER"
    CHECK_RING: Final = "IVR_CHECK_RING"
    CHECK_TENANT: Final = "IVR_CHECK_TENANT"


class IvrAction:
    """Values of ``IVR_ACTION``: what the dialplan does after the engine's route."""

    CLOSED: Final = "closed"       # outside opening hours: the call ends
    CALLBACK: Final = "callback"   # a callback holds the caller's place: the call ends
    DONE: Final = "done"           # the IVR served the caller (a follow-up by reference): the call ends


# --- user events (UserEvent over AMI) ------------------------------------------------------------


class UserEvent:
    CALL_START: Final = "IvrCallStart"
    CALL_END: Final = "IvrCallEnd"
    QUEUE_EXIT: Final = "IvrQueueExit"
    CALLBACK_RESULT: Final = "IvrCallbackResult"
    CALLBACK_ANSWERED: Final = "IvrCallbackAnswered"
    ANNOUNCED: Final = "IvrAnnounced"
    # Never sent by the dialplan: a replayed month (app/simulate/month.py) says
    # with it what the live IVR writes to the call's facts itself.
    ROUTE: Final = "IvrRoute"


# --- AMI events the engine follows ---------------------------------------------------------------

# The only events Asterisk sends the engine's AMI user (manager.conf
# ``eventfilter``, dialplans/generate.py): the ones queues/ami/events.py
# parses for a consumer (queue callers, agents, members, the dialplan's user
# events, an Originate's outcome). Everything else its read classes cover
# (Newchannel, Newstate, Newexten, VarSet, Hangup, DialBegin, BridgeEnter,
# MusicOnHoldStart, RTCP... dozens per call) the engine would read, parse
# and drop. The answers to its actions (QueueStatus's QueueEntry and
# QueueMember, DBGetTreeResponse, CoreShowChannel) are replies, not events:
# filters do not apply to them. tests/unit/test_ami_event_filter.py keeps the two
# lists in step.
ENGINE_AMI_EVENTS: Final = (
    "QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon",
    "AgentCalled", "AgentRingNoAnswer", "AgentConnect", "AgentComplete", "AgentDump",
    "QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPause", "QueueMemberStatus",
    "UserEvent", "OriginateResponse",
)


class Header:
    """The headers of the user events."""

    HOTLINE: Final = "Hotline"
    CALL_UID: Final = "CallUid"
    QUEUE: Final = "Queue"
    MEMBER: Final = "Member"
    QUEUE_STATUS: Final = "QueueStatus"
    CAUSE: Final = "Cause"
    CALLBACK_ID: Final = "CallbackId"
    STAGE: Final = "Stage"
    STATUS: Final = "Status"
    PROGRAM: Final = "Program"
    REQUEST_TYPE: Final = "RequestType"
    GOVERNORATE: Final = "Governorate"
    SOURCE: Final = "Source"   # "journal" on an IvrCallEnd read back from AstDB


# A caller going back to the queue from the callback menu (with or without the
# engine) always gets at least this long before the overflow offer comes again.
MIN_QUEUE_TIMEOUT_SECONDS: Final = 30

# IvrQueueExit's QueueStatus when the caller left for a registered callback.
QUEUE_STATUS_CALLBACK: Final = "CALLBACK"
# IvrCallbackResult's stages.
STAGE_QUEUE: Final = "queue"
STAGE_DIAL: Final = "dial"
# DIALSTATUS the dialplan reports for a number it refused to dial.
DIAL_INVALID_NUMBER: Final = "INVALIDNUMBER"


# --- the call journal in AstDB -------------------------------------------------------------------

# One family per UTC day-of-month and hour: ``<JOURNAL_FAMILY><%d%H>``; the
# hang-up handler drops the families three and four hours old itself.
JOURNAL_FAMILY: Final = "ivrjournal"
JOURNAL_HOURS_KEPT: Final = 3
JOURNAL_SEPARATOR: Final = "|"


def journal_family(at: datetime) -> str:
    return f"{JOURNAL_FAMILY}{at.astimezone(timezone.utc):%d%H}"


def journal_families(now: datetime | None = None) -> list[str]:
    """The families that may hold entries now, newest first."""
    now = now or datetime.now(timezone.utc)
    return [journal_family(now - timedelta(hours=h)) for h in range(JOURNAL_HOURS_KEPT)]


# --- channels the engine creates -----------------------------------------------------------------

# A queued callback is a Local channel pair: ``;2`` (cbq<id>a<n>) waits in the
# queue in the citizen's place, ``;1`` (cbd<id>a<n>) calls the citizen once an
# agent answers. ``n`` is the placement (docs/distribution.md).
PLACEHOLDER_PREFIX: Final = "cbq"
_PLACEHOLDER_ID = re.compile(r"^cb([dq])(\d+)a(\d+)$")


def dial_channel_id(callback_id: str, placement: int) -> str:
    """``;1`` side of the placeholder: runs [ivr-callback-dial] once an agent answers."""
    return f"cbd{callback_id}a{placement}"


def hold_channel_id(callback_id: str, placement: int) -> str:
    """``;2`` side of the placeholder: waits in Queue() in the caller's place."""
    return f"{PLACEHOLDER_PREFIX}{callback_id}a{placement}"


def placeholder_ref(uniqueid: str) -> tuple[str, str, int] | None:
    """``cbq17a2`` -> ("q", "17", 2); anything else -> None."""
    m = _PLACEHOLDER_ID.match(uniqueid or "")
    if m is None:
        return None
    return m.group(1), m.group(2), int(m.group(3))


def is_placeholder(uniqueid: str) -> bool:
    return (uniqueid or "").startswith(PLACEHOLDER_PREFIX)


def placeholder_key(callback_id: str, placement: int) -> str:
    """The extension a placement's Local channel pair is named after:
    ``Local/17a2@ivr-callback-hold-0000001f;1`` and ``;2`` are callback 17's
    second placement. Asterisk keeps a channel's name whoever created it (a
    call file cannot choose its Uniqueid, AMI Originate could), so the
    placeholders are known by their names (:func:`canonical_uniqueid`)."""
    return f"{callback_id}a{placement}"


def split_placeholder_key(key: str) -> tuple[str, int | None]:
    """``17a2`` -> ("17", 2); ``17`` -> ("17", None) (a placement not said)."""
    m = re.fullmatch(r"(\d+)a(\d+)", key or "")
    return (m.group(1), int(m.group(2))) if m else (key, None)


_PLACEHOLDER_CHANNEL = re.compile(rf"^Local/(\d+)a(\d+)@{re.escape(Context.CALLBACK_HOLD)}-[0-9a-f]+;([12])$")


def canonical_uniqueid(channel: str, uniqueid: str) -> str:
    """A placeholder's channel gets the same id whatever Uniqueid Asterisk
    gave it: ``;2`` (in the queue) ``cbq<id>a<n>``, ``;1`` (dials the
    citizen) ``cbd<id>a<n>``; every other channel keeps its Uniqueid."""
    m = _PLACEHOLDER_CHANNEL.match(channel or "")
    if m is None:
        return uniqueid
    callback_id, placement, side = m.group(1), int(m.group(2)), m.group(3)
    return hold_channel_id(callback_id, placement) if side == "2" else dial_channel_id(callback_id, placement)


def announce_exten(uid: str) -> str:
    """The [ivr-announce] extension for a caller: the uid's digits
    (``1732467000.42`` -> ``173246700042``), a digit pattern the dialplan
    matches and a name a Hangup regex can find."""
    digits = re.sub(r"\D", "", uid)
    if not digits:
        raise ValueError(f"uid {uid!r} has no digits")
    return digits
