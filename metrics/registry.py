"""Every metric the engine exports, built on an injected registry.

Labels are bounded by the configuration (queue ids, hotline numbers, AGI
verbs): never a caller number or an ID. Each known label set is initialised
to zero so that rates and alerts work from the first scrape.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ivr.citizens.governorates import LABEL_VALUES as GOVERNORATE_LABELS
from ivr.configuration import Config
from ivr.configuration.model import AUTO_PAUSE_REASON

AGI_VERBS = ("STREAM", "WAIT", "SET", "GET", "CHANNEL", "other")
AGENT_STATES = ("offline", "available", "ringing", "on_call", "wrapup", "paused")
CALLBACK_OUTCOMES = ("connected", "no_answer", "busy", "failed", "invalid_number", "cancelled")
# The request_type label of a call whose caller chose none (fallback paths).
NO_REQUEST_TYPE = "none"


class EngineMetrics:
    def __init__(self, config: Config, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.queue_ids = tuple(q.id for q in config.queues)
        self.request_types = tuple(t.id for t in config.request_types) + (NO_REQUEST_TYPE,)
        # The `program` label is the queue id: one queue per programme plus
        # the shared fallback queue, labelled `shared`. `request_type` is what
        # the caller chose in the menus, `none` when the caller chose nothing.
        # `governorate` comes from the caller's national ID or landline area
        # code: 27 governorates, `abroad` and `unknown`.
        queue_labels = ["program", "request_type", "governorate"]
        self.queue_offered = Counter(
            "ivr_queue_offered", "Calls that entered a queue (app_queue QueueCallerJoin), once per call and queue.",
            queue_labels, registry=r)
        self.queue_answered = Counter(
            "ivr_queue_answered", "Queued calls connected to an agent (AgentConnect), once per call and queue.",
            queue_labels, registry=r)
        self.queue_abandoned = Counter(
            "ivr_queue_abandoned", "Queued calls whose caller hung up while waiting, once per call and queue.",
            queue_labels, registry=r)
        for q in self.queue_ids:
            for t in self.request_types:
                for g in GOVERNORATE_LABELS:
                    for c in (self.queue_offered, self.queue_answered, self.queue_abandoned):
                        c.labels(program=q, request_type=t, governorate=g)
        self.menu_exits = Counter(
            "ivr_menu_exits", "Callers leaving the menus, by hotline, where they went, what for, and why.",
            ["hotline", "program", "request_type", "outcome"], registry=r)
        for h in config.hotlines:
            for queue, request_type, outcome in _reachable_routes(config, h):
                self.menu_exits.labels(hotline=h.number, program=queue, request_type=request_type, outcome=outcome)
        self.national_id_entries = Counter(
            "ivr_national_id_entries", "National ID entry steps: invalid entries, re-entries, and how entry ended.",
            ["outcome"], registry=r)
        for outcome in ("invalid", "reentered", "confirmed", "gave_up"):
            self.national_id_entries.labels(outcome=outcome)
        self.closed_calls = Counter("ivr_closed_calls", "Calls that arrived outside opening hours.",
                                    ["hotline"], registry=r)
        self.callback_requests = Counter("ivr_callback_requests", "Callers who asked to be called back.",
                                         ["hotline", "reason"], registry=r)
        for h in config.hotlines:
            if h.schedule:
                self.closed_calls.labels(hotline=h.number)
                self.callback_requests.labels(hotline=h.number, reason="closed")
        self.survey_ratings = Counter(
            "ivr_survey_ratings", "Post-call survey answers by programme; score `none` when the caller gave none.",
            ["program", "score"], registry=r)
        for p in config.programs:
            if p.survey:
                for score in ("1", "2", "3", "4", "5", "none"):
                    self.survey_ratings.labels(program=p.id, score=score)
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
        for kind in ("accounted", "duplicate", "ignored", "unknown_queue", "malformed"):
            self.ami_events.labels(kind=kind)

        # --- call distribution (queues/) ---------------------------------
        self.agents_by_state = Gauge(
            "ivr_agents", "Agents by programme (a queue they serve) and state: offline, available, ringing, "
            "on_call, wrapup, paused.", ["program", "state"], registry=r)
        for q in self.queue_ids:
            for state in AGENT_STATES:
                self.agents_by_state.labels(program=q, state=state)
        self.agent_pauses = Counter(
            "ivr_agent_pauses", "Agent pauses by reason; no_answer is the engine's auto-pause.",
            ["reason"], registry=r)
        for reason in tuple(pr.id for pr in config.agent_policy.pause_reasons) + (AUTO_PAUSE_REASON,):
            self.agent_pauses.labels(reason=reason)
        self.agent_actions = Counter(
            "ivr_agent_actions", "Agent log-in/log-out/pause/resume requests, by source (phone, cli) and result.",
            ["action", "source", "result"], registry=r)
        self.queue_priority_calls = Counter(
            "ivr_queue_priority_calls", "Callers queued with a raised priority, by the rule that raised it.",
            ["program", "rule"], registry=r)
        self.queue_overflows = Counter(
            "ivr_queue_overflows", "Callers who reached a queue's limit (reason: max_wait or full) and what they "
            "chose (outcome: callback or overflow).", ["program", "reason", "outcome"], registry=r)
        for q in self.queue_ids:
            for reason in ("max_wait", "full"):
                for outcome in ("callback", "overflow"):
                    self.queue_overflows.labels(program=q, reason=reason, outcome=outcome)
        self.queue_announcements = Counter(
            "ivr_queue_announcements", "Position and wait announcements to waiting callers (kind: join, periodic).",
            ["program", "kind"], registry=r)
        self.queue_estimated_wait = Histogram(
            "ivr_queue_estimated_wait_seconds", "Wait announced to callers when they joined a queue.",
            ["program"], registry=r,
            buckets=(15, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600))
        self.callbacks = Counter(
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

    def observe_agi_command(self, verb: str, seconds: float) -> None:
        # Playback and digit waits last as long as the caller; they say
        # nothing about the service's speed.
        if verb in ("STREAM", "WAIT", "GET DATA"):
            return
        self.agi_command_seconds.labels(verb=verb if verb in AGI_VERBS else "other").observe(seconds)

    def count_session(self, route: str, outcome: str) -> None:
        route = route if route in ("hotline", "survey", "agent", "callback", "overflow") else "other"
        self.agi_sessions.labels(route=route, outcome=outcome).inc()


def _reachable_routes(config: Config, hotline) -> set[tuple[str, str, str]]:
    """Every (queue, request type, outcome) a caller of this hotline can end in."""
    routes = {(hotline.fallback_queue, NO_REQUEST_TYPE, "retries_exhausted")}
    seen, todo = set(), [hotline.menu]
    while todo:
        menu_id = todo.pop()
        if menu_id in seen:
            continue
        seen.add(menu_id)
        menu = config.menus[menu_id]
        if menu.program:
            routes.add((config.program_queue(menu.program).id, NO_REQUEST_TYPE, "retries_exhausted"))
        for option in menu.options.values():
            if option.menu:
                todo.append(option.menu)
            else:
                routes.add((config.program_queue(option.program).id, option.request_type or NO_REQUEST_TYPE,
                            "choice"))
    return routes


def sample_sum(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """Sum of every sample ``name`` whose labels include ``labels`` (e.g. all
    request types of one programme)."""
    wanted = set(labels.items())
    return sum(s.value for metric in registry.collect() for s in metric.samples
               if s.name == name and wanted <= set(s.labels.items()))
