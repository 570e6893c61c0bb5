"""Every metric the engine exports, built on an injected registry.

Labels are bounded by the configuration (queue ids, hotline numbers, AGI
verbs): never a caller number or an ID. Each known label set is initialised
to zero so that rates and alerts work from the first scrape.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client import disable_created_metrics as _disable_created_metrics
from prometheus_client.core import GaugeMetricFamily

from core.citizens.governorates import LABEL_VALUES as GOVERNORATE_LABELS
from core.configuration import Config
from core.contract import Route
from core.configuration.model import ANSWER_REQUEST_TYPE, AUTO_PAUSE_REASON, CALLBACK_LIMITS, FOLLOW_UP_REQUEST_TYPE

from .cases import CaseMetrics



def configure_exposition() -> None:
    """Once per process, by its composition root: no ``*_created`` series.
    They would double every counter's series for a timestamp nobody here
    uses (Prometheus detects counter resets by itself). prometheus_client
    keeps this switch process-wide, so it is thrown here, not at import."""
    _disable_created_metrics()

AGI_VERBS = ("STREAM", "WAIT", "SET", "GET", "EXEC", "CHANNEL", "other")
# How a finished call ended (the call record's `outcome`; docs/metrics.md).
CALL_OUTCOMES = ("answered", "abandoned", "short_abandoned", "callback", "overflow_callback", "closed",
                 "ivr_hangup", "self_service", "no_queue")
MENU_NODE_OUTCOMES = ("choice", "retries_exhausted", "follow_up", "answer", "hangup")
# How a follow-up by reference went, step by step (ivr/flow/follow_up.py RESULTS).
FOLLOW_UP_RESULTS = ("found", "not_found", "wrong_check_digit", "incomplete", "unavailable", "gave_up")
# Hotline waits: the service-level thresholds (10, 20, 30, 60 s) are bucket
# bounds, so `le="20"` over `_count` is the share answered within 20 s.
WAIT_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1200, 1800)
TALK_BUCKETS = (30, 60, 120, 180, 240, 300, 420, 600, 900, 1200, 1800)
# The hotline label of a call whose hotline is not known (never expected:
# every call passes [ivr-answer], which names it).
UNKNOWN_HOTLINE = "unknown"
# AMI event lag: the alert's 1 s threshold is a bucket bound, so the p99
# estimated by histogram_quantile is exact around it.
AMI_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
AGENT_STATES = ("offline", "available", "ringing", "on_call", "wrapup", "paused")
CALLBACK_OUTCOMES = ("connected", "no_answer", "busy", "failed", "invalid_number", "cancelled")
# The request_type label of a call whose caller chose none (fallback paths).
NO_REQUEST_TYPE = "none"


class EngineMetrics:
    def __init__(self, config: Config, registry: CollectorRegistry | None = None, *, zero_fill: bool = True):
        """``zero_fill=False`` leaves out the zeros of every known label set
        (about 17,000 series with the demo configuration, most of the cost
        of building this object): for a registry nothing scrapes, such as
        the private one of a classic-AGI process, which serves one call."""
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.queue_ids = tuple(q.id for q in config.queues)
        self.request_types = tuple(t.id for t in config.request_types) + (NO_REQUEST_TYPE,)
        # The `program` label is the queue id: one queue per programme plus
        # the shared fallback queue, labelled `shared`. `request_type` is what
        # the caller chose in the menus, `none` when the caller chose nothing.
        # `governorate` comes from the caller's national ID or landline area
        # code: 27 governorates, `abroad` and `unknown`.
        # `hotline` is the number the call came in on.
        self.hotlines = tuple(h.number for h in config.hotlines)
        # Each line's tenant (``none`` without cases), for the call records.
        self.hotline_tenants = {h.number: config.tenant_of(h) or NO_TENANT for h in config.hotlines}
        sup = config.supervision
        self.short_abandon_seconds = sup.short_abandon_seconds
        self.service_level_seconds = sup.service_level.threshold_seconds
        # Every metric labelled by programme (queue) carries its `tenant` too,
        # set from the configuration (``_Tenanted``): one ministry's figures
        # never mix with another's, and no call site can get it wrong.
        tenanted = _tenanting(config)
        queue_labels = ["hotline", "program", "request_type", "governorate"]
        self.calls_received = Counter(
            "ivr_calls_received", "Calls delivered to a hotline number and answered by Asterisk, once per call.",
            ["hotline"], registry=r)
        self.calls_ended = Counter(
            "ivr_calls_ended", "Finished calls by final outcome (the call record's outcome), once per call.",
            ["hotline", "outcome"], registry=r)
        for h in self.hotlines if zero_fill else ():
            self.calls_received.labels(hotline=h)
            for outcome in CALL_OUTCOMES:
                self.calls_ended.labels(hotline=h, outcome=outcome)
        self.queue_offered = tenanted(Counter,
            "ivr_queue_offered", "Calls that entered a queue (app_queue QueueCallerJoin), once per call and queue.",
            queue_labels, registry=r)
        self.queue_answered = tenanted(Counter,
            "ivr_queue_answered", "Queued calls connected to an agent (AgentConnect), once per call and queue.",
            queue_labels, registry=r)
        self.queue_answered_within_threshold = tenanted(Counter,
            "ivr_queue_answered_within_threshold",
            f"Answered calls that waited at most the service-level threshold ({self.service_level_seconds} s).",
            queue_labels, registry=r)
        self.queue_abandoned = tenanted(Counter,
            "ivr_queue_abandoned", "Queued callers who hung up while waiting, after more than "
            f"{self.short_abandon_seconds} s (short abandons are counted apart).", queue_labels, registry=r)
        self.queue_short_abandoned = tenanted(Counter,
            "ivr_queue_short_abandoned", f"Queued callers who hung up within {self.short_abandon_seconds} s of "
            "joining: left out of the rates.", queue_labels, registry=r)
        queue_counters = (self.queue_offered, self.queue_answered, self.queue_answered_within_threshold,
                          self.queue_abandoned, self.queue_short_abandoned)
        for h in config.hotlines if zero_fill else ():
            for q, t in _queue_routes(config, h):
                for g in GOVERNORATE_LABELS:
                    for c in queue_counters:
                        c.labels(hotline=h.number, program=q, request_type=t, governorate=g)
        self.queue_wait_seconds = tenanted(Histogram,
            "ivr_queue_wait_seconds", "Time from joining a queue to an agent's connect (answered) or the caller's "
            "hang-up (abandoned, short abandons included).", ["program", "outcome"], registry=r,
            buckets=WAIT_BUCKETS)
        self.queue_talk_seconds = tenanted(Histogram,
            "ivr_queue_talk_seconds", "Time from an agent's connect to the caller's hang-up.", ["program"],
            registry=r, buckets=TALK_BUCKETS)
        for q in self.queue_ids:
            for outcome in ("answered", "abandoned"):
                self.queue_wait_seconds.labels(program=q, outcome=outcome)
            self.queue_talk_seconds.labels(program=q)
        self.menu_node_exits = Counter(
            "ivr_menu_node_exits", "Where callers leave the IVR: the menu they were in and how (choice, "
            "retries_exhausted, hangup).", ["hotline", "node", "outcome"], registry=r)
        for h in config.hotlines if zero_fill else ():
            for node in config.reachable_menus(h.menu):
                for outcome in MENU_NODE_OUTCOMES:
                    self.menu_node_exits.labels(hotline=h.number, node=node, outcome=outcome)
        self.call_records = Counter(
            "ivr_call_records", "Call records written to the Redis stream (result: written, failed).",
            ["result"], registry=r)
        for result in ("written", "failed"):
            self.call_records.labels(result=result)
        # Targets from config/supervision.yaml, for alerts and dashboards.
        self.target_answer_ratio = tenanted(Gauge, "ivr_target_answer_ratio", "Answer-rate target per programme.",
                                         ["program"], registry=r)
        self.target_service_level_ratio = tenanted(Gauge,
            "ivr_target_service_level_ratio", "Service-level target per programme (share answered within the "
            "threshold).", ["program"], registry=r)
        self.service_level_threshold = Gauge("ivr_service_level_threshold_seconds",
                                             "The service-level threshold.", registry=r)
        self.service_level_threshold.set(self.service_level_seconds)
        for q in self.queue_ids:
            self.target_answer_ratio.labels(program=q).set(sup.answer_rate_target(q))
            self.target_service_level_ratio.labels(program=q).set(sup.service_level.target_ratio)
        # Live figures read from Redis: exported only while fresh (LiveFigures).
        self.live = LiveFigures()
        r.register(self.live)
        # Case figures from the case database (metrics/cases.py): registered
        # by the engine when it has a case store (app/engine.py).
        self.cases = CaseMetrics(config.cases) if config.cases is not None else None
        self.callers_waiting = tenanted(self.live.gauge,
            "ivr_queue_callers_waiting", "Callers waiting in the queue now (callback placeholders included).",
            ["program"])
        self.longest_wait = tenanted(self.live.gauge,
            "ivr_queue_longest_wait_seconds", "How long the longest-waiting caller has waited now.", ["program"])
        self.staffing_needed = tenanted(self.live.gauge,
            "ivr_staffing_agents_needed", "Agents needed to reach the service-level target (Erlang C) at the "
            "last hour's arrival rate and handle time.", ["program"])
        self.staffing_offered_per_hour = tenanted(self.live.gauge,
            "ivr_staffing_offered_per_hour", "Calls offered per hour over the staffing window.", ["program"])
        self.staffing_handle_seconds = tenanted(self.live.gauge,
            "ivr_staffing_handle_seconds", "Mean handle time (talk + wrap-up) over the staffing window.",
            ["program"])
        self.menu_exits = tenanted(Counter,
            "ivr_menu_exits", "Callers leaving the menus, by hotline, where they went, what for, and why.",
            ["hotline", "program", "request_type", "outcome"], registry=r)
        for h in config.hotlines if zero_fill else ():
            for queue, request_type, outcome in _reachable_routes(config, h):
                self.menu_exits.labels(hotline=h.number, program=queue, request_type=request_type, outcome=outcome)
        self.national_id_entries = Counter(
            "ivr_national_id_entries", "National ID entry steps: invalid entries, re-entries, and how entry ended.",
            ["outcome"], registry=r)
        for outcome in ("invalid", "reentered", "confirmed", "gave_up"):
            self.national_id_entries.labels(outcome=outcome)
        self.case_follow_ups = Counter(
            "ivr_case_follow_ups", "Follow-ups of a case by its reference on the hotline: each entry's result "
            "(found, not_found, wrong_check_digit, incomplete, unavailable) and the callers who gave up.",
            ["result"], registry=r)
        for result in FOLLOW_UP_RESULTS:
            self.case_follow_ups.labels(result=result)
        self.closed_calls = Counter("ivr_closed_calls", "Calls that arrived outside opening hours.",
                                    ["hotline"], registry=r)
        self.callback_requests = Counter("ivr_callback_requests", "Callers who asked to be called back.",
                                         ["hotline", "reason"], registry=r)
        for h in config.hotlines:
            if h.schedule:
                self.closed_calls.labels(hotline=h.number)
                self.callback_requests.labels(hotline=h.number, reason="closed")
        self.survey_ratings = tenanted(Counter,
            "ivr_survey_ratings", "Post-call survey answers by programme; score `none` when the caller gave none.",
            ["program", "score"], registry=r)
        for p in config.programs:
            if p.survey:
                for score in ("1", "2", "3", "4", "5", "none"):
                    self.survey_ratings.labels(program=p.id, score=score)
        self.self_service_answers = tenanted(
            Counter, "ivr_self_service_answers", "Self-service answers said to callers, by answer and whether the "
            "caller found it useful (yes, no: on to an agent, none: no reply).", ["program", "answer", "useful"],
            registry=r)
        for answer_id, answer in config.answers.items() if zero_fill else ():
            for useful in ("yes", "no", "none"):
                self.self_service_answers.labels(program=answer.program, answer=answer_id, useful=useful)
        self.agi_sessions = Counter(
            "ivr_fastagi_sessions", "FastAGI sessions handled, by route and outcome.",
            ["route", "outcome"], registry=r)
        self.agi_command_seconds = Histogram(
            "ivr_fastagi_command_seconds",
            "Time from sending an AGI command to its reply (playback commands excluded).",
            ["verb"], registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
        self.ami_connected = Gauge("ivr_ami_connected", "1 while logged in to the Asterisk Manager Interface.",
                                   registry=r)
        self.ami_reconnects = Counter("ivr_ami_reconnects", "AMI logins after the first one.", registry=r)
        self.ami_events = Counter("ivr_ami_events", "AMI events received, by accounting relevance.",
                                  ["kind"], registry=r)
        self.redis_persistence_ok = Gauge(
            "ivr_redis_persistence_ok", "1 while Redis writes to its disk (its INFO persistence reports no failed "
            "AOF write or snapshot); 0: it refuses writes, the engine keeps what it can in memory.", registry=r)
        self.redis_persistence_ok.set(1)
        self.call_facts_waiting = Gauge(
            "ivr_call_facts_waiting", "Calls whose IVR facts (programme, request type...) the engine keeps in "
            "memory because Redis failed them; written as soon as Redis answers.", registry=r)
        self.ami_events_waiting = Gauge(
            "ivr_ami_events_waiting", "AMI events a consumer holds back because Redis failed them; kept, in "
            "order, and tried again until they go through.", ["consumer"], registry=r)
        for kind in ("accounted", "duplicate", "ignored", "unknown_queue", "malformed", "clock_skew"):
            self.ami_events.labels(kind=kind)
        # How far behind Asterisk each lane of the event pump is (queues/events.py):
        # from the event's `Timestamp` (Asterisk's clock, manager.conf
        # timestampevents) to the moment the lane's consumers have handled it.
        # Labelled by lane only (a fixed set, never a caller or a channel);
        # the lanes are initialised by the pump that owns them.
        self.ami_event_lag_seconds = Histogram(
            "ivr_ami_event_lag_seconds",
            "Age of an AMI event when a consumer lane has handled it: from Asterisk's Timestamp to handled "
            "(negative ages, clock skew, count as 0).", ["consumer"], registry=r, buckets=AMI_LAG_BUCKETS)

        # --- call distribution (queues/) ---------------------------------
        self.agents_by_state = tenanted(self.live.gauge,
            "ivr_agents", "Agents by programme (a queue they serve) and state: offline, available, ringing, "
            "on_call, wrapup, paused.", ["program", "state"])
        for q in self.queue_ids:
            for state in AGENT_STATES:
                self.agents_by_state.labels(program=q, state=state)
        self.agent_pauses = Counter(
            "ivr_agent_pauses", "Agent pauses by reason; no_answer is the engine's auto-pause.",
            ["reason"], registry=r)
        for reason in tuple(pr.id for pr in config.agent_policy.pause_reasons) + (AUTO_PAUSE_REASON,):
            self.agent_pauses.labels(reason=reason)
        self.agent_actions = Counter(
            "ivr_agent_actions", "Agent log-in/log-out/pause/resume requests, by source (phone, cli, desktop) and result.",
            ["action", "source", "result"], registry=r)
        self.queue_priority_calls = tenanted(Counter,
            "ivr_queue_priority_calls", "Callers queued with a raised priority, by the rule that raised it.",
            ["program", "rule"], registry=r)
        self.queue_overflows = tenanted(Counter,
            "ivr_queue_overflows", "Callers who reached a queue's limit (reason: max_wait or full) and what they "
            "chose (outcome: callback or overflow).", ["program", "reason", "outcome"], registry=r)
        for q in self.queue_ids:
            for reason in ("max_wait", "full"):
                for outcome in ("callback", "overflow"):
                    self.queue_overflows.labels(program=q, reason=reason, outcome=outcome)
        self.queue_announcements = tenanted(Counter,
            "ivr_queue_announcements", "Position and wait announcements to waiting callers (kind: join, periodic).",
            ["program", "kind"], registry=r)
        self.queue_estimated_wait = tenanted(Histogram,
            "ivr_queue_estimated_wait_seconds", "Wait announced to callers when they joined a queue.",
            ["program"], registry=r,
            buckets=(15, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600))
        self.callbacks = tenanted(Counter,
            "ivr_callbacks", "Callbacks that ended, by programme (queue) and outcome: connected, no_answer, busy, "
            "failed, invalid_number, cancelled.", ["program", "outcome"], registry=r)
        for q in self.queue_ids:
            for outcome in CALLBACK_OUTCOMES:
                self.callbacks.labels(program=q, outcome=outcome)
        self.callbacks_pending = Gauge("ivr_callbacks_pending", "Callbacks not yet ended (waiting, queued or "
                                       "dialling).", registry=r)
        for h in config.hotlines:
            for reason in ("queue", "overflow"):
                self.callback_requests.labels(hotline=h.number, reason=reason)
        self.callback_refusals = Counter(
            "ivr_callback_refusals", "Callbacks not offered or not registered because an abuse limit was reached "
            "(reason: pending_all, pending_queue, number_day; distribution.callbacks).", ["reason"], registry=r)
        for reason in CALLBACK_LIMITS:
            self.callback_refusals.labels(reason=reason)
        for name, metric in list(vars(self).items()):
            setattr(self, name, _memoized(metric))

    def observe_agi_command(self, verb: str, seconds: float) -> None:
        # Playback and digit waits last as long as the caller; they say
        # nothing about the service's speed.
        if verb in ("STREAM", "WAIT", "GET DATA"):
            return
        self.agi_command_seconds.labels(verb=verb if verb in AGI_VERBS else "other").observe(seconds)

    def count_session(self, route: str, outcome: str) -> None:
        route = route if route in Route.ALL else "other"
        self.agi_sessions.labels(route=route, outcome=outcome).inc()


class _Memo:
    """A labelled metric whose children are looked up once per label set.

    ``prometheus_client``'s ``labels()`` validates, converts and sorts the
    values and takes a lock on every call: about 20 µs, several times per
    call and per AMI event (bench/fastagi_bench.py's profile). The label
    sets are few and bounded by the configuration, so each call site's
    child is kept in a dict after its first lookup. No code removes a
    child from these metrics, so a kept child is never stale."""

    __slots__ = ("_metric", "_children")

    def __init__(self, metric):
        self._metric = metric
        self._children: dict = {}

    def labels(self, *values, **labels):
        key = values or tuple(labels.items())
        try:
            return self._children[key]
        except KeyError:
            child = self._children[key] = self._lookup(*values, **labels)
            return child
        except TypeError:   # an unhashable value: prometheus_client says what is wrong with it
            return self._lookup(*values, **labels)

    def _lookup(self, *values, **labels):
        return self._metric.labels(*values, **labels)

    def __getattr__(self, name):
        return getattr(self._metric, name)


class _Tenanted(_Memo):
    """A metric labelled by programme (``program``, the queue id) whose
    ``tenant`` label follows from it (``Config.tenant_label``): callers label
    it as before, by name, and the tenant is added."""

    __slots__ = ("_tenant_of",)

    def __init__(self, metric, tenant_of):
        super().__init__(metric)
        self._tenant_of = tenant_of

    def _lookup(self, **labels: str):
        return self._metric.labels(tenant=self._tenant_of(labels["program"]), **labels)


def _memoized(metric):
    """``metric`` behind a :class:`_Memo` if it has labels (a metric without
    labels has no children to look up)."""
    if isinstance(metric, MetricWrapperBase) and metric._labelnames:
        return _Memo(metric)
    return metric


def _tenanting(config: Config):
    def make(factory, name: str, documentation: str, labelnames, **kw):
        return _Tenanted(factory(name, documentation, ["tenant", *labelnames], **kw), config.tenant_label)
    return make


class LiveFigures:
    """Gauges read from shared state (Redis), exported only while fresh.

    A gauge keeps its last value when the refresh that sets it fails; shown
    as current during a Redis outage it would be a wrong figure nobody
    notices. So these gauges live outside the registry: this collector
    yields them only if the last refresh succeeded within ``max_age``
    seconds, and always yields ``ivr_live_figures_up`` (1 fresh, 0 stale).
    """

    def __init__(self, *, max_age: float = 10.0, clock=time.monotonic):
        self._gauges: list[Gauge] = []
        self._max_age = max_age
        self._clock = clock
        self._refreshed: float | None = None
        self.failures = 0

    def gauge(self, name: str, documentation: str, labels: list[str]) -> Gauge:
        g = Gauge(name, documentation, labels, registry=None)
        self._gauges.append(g)
        return g

    def refreshed(self) -> None:
        """Call after a successful refresh of every live gauge."""
        self._refreshed = self._clock()

    def failed(self) -> None:
        self.failures += 1

    @property
    def fresh(self) -> bool:
        return self._refreshed is not None and self._clock() - self._refreshed <= self._max_age

    def describe(self):
        up = GaugeMetricFamily("ivr_live_figures_up", "1 when the live gauges were refreshed from Redis in the "
                               "last 10 s; 0 and the live gauges absent otherwise.")
        return [up]

    def collect(self):
        fresh = self.fresh
        up = GaugeMetricFamily("ivr_live_figures_up", "1 when the live gauges were refreshed from Redis in the "
                               "last 10 s; 0 and the live gauges absent otherwise.", value=1.0 if fresh else 0.0)
        yield up
        if fresh:
            for g in self._gauges:
                yield from g.collect()


def _queue_routes(config: Config, hotline) -> set[tuple[str, str]]:
    """Every (queue, request type) a call of this hotline can be offered to,
    overflow queues included."""
    routes = {(q, t) for q, t, _ in _reachable_routes(config, hotline)}
    for q, t in list(routes):
        overflow = config.queue(q).overflow_queue if config.queue(q) else None
        if overflow:
            routes.add((overflow, t))
    return routes


def _reachable_routes(config: Config, hotline) -> set[tuple[str, str, str]]:
    """Every (queue, request type, outcome) a caller of this hotline can end in."""
    routes = {(hotline.fallback_queue, NO_REQUEST_TYPE, "retries_exhausted")}
    for menu_id in config.reachable_menus(hotline.menu):
        menu = config.menus[menu_id]
        if menu.program:
            routes.add((config.program_queue(menu.program).id, NO_REQUEST_TYPE, "retries_exhausted"))
        for option in menu.options.values():
            if option.action == "follow_up":
                # To an agent of the case's sector, or the fallback (unknown case).
                routes.add((hotline.fallback_queue, FOLLOW_UP_REQUEST_TYPE, "follow_up"))
                tenant = config.tenant_of(hotline)
                for sector in (config.cases.sectors if config.cases else ()):
                    if sector.tenant == tenant and sector.program and config.queue(sector.program):
                        routes.add((config.program_queue(sector.program).id, FOLLOW_UP_REQUEST_TYPE, "follow_up"))
            elif option.answer is not None:
                program = config.answers[option.answer].program
                routes.add((config.program_queue(program).id, ANSWER_REQUEST_TYPE, "answer"))
            elif not option.menu:
                routes.add((config.program_queue(option.program).id, option.request_type or NO_REQUEST_TYPE,
                            "choice"))
    return routes


def sample_sum(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """Sum of every sample ``name`` whose labels include ``labels`` (e.g. all
    request types of one programme)."""
    wanted = set(labels.items())
    return sum(s.value for metric in registry.collect() for s in metric.samples
               if s.name == name and wanted <= set(s.labels.items()))
