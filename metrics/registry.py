"""Every metric the engine exports, built on an injected registry.

Labels are bounded by the configuration (queue ids, hotline numbers, AGI
verbs): never a caller number or an ID. Each known label set is initialised
to zero so that rates and alerts work from the first scrape.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ivr.configuration import Config

AGI_VERBS = ("STREAM", "WAIT", "SET", "GET", "CHANNEL", "other")
SESSION_OUTCOMES = ("ok", "hangup", "unknown_route", "protocol_error", "connection_lost", "error", "cancelled")
MENU_OUTCOMES = ("choice", "retries_exhausted")


class EngineMetrics:
    def __init__(self, config: Config, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.queue_ids = tuple(q.id for q in config.queues)
        # The `program` label is the queue id: one queue per programme plus
        # the general fallback queue, labelled `general`.
        self.queue_offered = Counter(
            "ivr_queue_offered", "Calls that entered a queue (app_queue QueueCallerJoin), once per call and queue.",
            ["program"], registry=r)
        self.queue_answered = Counter(
            "ivr_queue_answered", "Queued calls connected to an agent (AgentConnect), once per call and queue.",
            ["program"], registry=r)
        self.queue_abandoned = Counter(
            "ivr_queue_abandoned", "Queued calls whose caller hung up while waiting, once per call and queue.",
            ["program"], registry=r)
        for q in self.queue_ids:
            for c in (self.queue_offered, self.queue_answered, self.queue_abandoned):
                c.labels(program=q)
        self.menu_exits = Counter(
            "ivr_menu_exits", "Callers leaving the main menu, by where they went and why.",
            ["hotline", "program", "outcome"], registry=r)
        for h in config.hotlines:
            for program in h.menu.options.values():
                self.menu_exits.labels(hotline=h.number, program=program, outcome="choice")
            self.menu_exits.labels(hotline=h.number, program=h.fallback_queue, outcome="retries_exhausted")
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

    def observe_agi_command(self, verb: str, seconds: float) -> None:
        # Playback and digit waits last as long as the caller; they say
        # nothing about the service's speed.
        if verb in ("STREAM", "WAIT"):
            return
        self.agi_command_seconds.labels(verb=verb if verb in AGI_VERBS else "other").observe(seconds)

    def count_session(self, route: str, outcome: str) -> None:
        route = route if route in ("hotline",) else "other"
        self.agi_sessions.labels(route=route, outcome=outcome).inc()
