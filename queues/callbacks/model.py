"""A callback as stored, and the names of its states and outcomes.

Four kinds (``reason``): ``closed`` (asked outside opening hours),
``queue`` (pressed the callback key while waiting: virtual hold),
``overflow`` (accepted the offer when the queue's limit was reached) and
``case`` (a resolved case's service check by an agent, ivr/service_check).
The states and the only ways between them are in ``queues.callbacks.machine``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from core.configuration import Config
from core.privacy import mask_number

REASONS = ("closed", "queue", "overflow", "case")
STATES = ("waiting", "placing", "queued", "dialling", "done")
LIVE_STATES = ("placing", "queued", "dialling")

# Dial statuses (DIALSTATUS, or INVALIDNUMBER from the dialplan) -> outcome.
# CANCEL: the agent hung up while the citizen's phone rang; the citizen was
# not reached, so it is a failed attempt like no answer.
DIAL_OUTCOMES = {
    "ANSWER": "connected",
    "NOANSWER": "no_answer",
    "CANCEL": "no_answer",
    "BUSY": "busy",
    "CHANUNAVAIL": "failed",
    "CONGESTION": "failed",
    "INVALIDNUMBER": "invalid_number",
}
# Outcomes that end a callback at once; the others are retried up to `attempts`.
FINAL_OUTCOMES = ("connected", "invalid_number", "cancelled")

def as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return "" if value is None else str(value)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(float(as_text(value)))
    except ValueError:
        return default


def _float(value: Any) -> float | None:
    try:
        return float(as_text(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class Callback:
    """One callback as stored. ``number`` must never reach a log unmasked."""

    id: str
    number: str = field(repr=False)
    hotline: str
    reason: str
    program: str = ""
    queue: str = ""
    priority: int = 0
    position: int = 0
    call_uid: str = ""
    request_type: str = ""
    governorate: str = ""
    joined_at: float | None = None
    state: str = "waiting"
    attempts: int = 0
    placement: int = 1
    outcome: str = ""
    last_status: str = ""
    created_at: float = 0.0
    next_at: float | None = None
    claimed_at: float | None = None

    @classmethod
    def from_fields(cls, raw: Mapping[Any, Any]) -> "Callback":
        f = {as_text(k): as_text(v) for k, v in raw.items()}
        return cls(
            id=f.get("id", ""), number=f.get("number", ""), hotline=f.get("hotline", ""),
            reason=f.get("reason", ""), program=f.get("program", ""), queue=f.get("queue", ""),
            priority=_int(f.get("priority")), position=_int(f.get("position")), call_uid=f.get("call_uid", ""),
            request_type=f.get("request_type", ""), governorate=f.get("governorate", ""),
            joined_at=_float(f.get("joined_at", "")), state=f.get("state", "waiting"),
            attempts=_int(f.get("attempts")), placement=_int(f.get("placement"), 1) or 1,
            outcome=f.get("outcome", ""), last_status=f.get("last_status", ""),
            created_at=_float(f.get("created_at", "")) or 0.0, next_at=_float(f.get("next_at", "")),
            claimed_at=_float(f.get("claimed_at", "")),
        )

    def to_fields(self) -> dict[str, str]:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = "" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
        return out

    @property
    def masked_number(self) -> str:
        return mask_number(self.number)


def queue_of(cb: Callback, config: Config) -> str | None:
    """The queue a callback is placed in: its own, else (after-hours callbacks
    have no programme) its hotline's fallback queue; None if neither is configured."""
    if cb.queue and config.queue(cb.queue) is not None:
        return cb.queue
    hotline = config.hotline(cb.hotline)
    return hotline.fallback_queue if hotline is not None else None
