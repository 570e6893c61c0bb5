"""The validated, frozen shape of the hotline configuration.

Every model forbids unknown keys (a typo such as ``retires:`` is an error, not
a silently ignored line) and is frozen: the configuration is read once at
start-up and shared by every component without anyone changing it.

Pydantic was chosen over hand-written checks because it reports each error
with the exact path of the offending field (``hotlines.0.menu.options.7``),
which the loader turns into a file and line number, and because frozen models
with ``extra="forbid"`` give both guarantees above in one declaration.
"""

from __future__ import annotations

import ipaddress
from datetime import date
from functools import cached_property
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator,
                      model_validator)

from core.holidays import (HIJRI_FIRST_YEAR, HIJRI_LAST_YEAR, HIJRI_MONTHS, LISTED_HOLIDAY, AnnouncedMonths, Holiday,
                           egypt_holidays, islamic_calendar_covers, umm_al_qura_month_start)

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,39}$")]
PromptId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_\-]{0,62}$")]
Digit = Annotated[str, StringConstraints(pattern=r"^[0-9*#]$")]
# Section names app_queue keeps for itself: a queue cannot be called so.
RESERVED_QUEUE_IDS = ("general",)
# The tenant label of a configuration without cases (config/cases.yaml).
NO_TENANT = "none"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class LoopbackByDefault(Frozen):
    """Something bound to an address: loopback unless exposure is asked for."""

    host: str = "127.0.0.1"
    allow_public: bool = Field(
        default=False,
        description="Binding to anything but loopback must be asked for explicitly.",
    )

    @model_validator(mode="after")
    def _loopback_unless_asked(self) -> "LoopbackByDefault":
        if not self.allow_public and not is_loopback(self.host):
            raise ValueError(
                f"host {self.host!r} is not a loopback address; "
                "set allow_public: true to expose it on purpose"
            )
        return self


class Listen(LoopbackByDefault):
    """A socket the engine or Asterisk listens on."""

    port: int = Field(ge=1, le=65535)


class AmiSettings(Listen):
    port: int = Field(default=5038, ge=1, le=65535)
    username: Identifier = "ivr_engine"
    # A second AMI user for monitoring tools: it reads events and may ask for
    # status (QueueStatus), and can change nothing (manager.conf, docs/reliability.md).
    monitor_username: Identifier = "ivr_monitor"
    action_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    ping_interval_seconds: float = Field(default=10.0, gt=0, le=300)


class RedisSettings(LoopbackByDefault):
    port: int = Field(default=6379, ge=1, le=65535)
    db: int = Field(default=0, ge=0, le=15)
    key_prefix: str = "ivr:"
    call_state_ttl_seconds: int = Field(default=86400, ge=60)


class DatabaseSettings(Frozen):
    """The system of record for cases (docs/cases.md). ``sqlite``: a file in
    the state folder, nothing to install or start. ``postgresql``: a server
    (Debian's ``postgresql``) at host/port, reached as ``user``; its password,
    if the server asks for one, is the ``db:<user>`` secret of ``ivr setup``."""

    backend: Literal["sqlite", "postgresql"] = "sqlite"
    # sqlite: the file, relative to the state folder unless absolute.
    path: str = "cases.sqlite3"
    host: str = "127.0.0.1"
    port: int = Field(default=5432, ge=1, le=65535)
    name: Identifier = "ivr_cases"
    user: Identifier = "ivr"
    allow_public: bool = False

    @model_validator(mode="after")
    def _loopback_unless_asked(self) -> "DatabaseSettings":
        if self.backend == "postgresql" and not self.allow_public and not is_loopback(self.host) \
                and not self.host.startswith("/"):
            raise ValueError(f"host {self.host!r} is not a loopback address or a socket folder; "
                             "set allow_public: true to reach it on purpose")
        return self


class ServiceSettings(Frozen):
    """Where every part of the engine listens. Defaults are the documented ports."""

    fastagi: Listen = Listen(port=4573)
    metrics: Listen = Listen(port=9108)
    # The supervisors' wallboard page (metrics/wallboard), served by the engine.
    wallboard: Listen = Listen(port=9110)
    # The agents' desktop (desktop/): call pops, cases, pause and resume.
    desktop: Listen = Listen(port=9111)
    carrier_sip: Listen = Listen(port=5080)
    agent_sip: Listen = Listen(port=5060)
    # Where callbacks to citizens are sent (the carrier's SIP address).
    carrier_outbound: Listen = Listen(port=5090)
    ami: AmiSettings = AmiSettings()
    redis: RedisSettings = RedisSettings()
    database: DatabaseSettings = DatabaseSettings()
    rtp_port_start: int = Field(default=10000, ge=1024, le=65000)
    rtp_port_end: int = Field(default=10999, ge=1024, le=65535)
    language: Literal["ar"] = "ar"
    tts_voice: str = "ar"

    @model_validator(mode="after")
    def _rtp_range(self) -> "ServiceSettings":
        if self.rtp_port_start >= self.rtp_port_end:
            raise ValueError(f"rtp_port_start ({self.rtp_port_start}) must be below rtp_port_end "
                             f"({self.rtp_port_end})")
        return self


class Program(Frozen):
    """A ministry programme citizens call about; its id labels queues and metrics."""

    id: Identifier
    name: str = Field(min_length=1, description="Arabic name, said to callers")
    name_en: str = Field(min_length=1)
    collect_national_id: bool = Field(
        default=False, description="Ask callers of this programme for their national ID before the queue")
    survey: bool = Field(default=False, description="After the agent hangs up, ask the caller for a 1-5 rating")
    # The ministry the programme belongs to (config/cases.yaml): the `tenant`
    # label of its metrics, records and reports. May be left out while there
    # is one tenant.
    tenant: Identifier | None = None


class Queue(Frozen):
    """An Asterisk app_queue queue. Its id is the queue name and the metric label."""

    id: Identifier
    program: Identifier | None = Field(
        default=None, description="The programme this queue serves; none for a general queue"
    )
    strategy: Literal["leastrecent", "ringall", "rrmemory", "fewestcalls", "random", "linear"] = (
        "leastrecent"
    )
    ring_timeout_seconds: int = Field(default=15, ge=5, le=120)
    retry_seconds: int = Field(default=2, ge=0, le=60)
    wrapup_seconds: int = Field(default=5, ge=0, le=600)
    max_wait_seconds: int = Field(
        default=1800, ge=10, le=7200,
        description="After this long in the queue the caller is offered a callback or moved to the overflow queue")
    max_callers: int = Field(default=0, ge=0, le=10000,
                             description="Callers allowed to wait at once (0: no limit); beyond it, overflow")
    overflow_queue: Identifier | None = Field(
        default=None, description="Where callers go after max_wait_seconds or when max_callers is reached "
        "and they decline a callback; none: they stay in this queue")
    secondary_after_seconds: int = Field(
        default=30, ge=0, le=3600,
        description="Secondary-skill agents are rung once a caller has waited this long (0: at once)")
    announce_every_seconds: int = Field(
        default=60, ge=0, le=3600, description="Say position and estimated wait every N seconds (0: only on joining)")
    default_handle_seconds: int = Field(
        default=180, ge=10, le=7200,
        description="Handle time assumed for wait estimates until the queue has answered calls of its own")
    served_by_all_agents: bool = Field(
        default=False, description="Every agent of the queue's tenant serves it (a general queue)")
    # A queue without a programme (a general queue) names its tenant; a
    # programme's queue is its programme's tenant's.
    tenant: Identifier | None = None

    @model_validator(mode="after")
    def _not_reserved(self) -> "Queue":
        if self.id in RESERVED_QUEUE_IDS:
            raise ValueError(f"queue id {self.id!r} is reserved by Asterisk's queues.conf; choose another")
        return self


class RequestType(Frozen):
    """What the caller wants (inquiry, complaint...): travels with the call to
    the queue, the agent's phone and the metrics (``request_type`` label)."""

    id: Identifier
    name: str = Field(min_length=1, description="Arabic name, shown to the agent")


class MenuOption(Frozen):
    """What one key does: open another menu, send the caller to a programme,
    or start a self-service action (``follow_up``: hear a case's status by
    its reference number, ivr/flow/follow_up.py)."""

    menu: PromptId | None = None
    program: Identifier | None = None
    request_type: Identifier | None = None
    action: Literal["follow_up"] | None = None
    # Self-service: a recorded answer (``answers`` in menus.yaml), then
    # "was this answer useful? 1 yes, 2 no" (ivr/flow/answers.py).
    answer: Identifier | None = None

    @model_validator(mode="after")
    def _one_target(self) -> "MenuOption":
        if sum(x is not None for x in (self.menu, self.program, self.action, self.answer)) != 1:
            raise ValueError("an option needs exactly one of `menu` (open a menu), `program` (route), "
                             "`action` (follow_up) or `answer` (a recorded answer)")
        if self.menu is not None and self.request_type is not None:
            raise ValueError("`request_type` goes with `program`, not with `menu`")
        return self


class SelfServiceAnswer(Frozen):
    """A recorded answer to a frequent question, said by the IVR; the caller
    is then asked whether it was useful (counted per question). A caller it
    did not help reaches an agent of ``program``."""

    name: str = Field(min_length=1, description="Arabic name of the question, shown to supervisors")
    name_en: str = Field(min_length=1)
    prompt: PromptId = Field(description="The recorded answer")
    program: Identifier = Field(description="Whose agents take a caller the answer did not help; its tenant "
                                "labels the answer's figures")


# Said around a self-service answer (ivr/flow/answers.py).
ANSWER_PROMPTS = ("answer-useful-question", "answer-thanks", "answer-to-agent")
# The request type of a caller an answer did not help (they ask an agent).
ANSWER_REQUEST_TYPE = "inquiry"

# Said during national ID entry (ivr/flow/national_id.py).
NATIONAL_ID_PROMPTS = ("national-id-enter", "national-id-invalid", "national-id-you-entered",
                       "national-id-confirm")

# Said by the follow-up of a case by its reference (ivr/flow/follow_up.py);
# the status is said by follow-up-status-<status>.
FOLLOW_UP_PROMPTS = ("follow-up-enter", "follow-up-incomplete", "follow-up-wrong", "follow-up-not-found",
                     "follow-up-unavailable", "follow-up-request", "follow-up-expected-by", "follow-up-overdue",
                     "follow-up-resolved-on", "follow-up-agent-offer", "follow-up-goodbye")
CASE_STATUSES = ("new", "assigned", "in_progress", "waiting_for_citizen", "resolved", "closed", "reopened")
FOLLOW_UP_REQUEST_TYPE = "follow_up"
# Said by the call that asks whether a resolved case's citizen got the
# service (ivr/service_check/flow.py).
SERVICE_CHECK_PROMPTS = ("service-check-intro", "service-check-question", "service-check-thanks",
                         "service-check-reopened", "service-check-unavailable", "service-check-goodbye",
                         "invalid-option")

# Said by the post-call survey (ivr/flow/survey.py).
SURVEY_PROMPTS = ("survey-question", "survey-thanks")

# Said by queues, callbacks and agents' feature codes (queues/, ivr/flow/).
DISTRIBUTION_PROMPTS = (
    "queue-position-is", "queue-you-are-next", "queue-wait-about", "queue-wait-under-minute",
    "queue-wait-unknown", "queue-callback-offer", "callback-number-is", "callback-confirm",
    "callback-enter-number", "callback-invalid-number", "queue-callback-registered", "callback-intro",
    "callback-not-reached", "callback-limit-reached",
    "queue-overflow-offer", "agent-logged-in", "agent-logged-out", "agent-already-logged-in",
    "agent-moved-phone", "agent-not-logged-in", "agent-paused", "agent-resumed", "agent-pause-reason",
    "agent-unknown-reason", "agent-unknown", "agent-service-unavailable",
)

# `*` goes back one menu and `0` repeats the prompt, on every menu.
RESERVED_KEYS = ("*", "0")


class Menu(Frozen):
    """One node of a menu tree. Keys 1-9 and # are options; * is back, 0 repeats."""

    prompt: PromptId
    options: dict[Digit, MenuOption] = Field(min_length=1)
    program: Identifier | None = Field(
        default=None,
        description="The programme this menu is about: where the caller goes after the last retry",
    )
    timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    retries: int = Field(default=3, ge=1, le=10)
    invalid_prompt: PromptId = "invalid-option"
    no_input_prompt: PromptId = "no-input"

    @model_validator(mode="after")
    def _reserved_keys(self) -> "Menu":
        taken = [k for k in self.options if k in RESERVED_KEYS]
        if taken:
            raise ValueError(f"keys {', '.join(taken)} are reserved (* goes back, 0 repeats the menu)")
        return self


Weekday = Literal["sat", "sun", "mon", "tue", "wed", "thu", "fri"]
TimeRange = Annotated[str, StringConstraints(
    pattern=r"^([01][0-9]|2[0-3]):(00|15|30|45)-(([01][0-9]|2[0-3]):(00|15|30|45)|24:00)$")]


# How far an announced month start may lie from Umm al-Qura's: Egypt's
# sighting has differed from it by one day; more than two is a typo.
MAX_ANNOUNCED_SHIFT_DAYS = 2


def _hijri_month_in_table(value: str) -> str:
    year = int(value[:4])
    if not HIJRI_FIRST_YEAR <= year <= HIJRI_LAST_YEAR:
        raise ValueError(f"Hijri year {year} is outside the Umm al-Qura table ({HIJRI_FIRST_YEAR}-"
                         f"{HIJRI_LAST_YEAR} AH): there is no computed month to correct; list the "
                         "holidays under holidays")
    return value


# A Hijri month as "YYYY-MM" (1447-10: Shawwal 1447), within the Umm al-Qura table.
HijriMonth = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$"),
                       AfterValidator(_hijri_month_in_table)]


def _announced_months(months: dict[str, date]) -> AnnouncedMonths:
    """schedules.yaml's ``hijri_months`` as core/holidays.py takes them: ((year, month), first day)."""
    return tuple(sorted(((int(key[:4]), int(key[5:])), day) for key, day in months.items()))


class Schedule(Frozen):
    """Opening hours of a hotline, in local (Cairo) time. Days not listed are closed.

    Holidays close the whole day: Egypt's official holidays computed for every
    year (core/holidays.py; ``computed_holidays: none`` turns them off), plus
    ``holidays``, minus ``not_holidays``; ``hijri_months`` puts a Hijri month
    on the day the government announced, moving its holidays. Ask
    :meth:`is_holiday`, not the lists.
    """

    timezone: str = "Africa/Cairo"
    open: dict[Weekday, tuple[TimeRange, ...]] = Field(min_length=1)
    computed_holidays: Literal["egypt", "none"] = Field(
        default="egypt", description="egypt: Egypt's official holidays, computed for every year; none: only `holidays`")
    holidays: tuple[date, ...] = Field(
        default=(), description="Whole days closed besides the computed ones (announced by the government)")
    hijri_months: dict[HijriMonth, date] = Field(
        default={}, description="Hijri month (YYYY-MM) -> the day the government announced as its first")
    not_holidays: tuple[date, ...] = Field(
        default=(), description="Computed holidays the lines stay open on (the government moved them)")
    closed_prompt: PromptId = "closed"
    callback_offer_prompt: PromptId | None = Field(
        default="closed-callback-offer", description="Offer a call back (key 1); none: no offer")
    callback_registered_prompt: PromptId = "callback-registered"

    @model_validator(mode="after")
    def _ranges(self) -> "Schedule":
        for day, ranges in self.open.items():
            for r in ranges:
                start, end = r.split("-")
                if start >= end:
                    raise ValueError(f"{day}: range {r} ends before it starts")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        return self

    @field_validator("hijri_months")
    @classmethod
    def _announced_near_the_table(cls, months: dict[str, date], info: ValidationInfo) -> dict[str, date]:
        if months and info.data.get("computed_holidays") == "none":
            raise ValueError("hijri_months moves computed holidays: it needs computed_holidays: egypt")
        for key, announced in months.items():
            year, month = (int(x) for x in key.split("-"))
            computed = umm_al_qura_month_start(year, month)
            if computed is not None and abs((announced - computed).days) > MAX_ANNOUNCED_SHIFT_DAYS:
                raise ValueError(
                    f"{key}: {announced} is {(announced - computed).days:+d} days from the start of "
                    f"{HIJRI_MONTHS[month]} {year} in the Umm al-Qura calendar ({computed}); an announced "
                    f"start differs by at most {MAX_ANNOUNCED_SHIFT_DAYS} days (a typo?)")
        return months

    @field_validator("not_holidays")
    @classmethod
    def _only_computed_holidays_removed(cls, days: tuple[date, ...], info: ValidationInfo) -> tuple[date, ...]:
        if not days or "hijri_months" not in info.data:
            return days  # nothing to check, or hijri_months failed and says why
        if info.data.get("computed_holidays") == "none":
            raise ValueError("not_holidays removes computed holidays: it needs computed_holidays: egypt")
        announced = _announced_months(info.data["hijri_months"])
        for day in days:
            if day in info.data.get("holidays", ()):
                raise ValueError(f"{day} is also under holidays: a day is closed or not")
            computed = egypt_holidays(day.year, announced)
            if day not in computed:
                raise ValueError(f"{day} is not a computed holiday, there is nothing to remove; those of "
                                 f"{day.year} are {', '.join(d.strftime('%m-%d') for d in computed)}")
        return days

    def is_holiday(self, day: date) -> bool:
        """Whether the lines are closed all ``day`` (a local date). Called on every
        call: the year's computation is cached (core/holidays.py)."""
        if day in self.holidays:
            return True
        if self.computed_holidays == "none" or day in self.not_holidays:
            return False
        return day in egypt_holidays(day.year, _announced_months(self.hijri_months))

    def holidays_of(self, year: int) -> dict[date, tuple[Holiday, ...]]:
        """Every day of ``year`` closed as a holiday, with its names (for checks and reports)."""
        days: dict[date, tuple[Holiday, ...]] = {}
        if self.computed_holidays == "egypt":
            days.update((day, names) for day, names in egypt_holidays(
                year, _announced_months(self.hijri_months)).items() if day not in self.not_holidays)
        for day in self.holidays:
            if day.year == year:
                days[day] = days.get(day, ()) + (LISTED_HOLIDAY,)
        return dict(sorted(days.items()))

    def has_holiday_data(self, day: date) -> bool:
        """Whether this schedule knows if ``day`` is a holiday. The computation
        knows every day the Umm al-Qura table reaches; a hand-kept ``holidays``
        list is taken to hold the whole year of each date it lists (the
        cabinet announces a year's holidays together)."""
        if any(listed.year == day.year for listed in self.holidays):
            return True
        return self.computed_holidays == "egypt" and islamic_calendar_covers(day)


class Hotline(Frozen):
    number: Annotated[str, StringConstraints(pattern=r"^[0-9]{3,15}$")]
    name: str = Field(min_length=1)
    menu: PromptId = Field(description="The first menu callers hear (a direct line starts in a programme's menu)")
    fallback_queue: Identifier = Field(
        description="Where a caller goes when the IVR cannot decide: after the last retry, "
        "or when the engine is down (the dialplan routes there by itself)."
    )
    welcome_prompt: PromptId | None = None
    transfer_prompt: PromptId | None = Field(
        default=None, description="Said once the caller's choice is made, before the queue"
    )
    schedule: PromptId | None = Field(default=None, description="Opening hours (schedules.yaml); none: always open")
    # The ministry the line belongs to (config/cases.yaml): its cases are the
    # ones a caller can follow up. May be left out while there is one tenant.
    tenant: Identifier | None = None
    agi: Literal["fastagi", "classic"] = Field(
        default="fastagi",
        description="fastagi: the `ivr serve` service; classic: the ivr-agi script, one process per call")


SkillLevel = Literal["primary", "secondary"]
# Member penalty per skill level: app_queue rings penalty 0 first; penalty 1
# only once the queue rule raises the caller's maximum penalty.
SKILL_PENALTY = {"primary": 0, "secondary": 1}


class Agent(Frozen):
    id: Annotated[str, StringConstraints(pattern=r"^[0-9]{3,8}$")]
    name: str = Field(min_length=1)
    skills: dict[Identifier, SkillLevel] = Field(
        min_length=1, description="programme id -> primary or secondary")
    # The ministry whose cases the agent works on (config/cases.yaml); may be
    # left out while there is a single tenant.
    tenant: Identifier | None = None

    @property
    def sip_username(self) -> str:
        return f"agent{self.id}"

    @property
    def programs(self) -> tuple[str, ...]:
        return tuple(self.skills)

    @property
    def interface(self) -> str:
        return f"PJSIP/{self.sip_username}"


class PauseReason(Frozen):
    """Why an agent pauses; dialled after the pause feature code (e.g. *23 1)."""

    code: Annotated[str, StringConstraints(pattern=r"^[1-9]$")]
    id: Identifier
    name: str = Field(min_length=1, description="Arabic name, said back to the agent")


class FeatureCodes(Frozen):
    """What agents dial from their softphone."""

    login: Annotated[str, StringConstraints(pattern=r"^\*[0-9]{1,3}$")] = "*21"
    logout: Annotated[str, StringConstraints(pattern=r"^\*[0-9]{1,3}$")] = "*22"
    pause: Annotated[str, StringConstraints(pattern=r"^\*[0-9]{1,3}$")] = "*23"
    resume: Annotated[str, StringConstraints(pattern=r"^\*[0-9]{1,3}$")] = "*24"

    @model_validator(mode="after")
    def _distinct(self) -> "FeatureCodes":
        codes = [self.login, self.logout, self.pause, self.resume]
        for a in codes:
            if sum(1 for b in codes if b.startswith(a)) > 1:
                raise ValueError(f"feature code {a} is used twice or is the start of another one")
        return self


# The pause reason the engine itself uses for an agent who missed calls.
AUTO_PAUSE_REASON = "no_answer"


class AgentPolicy(Frozen):
    """How agents work: feature codes, pause reasons, auto-pause."""

    feature_codes: FeatureCodes = FeatureCodes()
    pause_reasons: tuple[PauseReason, ...] = Field(min_length=1)
    auto_pause_after_missed: int = Field(
        default=2, ge=0, le=10, description="Pause an agent who lets this many calls in a row ring out (0: never)")

    def pause_reason(self, code_or_id: str) -> PauseReason | None:
        return next((r for r in self.pause_reasons if code_or_id in (r.code, r.id)), None)

    @model_validator(mode="after")
    def _unique(self) -> "AgentPolicy":
        for field in ("code", "id"):
            values = [getattr(r, field) for r in self.pause_reasons]
            if len(set(values)) != len(values):
                raise ValueError(f"pause reasons: duplicate {field}")
        if any(r.id == AUTO_PAUSE_REASON for r in self.pause_reasons):
            raise ValueError(f"pause reason id {AUTO_PAUSE_REASON!r} is kept for the engine's auto-pause")
        return self


class PriorityRule(Frozen):
    """Raises a caller's queue priority when every condition given matches.

    The highest priority of the matching rules wins; callers with a higher
    priority are answered first (app_queue QUEUE_PRIO)."""

    name: Identifier
    priority: int = Field(ge=1, le=100)
    program: Identifier | None = Field(default=None, description="Callers for this programme")
    callback: bool = Field(default=False, description="A callback placed in a queue again (a retry, or an "
                           "after-hours callback when the line opens)")
    repeat_within_hours: int | None = Field(
        default=None, ge=1, le=168, description="Callers who called the same line within this many hours")

    @model_validator(mode="after")
    def _has_condition(self) -> "PriorityRule":
        if self.program is None and not self.callback and self.repeat_within_hours is None:
            raise ValueError("a priority rule needs a condition: program, callback or repeat_within_hours")
        return self


# The abuse limits on callbacks: the name a refusal goes by (the `reason`
# label of ivr_callback_refusals_total) -> the CallbackPolicy field it checks.
CALLBACK_LIMITS = {"pending_all": "max_pending", "pending_queue": "max_pending_per_queue",
                   "number_day": "max_per_number_per_day"}


class CallbackPolicy(Frozen):
    """Queued callbacks (virtual hold) and after-hours callbacks."""

    queue_key: Digit = Field(default="1", description="Key a waiting caller presses to be called back")
    attempts: int = Field(default=3, ge=1, le=10, description="Calls to the citizen before giving up")
    retry_after_seconds: int = Field(default=300, ge=5, le=86400)
    ring_seconds: int = Field(default=30, ge=5, le=120, description="How long the citizen's phone rings")
    # Abuse limits (docs/reliability.md "Abuse limits"), enforced by the
    # callback store at registration, atomically among engine workers.
    max_pending: int = Field(default=10000, ge=1, description="Callbacks waiting at once; beyond it none is offered")
    max_pending_per_queue: int = Field(
        default=2000, ge=1, description="Callbacks waiting at once to be placed in one queue (after-hours ones "
        "in their hotline's fallback queue): one programme's flood leaves room for the others")
    max_per_number_per_day: int = Field(
        default=3, ge=1, le=100, description="Callbacks a caller may register for one number in a local "
        "(Cairo) day; the service check's own callbacks do not count")
    audit_keep_days: int = Field(
        default=30, ge=1, le=366, description="How long the audit stream of callbacks keeps an entry (it "
        "keeps 100,000 at most besides)")

    @field_validator("max_pending_per_queue")
    @classmethod
    def _queue_within_all(cls, per_queue: int, info: ValidationInfo) -> int:
        everything = info.data.get("max_pending")
        if everything is not None and per_queue > everything:
            raise ValueError(f"max_pending_per_queue ({per_queue}) is more than max_pending ({everything}): "
                             "no queue could ever reach it")
        return per_queue


class Distribution(Frozen):
    priorities: tuple[PriorityRule, ...] = ()
    callbacks: CallbackPolicy = CallbackPolicy()


class ServiceLevel(Frozen):
    # A call answered within threshold_seconds of joining the queue counts
    # towards the service level; the target is the share of such calls.
    threshold_seconds: int = Field(default=20, ge=1, le=3600)
    target_ratio: float = Field(default=0.80, gt=0, le=1)


class CallRecordPolicy(Frozen):
    # Redis stream length (approximate trim): about 30 months of the
    # ministry's 165,000 calls a month at the default.
    max_length: int = Field(default=5_000_000, ge=1000)


class Supervision(Frozen):
    """Thresholds and targets behind the figures supervisors see (docs/metrics.md)."""

    # A caller who hangs up within this many seconds of joining a queue is a
    # short abandon: counted apart and left out of the rates.
    short_abandon_seconds: int = Field(default=5, ge=0, le=120)
    service_level: ServiceLevel = ServiceLevel()
    # Answer-rate target per programme (queue id); `default` for the rest.
    answer_rate_targets: dict[str, float] = {"default": 0.80}
    # Staffing advice looks at this much recent traffic.
    staffing_window_seconds: int = Field(default=3600, ge=300, le=86400)
    call_records: CallRecordPolicy = CallRecordPolicy()

    @field_validator("answer_rate_targets")
    @classmethod
    def _ratios(cls, value: dict[str, float]) -> dict[str, float]:
        for key, ratio in value.items():
            if not 0 < ratio <= 1:
                raise ValueError(f"answer_rate_targets[{key}] must be a ratio in (0, 1], got {ratio}")
        return value

    def answer_rate_target(self, queue_id: str) -> float:
        return self.answer_rate_targets.get(queue_id, self.answer_rate_targets.get("default", 0.80))


CASE_KINDS = ("report", "inquiry", "complaint", "grievance")
SEVERITIES = ("critical", "high", "normal", "low")


class ServiceCheck(Frozen):
    """What happens when one of a tenant's cases is resolved and the case kept
    the citizen's number (docs/cases.md, "Did you get the service?").

    ``call``: an automated call asks "did you get the service? 1 yes, 2 no";
    yes closes the case, no reopens it for its sector. ``callback``: the
    callback machinery rings an agent of the sector's programme, then the
    citizen. ``none``: nothing."""

    mode: Literal["call", "callback", "none"] = "none"
    # The hotline the citizen sees calling (its number is the caller ID).
    hotline: Annotated[str, StringConstraints(pattern=r"^[0-9]{3,15}$")] | None = None
    after_minutes: float = Field(default=0, ge=0, le=7 * 24 * 60,
                                 description="Minutes between the resolution and the first call")
    attempts: int = Field(default=3, ge=1, le=10, description="Calls before the citizen counts as unreached")
    retry_minutes: float = Field(default=60, gt=0, le=7 * 24 * 60, description="Minutes between two calls")
    ring_seconds: int = Field(default=30, ge=5, le=120)
    # Said first (who is calling, about which request): each ministry its own.
    intro_prompt: PromptId = "service-check-intro"

    @model_validator(mode="after")
    def _hotline_needed(self) -> "ServiceCheck":
        if self.mode != "none" and self.hotline is None:
            raise ValueError(f"mode {self.mode!r} needs the hotline whose number the citizen sees calling")
        return self


class Tenant(Frozen):
    """A ministry served by the engine: its cases are its own."""

    id: Identifier
    name: str = Field(min_length=1, description="Arabic name")
    name_en: str = Field(min_length=1)
    service_check: ServiceCheck = ServiceCheck()


class Sector(Frozen):
    """Who must act on a case: a programme (social solidarity) or a ministry
    sector (health). A case is routed to its sector's work queue."""

    id: Identifier
    tenant: Identifier
    name: str = Field(min_length=1, description="Arabic name")
    name_en: str = Field(min_length=1)
    # The programme whose calls open cases for this sector by default.
    program: Identifier | None = None


class Deadline(Frozen):
    """Hours from registration to the first response and to resolution."""

    first_response_hours: float = Field(gt=0, le=24 * 90)
    resolution_hours: float = Field(gt=0, le=24 * 365)

    @model_validator(mode="after")
    def _order(self) -> "Deadline":
        if self.first_response_hours > self.resolution_hours:
            raise ValueError(f"first_response_hours ({self.first_response_hours}) is after "
                             f"resolution_hours ({self.resolution_hours})")
        return self


class KindName(Frozen):
    name: str = Field(min_length=1, description="Arabic name")
    name_en: str = Field(min_length=1)


class Cases(Frozen):
    """Tenants, sectors, kinds and the deadlines of each severity (docs/cases.md)."""

    tenants: tuple[Tenant, ...] = Field(min_length=1)
    sectors: tuple[Sector, ...] = Field(min_length=1)
    kinds: dict[Literal["report", "inquiry", "complaint", "grievance"], KindName]
    deadlines: dict[Literal["critical", "high", "normal", "low"], Deadline]
    # How often the engine looks for service checks due (ivr/service_check/dialler.py).
    service_check_every_seconds: float = Field(default=30, ge=1, le=3600)

    @model_validator(mode="after")
    def _complete(self) -> "Cases":
        for field, wanted in (("kinds", CASE_KINDS), ("deadlines", SEVERITIES)):
            missing = [k for k in wanted if k not in getattr(self, field)]
            if missing:
                raise ValueError(f"{field}: missing {', '.join(missing)}")
        return self

    def sector(self, sector_id: str) -> Sector | None:
        return next((s for s in self.sectors if s.id == sector_id), None)

    def tenant(self, tenant_id: str) -> Tenant | None:
        return next((t for t in self.tenants if t.id == tenant_id), None)


class Config(Frozen):
    service: ServiceSettings = ServiceSettings()
    prompts: dict[PromptId, str] = Field(min_length=1)
    programs: tuple[Program, ...] = Field(min_length=1)
    queues: tuple[Queue, ...] = Field(min_length=1)
    request_types: tuple[RequestType, ...] = ()
    menus: dict[PromptId, Menu] = Field(min_length=1)
    schedules: dict[PromptId, Schedule] = {}
    hotlines: tuple[Hotline, ...] = Field(min_length=1)
    agents: tuple[Agent, ...] = ()
    agent_policy: AgentPolicy = AgentPolicy(pause_reasons=(
        PauseReason(code="1", id="break", name="استراحة"),))
    distribution: Distribution = Distribution()
    supervision: Supervision = Supervision()
    cases: Cases | None = None
    # Self-service answers to frequent questions (menus.yaml `answers`).
    answers: dict[Identifier, SelfServiceAnswer] = {}

    def cross_reference_errors(self) -> list[tuple[tuple, str]]:
        """Errors pydantic cannot see field by field: ids that point nowhere.

        Returned as (location, message) so the loader can name file and line.
        """
        errors: list[tuple[tuple, str]] = []
        program_ids = [p.id for p in self.programs]
        queue_ids = [q.id for q in self.queues]
        for section, ids in (
            ("programs", program_ids),
            ("queues", queue_ids),
            ("hotlines", [h.number for h in self.hotlines]),
            ("agents", [a.id for a in self.agents]),
        ):
            seen: set[str] = set()
            for i, value in enumerate(ids):
                if value in seen:
                    errors.append(((section, i), f"duplicate id {value!r}"))
                seen.add(value)
        for i, q in enumerate(self.queues):
            if q.program is not None and q.program not in program_ids:
                errors.append((("queues", i, "program"), f"unknown program {q.program!r}"))
        for i, p in enumerate(self.programs):
            if p.id not in queue_ids:
                errors.append((("programs", i, "id"), f"program {p.id!r} has no queue with the same id"))
        request_type_ids = {r.id for r in self.request_types}
        if any(p.collect_national_id for p in self.programs):
            for prompt in NATIONAL_ID_PROMPTS:
                if prompt not in self.prompts:
                    errors.append((("prompts",), f"prompt {prompt!r} is needed for national ID entry"))
        for i, p in enumerate(self.programs):
            if sum(1 for q in self.queues if q.program == p.id) > 1:
                errors.append((("programs", i, "id"), f"program {p.id!r} has more than one queue"))
        for menu_id, menu in self.menus.items():
            loc = ("menus", menu_id)
            for field in ("prompt", "invalid_prompt", "no_input_prompt"):
                if getattr(menu, field) not in self.prompts:
                    errors.append((loc + (field,), f"unknown prompt {getattr(menu, field)!r}"))
            if menu.program is not None and menu.program not in program_ids:
                errors.append((loc + ("program",), f"unknown program {menu.program!r}"))
            for key, option in menu.options.items():
                if option.menu is not None and option.menu not in self.menus:
                    errors.append((loc + ("options", key, "menu"), f"unknown menu {option.menu!r}"))
                if option.program is not None and option.program not in program_ids:
                    errors.append((loc + ("options", key, "program"), f"unknown program {option.program!r}"))
                if option.request_type is not None and option.request_type not in request_type_ids:
                    errors.append((loc + ("options", key, "request_type"),
                                   f"unknown request type {option.request_type!r}"))
                if option.action == "follow_up":
                    errors.extend((loc + ("options", key, "action"), problem)
                                  for problem in self._follow_up_problems(request_type_ids))
                if option.answer is not None and option.answer not in self.answers:
                    errors.append((loc + ("options", key, "answer"), f"unknown answer {option.answer!r}"))
        for answer_id, answer in self.answers.items():
            loc = ("answers", answer_id)
            if answer.prompt not in self.prompts:
                errors.append((loc + ("prompt",), f"unknown prompt {answer.prompt!r}"))
            if answer.program not in program_ids:
                errors.append((loc + ("program",), f"unknown program {answer.program!r}"))
        if self.answers:
            missing = [p for p in ANSWER_PROMPTS if p not in self.prompts]
            if missing:
                errors.append((("prompts",), f"self-service answers need the prompts {', '.join(missing)}"))
            if ANSWER_REQUEST_TYPE not in request_type_ids:
                errors.append((("answers",), f"self-service answers need the request type {ANSWER_REQUEST_TYPE!r} "
                               "(menus.yaml): a caller an answer did not help asks an agent"))
        for i, h in enumerate(self.hotlines):
            if h.fallback_queue not in queue_ids:
                errors.append((("hotlines", i, "fallback_queue"), f"unknown queue {h.fallback_queue!r}"))
            if h.menu not in self.menus:
                errors.append((("hotlines", i, "menu"), f"unknown menu {h.menu!r}"))
            if h.schedule is not None and h.schedule not in self.schedules:
                errors.append((("hotlines", i, "schedule"), f"unknown schedule {h.schedule!r}"))
            for field in ("welcome_prompt", "transfer_prompt"):
                value = getattr(h, field)
                if value is not None and value not in self.prompts:
                    errors.append((("hotlines", i, field), f"unknown prompt {value!r}"))
        if any(p.survey for p in self.programs):
            for prompt in SURVEY_PROMPTS:
                if prompt not in self.prompts:
                    errors.append((("prompts",), f"prompt {prompt!r} is needed for the survey"))
        if self.schedules and "closed-hours-are" not in self.prompts:
            errors.append((("prompts",), "prompt 'closed-hours-are' is needed to say the opening hours"))
        for name, schedule in self.schedules.items():
            for field in ("closed_prompt", "callback_offer_prompt", "callback_registered_prompt"):
                value = getattr(schedule, field)
                if value is not None and value not in self.prompts:
                    errors.append((("schedules", name, field), f"unknown prompt {value!r}"))
        for i, a in enumerate(self.agents):
            for prog in a.skills:
                if prog not in program_ids:
                    errors.append((("agents", i, "skills", prog), f"unknown program {prog!r}"))
        for i, q in enumerate(self.queues):
            if q.overflow_queue is not None:
                target = self.queue(q.overflow_queue)
                if target is None:
                    errors.append((("queues", i, "overflow_queue"), f"unknown queue {q.overflow_queue!r}"))
                elif target.max_callers:
                    errors.append((("queues", i, "overflow_queue"),
                                   f"overflow queue {target.id!r} must not have max_callers: "
                                   "callers who overflow must always find room"))
            if q.max_callers and q.overflow_queue is None:
                errors.append((("queues", i, "max_callers"),
                               "a queue with max_callers needs an overflow_queue for callers who find it full"))
        for key in self.supervision.answer_rate_targets:
            if key != "default" and key not in queue_ids:
                errors.append((("supervision", "answer_rate_targets", key), f"unknown queue {key!r}"))
        for i, rule in enumerate(self.distribution.priorities):
            if rule.program is not None and rule.program not in program_ids:
                errors.append((("distribution", "priorities", i, "program"), f"unknown program {rule.program!r}"))
        for prompt in DISTRIBUTION_PROMPTS:
            if self.agents and prompt not in self.prompts:
                errors.append((("prompts",), f"prompt {prompt!r} is needed for queues and agents"))
        if self.cases is not None:
            errors.extend(self._case_errors(program_ids))
        return errors

    def _follow_up_problems(self, request_type_ids: set[str]) -> list[str]:
        problems = []
        if self.cases is None:
            problems.append("follow_up needs cases (config/cases.yaml)")
        if FOLLOW_UP_REQUEST_TYPE not in request_type_ids:
            problems.append(f"follow_up needs the request type {FOLLOW_UP_REQUEST_TYPE!r} (menus.yaml)")
        wanted = FOLLOW_UP_PROMPTS + tuple(f"follow-up-status-{s}" for s in CASE_STATUSES)
        missing = [p for p in wanted if p not in self.prompts]
        if missing:
            problems.append(f"follow_up needs the prompts {', '.join(missing)}")
        return problems

    def _case_errors(self, program_ids: list[str]) -> list[tuple[tuple, str]]:
        errors: list[tuple[tuple, str]] = []
        cases = self.cases
        tenant_ids = [t.id for t in cases.tenants]
        for section, ids in (("tenants", tenant_ids), ("sectors", [s.id for s in cases.sectors])):
            seen: set[str] = set()
            for i, value in enumerate(ids):
                if value in seen:
                    errors.append((("cases", section, i, "id"), f"duplicate id {value!r}"))
                seen.add(value)
        for i, sector in enumerate(cases.sectors):
            if sector.tenant not in tenant_ids:
                errors.append((("cases", "sectors", i, "tenant"), f"unknown tenant {sector.tenant!r}"))
            if sector.program is not None and sector.program not in program_ids:
                errors.append((("cases", "sectors", i, "program"), f"unknown program {sector.program!r}"))
        for i, tenant in enumerate(cases.tenants):
            check = tenant.service_check
            loc = ("cases", "tenants", i, "service_check")
            if check.mode == "none":
                continue
            line = self.hotline(check.hotline)
            if line is None:
                errors.append((loc + ("hotline",), f"unknown hotline {check.hotline!r}"))
            elif (line.tenant is not None or len(tenant_ids) == 1) and self.tenant_of(line) != tenant.id:
                # (a hotline naming no tenant among several is reported with the hotlines)
                errors.append((loc + ("hotline",), f"hotline {check.hotline!r} is not one of {tenant.id!r}'s"))
            if check.mode == "call":
                missing = [p for p in (*SERVICE_CHECK_PROMPTS[1:], check.intro_prompt) if p not in self.prompts]
                if missing:
                    errors.append((loc + ("mode",), f"mode 'call' needs the prompts {', '.join(missing)}"))
        general_queues = [(i, q) for i, q in enumerate(self.queues) if q.program is None]
        for section, items in (("agents", list(enumerate(self.agents))), ("hotlines", list(enumerate(self.hotlines))),
                               ("programs", list(enumerate(self.programs))), ("queues", general_queues)):
            for i, item in items:
                if item.tenant is not None and item.tenant not in tenant_ids:
                    errors.append(((section, i, "tenant"), f"unknown tenant {item.tenant!r}"))
                elif item.tenant is None and len(tenant_ids) > 1:
                    errors.append(((section, i, "tenant"),
                                   f"with several tenants ({', '.join(tenant_ids)}) each of the {section} "
                                   "must name one"))
        if errors:
            return errors
        # One ministry's calls never reach another's queues or agents.
        known = set(program_ids)
        for i, q in enumerate(self.queues):
            if q.program is not None and q.tenant is not None and q.program in known and \
                    q.tenant != self.tenant_of(self.program(q.program)):
                errors.append((("queues", i, "tenant"), f"queue {q.id!r} serves programme {q.program!r} of "
                               f"tenant {self.tenant_of(self.program(q.program))!r}, not {q.tenant!r}"))
            target = self.queue(q.overflow_queue) if q.overflow_queue else None
            if target is not None and self.tenant_of(target) != self.tenant_of(q):
                errors.append((("queues", i, "overflow_queue"), f"overflow queue {target.id!r} is tenant "
                               f"{self.tenant_of(target)!r}'s, not {self.tenant_of(q)!r}'s"))
        for i, a in enumerate(self.agents):
            for prog in a.skills:
                if prog in known and self.tenant_of(self.program(prog)) != self.tenant_of(a):
                    errors.append((("agents", i, "skills", prog), f"programme {prog!r} is tenant "
                                   f"{self.tenant_of(self.program(prog))!r}'s, not the agent's "
                                   f"({self.tenant_of(a)!r})"))
        for i, h in enumerate(self.hotlines):
            tenant = self.tenant_of(h)
            fallback = self.queue(h.fallback_queue)
            if fallback is not None and self.tenant_of(fallback) != tenant:
                errors.append((("hotlines", i, "fallback_queue"), f"queue {fallback.id!r} is tenant "
                               f"{self.tenant_of(fallback)!r}'s, not the hotline's ({tenant!r})"))
            for prog in sorted(self.menu_programs(h.menu)):
                if prog in known and self.tenant_of(self.program(prog)) != tenant:
                    errors.append((("hotlines", i, "menu"), f"its menus reach programme {prog!r} of tenant "
                                   f"{self.tenant_of(self.program(prog))!r}, not the hotline's ({tenant!r})"))
        for i, sector in enumerate(cases.sectors):
            if sector.program in known and self.tenant_of(self.program(sector.program)) != sector.tenant:
                errors.append((("cases", "sectors", i, "program"), f"programme {sector.program!r} is tenant "
                               f"{self.tenant_of(self.program(sector.program))!r}'s, not {sector.tenant!r}'s"))
        return errors

    def reachable_menus(self, menu_id: str) -> list[str]:
        """``menu_id`` and every submenu a caller can reach from it, each once,
        breadth first in key order (a menu before its submenus)."""
        seen, todo = [], [menu_id]
        while todo:
            current = todo.pop(0)
            if current in seen or current not in self.menus:
                continue
            seen.append(current)
            todo.extend(o.menu for _key, o in sorted(self.menus[current].options.items()) if o.menu)
        return seen

    def menu_programs(self, menu_id: str) -> set[str]:
        """Every programme a caller can reach from ``menu_id`` (submenus included)."""
        programs = set()
        for current in self.reachable_menus(menu_id):
            menu = self.menus[current]
            if menu.program:
                programs.add(menu.program)
            for option in menu.options.values():
                if option.program:
                    programs.add(option.program)
                if option.answer in self.answers:
                    programs.add(self.answers[option.answer].program)
        return programs

    # Look-ups used on every call; the tuples are small, so a scan is cheapest.
    def hotline(self, number: str) -> Hotline | None:
        return next((h for h in self.hotlines if h.number == number), None)

    def queue(self, queue_id: str) -> Queue | None:
        return next((q for q in self.queues if q.id == queue_id), None)

    def program_queue(self, program_id: str) -> Queue:
        return next(q for q in self.queues if q.program == program_id)

    def program(self, program_id: str) -> Program:
        return next(p for p in self.programs if p.id == program_id)

    def request_type(self, request_type_id: str) -> RequestType | None:
        return next((r for r in self.request_types if r.id == request_type_id), None)

    def queue_members(self, queue: Queue) -> tuple[Agent, ...]:
        if queue.served_by_all_agents:
            tenant = self.tenant_of(queue)
            return tuple(a for a in self.agents if self.tenant_of(a) == tenant)
        return tuple(a for a in self.agents if queue.program in a.skills)

    def agent_queues(self, agent: Agent) -> list[tuple[Queue, int]]:
        """The queues an agent joins on login, with the member penalty of each."""
        out = []
        tenant = self.tenant_of(agent)
        for q in self.queues:
            if q.served_by_all_agents:
                if self.tenant_of(q) == tenant:
                    out.append((q, 0))
            elif q.program in agent.skills:
                out.append((q, SKILL_PENALTY[agent.skills[q.program]]))
        return out

    def agent(self, agent_id: str) -> Agent | None:
        return next((a for a in self.agents if a.id == agent_id), None)

    def agent_tenant(self, agent: Agent) -> str | None:
        """The tenant whose cases ``agent`` works on (None: no cases configured)."""
        return self.tenant_of(agent)

    def tenant_of(self, item: "Agent | Hotline | Program | Queue") -> str | None:
        """The tenant of an agent, a hotline, a programme or a queue: its own
        (a programme's queue: its programme's), else the first one (None: no cases)."""
        if self.cases is None:
            return None
        if isinstance(item, Queue) and item.program is not None:
            program = next((p for p in self.programs if p.id == item.program), None)
            if program is not None:
                return self.tenant_of(program)
        return item.tenant or self.cases.tenants[0].id

    @cached_property
    def _queue_tenant_labels(self) -> dict[str, str]:
        return {q.id: self.tenant_of(q) or NO_TENANT for q in self.queues}

    def tenant_label(self, queue_id: str) -> str:
        """The ``tenant`` label of a queue's (a programme's) metrics: bounded
        by the configuration; ``none`` without cases (config/cases.yaml)."""
        return self._queue_tenant_labels.get(queue_id, NO_TENANT)

    def tenant_queues(self, tenant: str) -> tuple[Queue, ...]:
        return tuple(q for q in self.queues if self.tenant_label(q.id) == tenant)

    def agent_by_endpoint(self, endpoint: str) -> Agent | None:
        return next((a for a in self.agents if a.sip_username == endpoint), None)

    def prompt_text(self, prompt_id: str) -> str:
        return self.prompts[prompt_id]
