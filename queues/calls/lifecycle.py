"""A call's life, as explicit states and one pure function per transition.

States (:class:`CallState`), read off the call's facts by :func:`state_of`::

    in_ivr --joined--> queued --rang--> ringing --connected--> connected --completed--> wrapup
      |                  |  ^             |                                              |
      |      left alive  v  | joined      | (no answer: still queued)                    |
      |   (timeout, full,   |             v                                              |
      |    callback menu) in_ivr        queued                                           |
      +------------------------------+----------------------------------------------+---+--> ended(outcome)

The facts are a flat hash of strings per call (``queues.calls.store``),
written by the IVR (hotline, program, request_type, governorate, priority)
and by these transitions. A transition never reads or writes anything: it
takes the facts and what the event says, and returns a :class:`Step`, the
facts to *mark* (set once: the first delivery of a fact wins, whichever
worker saw it) and the facts to *set*. The store applies a step atomically
and says which marks were new; accounting (``queues.calls.accounting``)
counts exactly those.

AMI events can arrive late or twice (a re-sync after an outage replays the
waiting callers and the dialplan's journal of ended calls), so every
transition is total: from any state it records what its event proves. An
``IvrCallEnd`` after an outage may thus prove the offer and the answer that
were missed; a callback answered after its call ended is an answer too.

Facts written here (times are epoch seconds with milliseconds, as text):

==================  ===================================================================
``received``        when the call reached a hotline (IvrCallStart); "" if only inferred
``offered:<q>``     when it joined queue q ("" when the join was missed)
``in_queue``        the queue it waits in now ("" once it left)
``ringing:<q>``     when an agent's phone first rang for it in q
``answered:<q>``    when an agent connected in q
``wait``            seconds from the join to the answer or the hang-up
``talk_end``        when the conversation ended (AgentComplete)
``exit:<q>``        why it left q alive (QUEUESTATUS); ``last_exit`` = q
``callback``        a callback holds its place (queue, overflow, closed)
``abandoned:<q>``   abandoned or short_abandoned in q
``ended``           when the caller hung up ("" when unknown: a journal entry)
``recording``       the worker that claimed writing the call record
``recorded``        the record's outcome, once written
==================  ===================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from core.citizens.governorates import LABEL_VALUES as GOVERNORATE_LABELS
from core.citizens.governorates import UNKNOWN as UNKNOWN_GOVERNORATE
from metrics.registry import NO_REQUEST_TYPE, UNKNOWN_HOTLINE

# A duration longer than this is a clock jump, not a wait.
MAX_PLAUSIBLE_SECONDS = 86400.0


class CallState(str, Enum):
    IN_IVR = "in_ivr"
    QUEUED = "queued"
    RINGING = "ringing"
    CONNECTED = "connected"
    WRAPUP = "wrapup"
    ENDED = "ended"


def _float(value: str | None) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def stamp(t: float | None) -> str:
    return "" if t is None else f"{t:.3f}"


def _queues_with(facts: Mapping[str, str], prefix: str) -> list[str]:
    return [k[len(prefix):] for k in facts if k.startswith(prefix)]


def state_of(facts: Mapping[str, str]) -> CallState:
    """The call's state from its facts."""
    if "ended" in facts:
        return CallState.ENDED
    if _queues_with(facts, "answered:"):
        return CallState.WRAPUP if "talk_end" in facts else CallState.CONNECTED
    queue = facts.get("in_queue", "")
    if queue:
        return CallState.RINGING if f"ringing:{queue}" in facts else CallState.QUEUED
    return CallState.IN_IVR


@dataclass(frozen=True)
class Step:
    """What one transition records: ``marks`` set once, ``sets`` written."""

    marks: dict[str, str] = field(default_factory=dict)
    sets: dict[str, str] = field(default_factory=dict)


# --- the transitions --------------------------------------------------------------------------


def arrived(facts: Mapping[str, str], *, hotline: str, at: float) -> Step:
    """IvrCallStart: the call reached a hotline and was answered."""
    return Step(marks={"received": stamp(at)}, sets={"hotline": hotline})


def routed(facts: Mapping[str, str], **known: str) -> Step:
    """IvrRoute (replays): what the IVR learnt of the call."""
    return Step(sets={k: v for k, v in known.items() if v})


def joined(facts: Mapping[str, str], *, queue: str, at: float) -> Step:
    """QueueCallerJoin (or QueueEntry after a re-sync): the call waits in ``queue``."""
    return Step(marks={f"offered:{queue}": stamp(at)}, sets={"in_queue": queue})


def rang(facts: Mapping[str, str], *, queue: str, at: float) -> Step:
    """AgentCalled: an agent's phone rings for the call."""
    return Step(marks={f"ringing:{queue}": stamp(at)})


def connected(facts: Mapping[str, str], *, queue: str, at: float) -> Step:
    """AgentConnect: an agent took the call."""
    return Step(marks={f"answered:{queue}": stamp(at)}, sets={"in_queue": ""})


def completed(facts: Mapping[str, str], *, at: float) -> Step:
    """AgentComplete: the conversation ended (the caller may stay for the survey)."""
    return Step(marks={"talk_end": stamp(at)})


def left_queue(facts: Mapping[str, str], *, queue: str, status: str, callback: bool) -> Step:
    """IvrQueueExit: the caller left ``queue`` alive (timeout, full, a callback...): not an abandon."""
    # The dialplan sends it after Queue() returned, before the caller enters
    # another queue: the caller waits nowhere now.
    sets = {f"exit:{queue}": status, "last_exit": queue, "in_queue": ""}
    return Step(marks={"callback": "queue"} if callback else {}, sets=sets)


@dataclass(frozen=True)
class Ending:
    """What IvrCallEnd proves, decided from the facts before it: the step,
    and the queue the caller was in (if any)."""

    step: Step
    in_queue: str
    recovered_arrival: bool = False
    recovered_offer: bool = False
    recovered_answer: bool = False
    abandon: str = ""   # abandoned / short_abandoned, when the caller gave up waiting
    wait: float | None = None
    skew: float | None = None
    known_queue: bool = True


def ended(facts: Mapping[str, str], *, queue: str, member: str, hotline: str, at: float | None,
          answer_at: float, short_abandon_seconds: float, known_queue: bool) -> Ending:
    """IvrCallEnd: the caller's channel hung up (``at`` None: when is unknown).

    ``queue``: the queue the dialplan says the caller was in; ``member``: the
    agent's interface once one was connected. An offer or an answer whose own
    event was missed (AMI down) is proven here (a missed answer is put at
    ``answer_at``); a caller still in a queue with no agent connected gave up
    waiting (an abandon, short within ``short_abandon_seconds``; a wait of
    unknown length is never short).
    """
    # What the end proves is among its marks (set once) when it is missing,
    # and also when the facts hold exactly what this end would write: then
    # this very delivery may have written it (a retry after its reply was
    # lost), and the mark is new again for it alone and counts then, once
    # (made by another delivery, it counts nothing). The call's own events
    # write other values (a time), so an end normally carries neither the
    # arrival nor the offer; the answer, below, it always carries.
    marks = {"ended": stamp(at)}
    recovered_arrival = bool(hotline) and "received" not in facts
    if hotline and facts.get("received", "") == "":
        marks["received"] = ""
        marks["hotline"] = facts.get("hotline", hotline)
    if queue and not known_queue:
        return Ending(Step(marks=marks, sets={"in_queue": ""}), in_queue="", recovered_arrival=recovered_arrival,
                      known_queue=False)
    in_queue = queue
    if not in_queue and not member and not facts.get("callback"):
        # Left a queue alive (its max wait) and hung up during the offer
        # that followed: still a caller who gave up waiting.
        in_queue = last_exited_queue(facts)
    recovered_offer = recovered_answer = False
    abandon, wait, skew = "", None, None
    if in_queue:
        offer, answer = f"offered:{in_queue}", f"answered:{in_queue}"
        # An offer missed during an AMI outage: when the caller joined is
        # unknown (an abandon then counts in full, never short).
        recovered_offer = offer not in facts
        if facts.get(offer, "") == "":
            marks[offer] = ""
        if member:
            # Connected while AMI was down: the wait is unknown.
            # Always offered (the end's time may differ on a retry, when it
            # is the engine's clock): the answer's own event made it for
            # most calls, and then it is not new.
            recovered_answer = answer not in facts
            marks[answer] = facts.get(answer, stamp(answer_at))
        elif not _queues_with(facts, "answered:"):
            if at is not None:
                wait, skew = measured_wait(facts.get(f"offered:{in_queue}"), at)
            abandon = "short_abandoned" if wait is not None and wait <= short_abandon_seconds else "abandoned"
            marks[f"abandoned:{in_queue}"] = abandon
            if wait is not None:
                marks["wait"] = stamp(wait)
    marks["recording"] = "1"
    return Ending(Step(marks=marks, sets={"in_queue": ""}), in_queue=in_queue, recovered_arrival=recovered_arrival,
                  recovered_offer=recovered_offer, recovered_answer=recovered_answer, abandon=abandon, wait=wait,
                  skew=skew)


def last_exited_queue(facts: Mapping[str, str]) -> str:
    queue = facts.get("last_exit", "")
    if queue and facts.get(f"offered:{queue}"):
        return queue
    return ""


def plausible(seconds: float) -> bool:
    return 0 <= seconds <= MAX_PLAUSIBLE_SECONDS


def measured_wait(offered: str | None, at: float | None, hold_time: float | None = None
                  ) -> tuple[float | None, float | None]:
    """(wait, skew): seconds from joining (``offered``, a fact) to ``at``.

    app_queue's ``HoldTime`` (when given) is the fallback when the clocks
    disagree by more than 2 s; ``wait`` is None when nothing is plausible.
    ``skew`` is the implausible duration when a clock jumped (to be said and
    counted), else None. Milliseconds, as in the call record: the counters
    and a report rebuilt from the records classify every call alike.
    """
    start = _float(offered)
    if start is not None and at is not None:
        wait = at - start
        if plausible(wait) and (hold_time is None or abs(wait - hold_time) <= 2):
            return round(wait, 3), None
        if hold_time is not None and plausible(hold_time):
            return hold_time, wait
        return None, wait
    if hold_time is not None and plausible(hold_time):
        return hold_time, None
    return None, None


# --- the call record --------------------------------------------------------------------------


def record_fields(uid: str, facts: Mapping[str, str], *, in_queue: str, hotlines: Mapping[str, str],
                  request_types: frozenset[str] | set[str], now: float) -> tuple[dict[str, str], float | None]:
    """The call record (docs/metrics.md, "Call records") from the call's
    facts, and its talk time (for the histogram, None when unknown).
    ``hotlines`` maps each line's number to its tenant: the record keeps the
    ministry the call was made to, so a later change of configuration does
    not move old calls from one ministry's report to another's."""
    # Queues in the order they were entered; an offer of unknown time
    # (recovered after an AMI outage) counts as the latest.
    offers = sorted((_float(v) if _float(v) is not None else float("inf"), k.split(":", 1)[1])
                    for k, v in facts.items() if k.startswith("offered:"))
    answers = sorted((float(v), k.split(":", 1)[1]) for k, v in facts.items()
                     if k.startswith("answered:") and _float(v) is not None)
    queued = offers[0][0] if offers and offers[0][0] != float("inf") else None
    answered = answers[0][0] if answers else None
    ended_at = _float(facts.get("ended"))
    program = answers[0][1] if answers else (in_queue or (offers[-1][1] if offers else ""))
    queues = [q for _, q in offers if q != program] + ([program] if program else [])
    if ended_at is None and _float(facts.get("received")) is None:
        ended_at = now  # a hang-up of unknown time (journal): the record still needs one
    outcome = call_outcome(facts, program=program, answered=bool(answers), offered=bool(offers))
    wait = _float(facts.get("wait"))
    if wait is None and queued is not None and ended_at is not None and not answers:
        wait = max(0.0, ended_at - queued)
    talk = None
    talk_end = _float(facts.get("talk_end"))
    if talk_end is None or (ended_at is not None and talk_end > ended_at):
        talk_end = ended_at
    if answered is not None and talk_end is not None and talk_end >= answered:
        talk = talk_end - answered
    request_type = facts.get("request_type", "")
    governorate = facts.get("governorate", "")
    hotline = facts.get("hotline", "")
    return {
        "uid": uid,
        "hotline": hotline if hotline in hotlines else UNKNOWN_HOTLINE,
        "program": program,
        "queues": ",".join(queues),
        "request_type": request_type if request_type in request_types else NO_REQUEST_TYPE,
        "governorate": governorate if governorate in GOVERNORATE_LABELS else UNKNOWN_GOVERNORATE,
        "received": stamp(_float(facts.get("received"))),
        "queued": stamp(queued),
        "answered": stamp(answered),
        "ended": stamp(ended_at),
        "wait_seconds": stamp(wait) if queued is not None else "",
        "talk_seconds": stamp(talk),
        "outcome": outcome,
        "tenant": hotlines.get(hotline, ""),
    }, talk


def call_outcome(facts: Mapping[str, str], *, program: str, answered: bool, offered: bool) -> str:
    """How a finished call ended (the call record's ``outcome``)."""
    if answered:
        return "answered"
    if facts.get("callback"):
        return {"overflow": "overflow_callback", "closed": "closed"}.get(facts["callback"], "callback")
    if facts.get("closed"):
        return "closed"
    if program and facts.get(f"abandoned:{program}"):
        return facts[f"abandoned:{program}"]
    if facts.get("self_service") and not offered:
        return "self_service"
    if facts.get("ivr_left") and not offered:
        return "ivr_hangup"
    return "no_queue"
