"""Case metrics: open and overdue cases, and the totals of the audit trail.

A collector over the last snapshot read from the case database
(``cases.figures.FigureReader``, refreshed by the engine off the event
loop). Labels are bounded by the configuration: tenant, sector, kind,
severity (every combination of a tenant's sectors is exported from the
first scrape, at zero). Like the live figures, the snapshot is only shown
while fresh: with the database unreachable ``ivr_case_figures_up`` is 0 and
the case series are absent rather than stale.

The counters are totals read from the audit trail, so they are exact across
processes and restarts; Prometheus sees a plain counter.
"""

from __future__ import annotations

import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from core.configuration.model import CASE_KINDS, SEVERITIES, Cases

LABELS = ["tenant", "sector", "kind", "severity"]
# (audit actions added up, metric, help)
COUNTERS = (
    (("register",), "ivr_cases_opened", "Cases registered."),
    (("resolve",), "ivr_cases_resolved", "Resolutions of cases (a case resolved again after a reopening counts "
                                         "again)."),
    (("reopen", "dispute"), "ivr_cases_reopened", "Cases reopened after a resolution or closing (by an agent, or "
                                                  "by the citizen's no to the service check)."),
    (("escalate",), "ivr_cases_escalated", "Escalations: a case found past its first-response or resolution "
                                           "deadline."),
    (("confirm",), "ivr_cases_confirmed", "Service checks answered yes: the citizen got the service, the case "
                                          "was closed."),
    (("dispute",), "ivr_cases_disputed", "Service checks answered no: the citizen did not get the service, the "
                                         "case was reopened."),
    (("unreached",), "ivr_cases_check_unreached", "Service checks that ended with every call unanswered."),
)


class CaseMetrics:
    def __init__(self, config: Cases, *, max_age: float = 120.0, clock=time.monotonic):
        self._labels = [(s.tenant, s.id, k, sev) for s in config.sectors for k in CASE_KINDS for sev in SEVERITIES]
        self._figures = None
        self._refreshed: float | None = None
        self._max_age = max_age
        self._clock = clock
        self.failures = 0

    def update(self, figures) -> None:
        """A fresh snapshot (``cases.figures.CaseFigures``)."""
        self._figures = figures
        self._refreshed = self._clock()

    def failed(self) -> None:
        self.failures += 1

    @property
    def fresh(self) -> bool:
        return self._refreshed is not None and self._clock() - self._refreshed <= self._max_age

    def describe(self):
        return [GaugeMetricFamily("ivr_case_figures_up", "1 when the case figures were read from the database "
                                  "recently; 0 and the case series absent otherwise.")]

    def collect(self):
        fresh = self.fresh
        yield GaugeMetricFamily("ivr_case_figures_up", "1 when the case figures were read from the database "
                                "recently; 0 and the case series absent otherwise.", value=1 if fresh else 0)
        if not fresh:
            return
        f = self._figures
        open_cases = GaugeMetricFamily("ivr_cases_open", "Cases not resolved or closed.", labels=LABELS)
        overdue = GaugeMetricFamily("ivr_cases_overdue", "Open cases past their first-response or resolution "
                                    "deadline.", labels=LABELS)
        in_time = CounterMetricFamily("ivr_cases_resolved_within_deadline", "Resolutions made by the case's "
                                      "resolution deadline.", labels=LABELS)
        counters = {actions: CounterMetricFamily(name, doc, labels=LABELS) for actions, name, doc in COUNTERS}
        known = set(self._labels)
        extra = sorted(({k for k in f.open} | {k for k in f.overdue} | {k for _, k in f.totals}) - known)
        for labels in self._labels + extra:    # a label set config no longer has is still shown
            values = list(labels)
            open_cases.add_metric(values, f.open.get(labels, 0))
            overdue.add_metric(values, f.overdue.get(labels, 0))
            in_time.add_metric(values, f.resolved_in_time.get(labels, 0))
            for actions, family in counters.items():
                family.add_metric(values, sum(f.totals.get((action, labels), 0) for action in actions))
        yield open_cases
        yield overdue
        yield in_time
        yield from counters.values()
