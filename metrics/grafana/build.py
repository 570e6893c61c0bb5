"""The supervisors' Grafana dashboard, as code.

    .venv/bin/python -m metrics.grafana.build           # rewrite dashboards/ivr-hotlines.json
    .venv/bin/python -m metrics.grafana.build --check   # exit 1 if the checked-in file is stale

Plain Python dictionaries rather than grafanalib: the dashboard uses a dozen
panel options, which are easier to read here as Grafana's own JSON than
through a library that lags behind Grafana's schema. The checked-in JSON is
what Grafana loads; a unit test fails when it differs from what this file
generates, so the two cannot drift apart.

Every query is raw PromQL over the metrics of docs/metrics.md, not over
recording rules, so the dashboard works against any Prometheus that scrapes
the engine. Ratios sum numerator and denominator over the selected
programmes and hotlines first and divide last (an average of ratios would
weigh a line with 3 calls like one with 3,000); a denominator of zero hides
the series instead of showing 0 %.

Titles are Arabic (the supervisors read Arabic); each panel's description
says in English what it shows. Programme, governorate and menu ids are shown
by their Arabic names from the configuration.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from core.citizens.governorates import ABROAD, GOVERNORATES, UNKNOWN
from core.configuration import Config, load_config
from core.paths import REPO_ROOT

HERE = Path(__file__).resolve().parent
DASHBOARD_FILE = HERE / "dashboards" / "ivr-hotlines.json"
DASHBOARD_UID = "ivr-hotlines"
# Must equal the uid in provisioning/datasources/prometheus.yml (a unit test checks).
DATASOURCE = {"type": "prometheus", "uid": "ivr-prometheus"}

# Template-variable matchers. All are regex matchers so that "All" (.*) and
# a multi-selection ((a|b)) work alike. Every programme-labelled series
# carries its tenant (the ministry): choosing one shows only its queues,
# and the programme and hotline lists offer only its own.
TENANT = 'tenant=~"$tenant"'
PROGRAM = f'{TENANT}, program=~"$program"'
HOTLINE = 'hotline=~"$hotline"'
QUEUE = f"{PROGRAM}, {HOTLINE}"

# The queue without a programme of its own (config/programs.yaml: `shared`).
SHARED_QUEUE_NAME = "الطابور العام"
UNKNOWN_GOVERNORATE_NAME = "غير معروفة"


def _increase(metric: str, by: str | None, window: str, matchers: str = QUEUE) -> str:
    grouping = f"sum by ({by}) " if by else "sum "
    return f"{grouping}(increase({metric}{{{matchers}}}[{window}]))"


def queue_ratio(numerator: str, *, by: str | None, window: str) -> str:
    """numerator / (offered − short-abandoned), each summed before dividing
    (docs/metrics.md); a zero denominator hides the series."""
    offered = _increase("ivr_queue_offered_total", by, window)
    short = _increase("ivr_queue_short_abandoned_total", by, window)
    return f"{_increase(numerator, by, window)} / (({offered} - {short}) > 0)"


def answer_rate(by: str | None, window: str) -> str:
    return queue_ratio("ivr_queue_answered_total", by=by, window=window)


def abandonment_rate(by: str | None, window: str) -> str:
    return queue_ratio("ivr_queue_abandoned_total", by=by, window=window)


def service_level(by: str | None, window: str) -> str:
    return queue_ratio("ivr_queue_answered_within_threshold_total", by=by, window=window)


def drop_off_share(by: str | None) -> str:
    """Callers who hung up in the menus, as a share of calls received."""
    hangups = _increase("ivr_menu_node_exits_total", by, "$__range", f'outcome="hangup", {HOTLINE}')
    received = _increase("ivr_calls_received_total", None, "$__range", HOTLINE)
    match = f" ignoring({by}) group_left()" if by else ""
    return f"{hangups} /{match} ({received} > 0)"


# --- Arabic display names -------------------------------------------------

def display_names(config: Config) -> dict[str, dict[str, str]]:
    """Label value → Arabic name, per label."""
    programs = {p.id: p.name for p in config.programs}
    queues = {q.id: programs.get(q.program or "", SHARED_QUEUE_NAME) for q in config.queues}
    governorates = {g.id: g.name_ar for g in (*GOVERNORATES, ABROAD)} | {UNKNOWN: UNKNOWN_GOVERNORATE_NAME}
    # Menus are named after the programme they serve; the others by their hotline.
    nodes = {}
    for menu_id, menu in config.menus.items():
        if menu.program:
            nodes[menu_id] = programs.get(menu.program, menu_id)
        else:
            lines = [h.number for h in config.hotlines if h.menu == menu_id]
            nodes[menu_id] = f"القائمة الرئيسية {' '.join(lines)}".strip()
    sectors = {s.id: s.name for s in config.cases.sectors} if config.cases else {}
    return {"program": queues, "governorate": governorates, "node": nodes, "sector": sectors}


def _renames(names: dict[str, str]) -> list[dict]:
    # Grafana's renameByRegex runs on each series' display name (the legend),
    # so `takaful_karama · مطلوب` becomes `تكافل وكرامة · مطلوب`. \b keeps
    # `sinai` from matching inside `south_sinai` (underscore is a word character).
    return [{"id": "renameByRegex", "options": {"regex": f"\\b{re.escape(value)}\\b", "renamePattern": name}}
            for value, name in sorted(names.items(), key=lambda kv: (-len(kv[0]), kv[0]))]


# --- Panels ---------------------------------------------------------------

def target(expr: str, legend: str, *, ref: str = "A", instant: bool = False) -> dict:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "instant": instant,
        "legendFormat": legend,
        "range": not instant,
        "refId": ref,
    }


def _field(unit: str, *, min_: float | None = 0, max_: float | None = None, steps: list | None = None,
           decimals: int | None = None, custom: dict | None = None) -> dict:
    defaults: dict = {"unit": unit, "color": {"mode": "thresholds" if steps else "palette-classic"}}
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    if decimals is not None:
        defaults["decimals"] = decimals
    defaults["thresholds"] = {"mode": "absolute", "steps": steps or [{"color": "green", "value": None}]}
    if custom:
        defaults["custom"] = custom
    return {"defaults": defaults, "overrides": []}


def _steps(*pairs: tuple[str, float | None]) -> list[dict]:
    return [{"color": color, "value": value} for color, value in pairs]


# Answer rate and service level: red below 70 %, amber to 80 % (the default
# service-level target), green above. Abandonment: the other way round.
GOOD_HIGH = _steps(("red", None), ("orange", 0.7), ("green", 0.8))
GOOD_LOW = _steps(("green", None), ("orange", 0.1), ("red", 0.2))


def panel(kind: str, title: str, description: str, targets: list[dict], *, w: int, h: int,
          field: dict, options: dict, renames: dict[str, str] | None = None, **extra) -> dict:
    out = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets,
        "fieldConfig": field,
        "options": options,
        "gridPos": {"w": w, "h": h},
    }
    if renames:
        out["transformations"] = _renames(renames)
    out.update(extra)
    return out


def stat(title, description, expr, *, unit, steps=None, w=4, h=4, decimals=None) -> dict:
    return panel("stat", title, description, [target(expr, "", instant=True)], w=w, h=h,
                 field=_field(unit, min_=None, steps=steps, decimals=decimals),
                 options={"colorMode": "value", "graphMode": "none", "justifyMode": "center",
                          "orientation": "auto", "textMode": "value",
                          "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}})


def bars(title, description, targets, *, unit, w, h, steps=None, max_=None, renames=None, decimals=None) -> dict:
    return panel("bargauge", title, description, targets, w=w, h=h, renames=renames,
                 field=_field(unit, max_=max_, steps=steps, decimals=decimals),
                 options={"displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True,
                          "valueMode": "color", "namePlacement": "left", "minVizHeight": 16, "minVizWidth": 8,
                          "sizing": "auto",
                          "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}})


def graph(title, description, targets, *, unit, w, h, max_=None, stacked=False, renames=None,
          overrides=None, **extra) -> dict:
    custom = {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 60 if stacked else 10,
              "showPoints": "never", "spanNulls": False,
              "stacking": {"mode": "normal" if stacked else "none", "group": "A"}}
    field = _field(unit, max_=max_, custom=custom)
    field["overrides"] = overrides or []
    return panel("timeseries", title, description, targets, w=w, h=h, renames=renames, field=field,
                 options={"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                                     "calcs": ["lastNotNull", "max"]},
                          "tooltip": {"mode": "multi", "sort": "desc"}}, **extra)


def row(title: str, description: str) -> dict:
    return {"type": "row", "title": title, "description": description, "collapsed": False, "panels": [],
            "gridPos": {"w": 24, "h": 1}}


# A dashed line for target/needed series (the query with refId B).
DASHED_B = [{"matcher": {"id": "byFrameRefID", "options": "B"},
             "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                            {"id": "custom.fillOpacity", "value": 0}]}]


def case_ratio(by: str | None, window: str) -> str:
    """Resolutions made by their deadline / all resolutions (a zero denominator hides the series)."""
    within = _increase("ivr_cases_resolved_within_deadline_total", by, window, TENANT)
    resolved = _increase("ivr_cases_resolved_total", by, window, TENANT)
    return f"{within} / ({resolved} > 0)"


def case_panels(sectors: dict[str, str], rng: str) -> list[dict]:
    return [
        row("البلاغات", "Cases (docs/cases.md), from the case database: open, critical and past a deadline now; "
            "registered and resolved over the time range; resolutions within the deadline per sector."),
        stat("البلاغات المفتوحة", "Cases open now (ivr_cases_open) of the selected tenants.",
             f"sum(ivr_cases_open{{{TENANT}}})", unit="short", decimals=0),
        stat("بلاغات حرجة مفتوحة", "Critical cases open now: red from the first one (IvrCriticalCaseOpen "
             "alerts on it too).",
             f'sum(ivr_cases_open{{{TENANT}, severity="critical"}})', unit="short", decimals=0,
             steps=_steps(("green", None), ("red", 1))),
        stat("تجاوزت موعدها", "Open cases past their first-response or resolution deadline (ivr_cases_overdue).",
             f"sum(ivr_cases_overdue{{{TENANT}}})", unit="short", decimals=0,
             steps=_steps(("green", None), ("orange", 1))),
        stat("البلاغات المسجلة", "Cases registered over the time range (ivr_cases_opened_total).",
             _increase("ivr_cases_opened_total", None, rng, TENANT), unit="short", decimals=0),
        stat("المحلولة", "Resolutions over the time range (ivr_cases_resolved_total).",
             _increase("ivr_cases_resolved_total", None, rng, TENANT), unit="short", decimals=0),
        stat("الحل في الموعد", "Resolutions made by the case's resolution deadline, as a share of all "
             "resolutions over the time range.",
             case_ratio(None, rng), unit="percentunit", steps=GOOD_HIGH, decimals=1),
        bars("البلاغات المفتوحة حسب الجهة", "Cases open now per sector (the programme for the social-solidarity "
             "lines), most first.",
             [target(f"sort_desc(sum by (sector) (ivr_cases_open{{{TENANT}}}))", "{{sector}}", instant=True)],
             unit="short", w=12, h=8, renames=sectors, decimals=0),
        bars("نسبة الحل في الموعد حسب الجهة", "Per sector: resolutions made by their deadline / all resolutions "
             "over the time range (sectors without a resolution are not shown).",
             [target(case_ratio("sector", rng), "{{sector}}", instant=True)],
             unit="percentunit", max_=1, steps=GOOD_HIGH, w=12, h=8, renames=sectors, decimals=1),
    ]


def panels(names: dict[str, dict[str, str]]) -> list[dict]:
    programs, governorates, nodes = names["program"], names["governorate"], names["node"]
    rng = "$__range"
    return [
        row("نظرة عامة", "Overview of the selected programmes and hotlines over the dashboard's time range."),
        stat("المكالمات الواردة", "Calls received by the selected hotlines over the time range "
             "(ivr_calls_received_total).",
             f'sum(increase(ivr_calls_received_total{{{HOTLINE}}}[{rng}]))', unit="short", decimals=0),
        stat("نسبة الرد", "Answer rate over the time range: answered / (offered − short abandoned), "
             "all selected programmes and hotlines summed before dividing.",
             answer_rate(None, rng), unit="percentunit", steps=GOOD_HIGH, decimals=1),
        stat("نسبة التخلي", "Abandonment rate over the time range: abandoned / (offered − short abandoned).",
             abandonment_rate(None, rng), unit="percentunit", steps=GOOD_LOW, decimals=1),
        stat("مستوى الخدمة", "Service level over the time range: answered within the threshold (20 s) / "
             "(offered − short abandoned).",
             service_level(None, rng), unit="percentunit", steps=GOOD_HIGH, decimals=1),
        stat("في الانتظار الآن", "Callers waiting now in the selected programmes' queues "
             "(ivr_queue_callers_waiting; not split by hotline).",
             f"sum(ivr_queue_callers_waiting{{{PROGRAM}}})", unit="short", decimals=0),
        stat("أطول انتظار الآن", "The longest wait of any caller waiting now in the selected programmes' queues "
             "(ivr_queue_longest_wait_seconds).",
             f"max(ivr_queue_longest_wait_seconds{{{PROGRAM}}})", unit="s",
             steps=_steps(("green", None), ("orange", 60), ("red", 300))),

        row("الرد والتخلي", "Answer and abandonment rates per programme and per hotline over the time range. "
            "Short abandons (within short_abandon_seconds) are left out of both."),
        bars("نسبة الرد حسب البرنامج", "Answer rate per programme over the time range: "
             "answered / (offered − short abandoned).",
             [target(answer_rate("program", rng), "{{program}}", instant=True)],
             unit="percentunit", max_=1, steps=GOOD_HIGH, w=12, h=8, renames=programs, decimals=1),
        bars("نسبة الرد حسب الخط", "Answer rate per hotline over the time range: "
             "answered / (offered − short abandoned).",
             [target(answer_rate("hotline", rng), "{{hotline}}", instant=True)],
             unit="percentunit", max_=1, steps=GOOD_HIGH, w=12, h=8, decimals=1),
        bars("نسبة التخلي حسب البرنامج", "Abandonment rate per programme over the time range: "
             "abandoned / (offered − short abandoned).",
             [target(abandonment_rate("program", rng), "{{program}}", instant=True)],
             unit="percentunit", max_=1, steps=GOOD_LOW, w=12, h=8, renames=programs, decimals=1),
        bars("نسبة التخلي حسب الخط", "Abandonment rate per hotline over the time range: "
             "abandoned / (offered − short abandoned).",
             [target(abandonment_rate("hotline", rng), "{{hotline}}", instant=True)],
             unit="percentunit", max_=1, steps=GOOD_LOW, w=12, h=8, decimals=1),
        graph("نسبة الرد والتخلي خلال الساعة الأخيرة", "Answer rate (solid) and abandonment rate (dashed) "
              "per programme, each point over the hour before it.",
              [target(answer_rate("program", "1h"), "{{program}} · رد"),
               target(abandonment_rate("program", "1h"), "{{program}} · تخلٍّ", ref="B")],
              unit="percentunit", max_=1, w=24, h=8, renames=programs, overrides=DASHED_B),

        row("مستوى الخدمة", "Service level: calls answered within the threshold, against the target."),
        graph("مستوى الخدمة مقابل الهدف", "Service level per programme (solid), each point over the hour "
              "before it: answered within the threshold / (offered − short abandoned); the target "
              "ivr_target_service_level_ratio dashed.",
              [target(service_level("program", "1h"), "{{program}}"),
               target(f"max by (program) (ivr_target_service_level_ratio{{{PROGRAM}}})",
                      "{{program}} · الهدف", ref="B")],
              unit="percentunit", max_=1, w=16, h=9, renames=programs, overrides=DASHED_B),
        bars("مستوى الخدمة حسب البرنامج", "Service level per programme over the time range.",
             [target(service_level("program", rng), "{{program}}", instant=True)],
             unit="percentunit", max_=1, steps=GOOD_HIGH, w=8, h=9, renames=programs, decimals=1),

        row("الطوابير الآن", "The queues now: callers waiting, the longest wait, and agents by state "
            "(live gauges, refreshed from Redis every few seconds; not split by hotline)."),
        bars("في الانتظار الآن حسب البرنامج", "Callers waiting now per programme (ivr_queue_callers_waiting; "
             "callback placeholders included).",
             [target(f"sum by (program) (ivr_queue_callers_waiting{{{PROGRAM}}})", "{{program}}", instant=True)],
             unit="short", w=12, h=8, renames=programs, decimals=0),
        bars("أطول انتظار الآن حسب البرنامج", "Longest wait now per programme (ivr_queue_longest_wait_seconds; 0 with "
             "nobody waiting).",
             [target(f"max by (program) (ivr_queue_longest_wait_seconds{{{PROGRAM}}})", "{{program}}",
                     instant=True)],
             unit="s", w=12, h=8, renames=programs,
             steps=_steps(("green", None), ("orange", 60), ("red", 300))),
        graph("الموظفون حسب الحالة: $program", "Agents serving this programme's queue by state (stacked): "
              "available, ringing, on a call, wrap-up, paused, offline. One panel per selected programme; "
              "an agent serving two programmes counts in both.",
              [target(f"sum by (state) (ivr_agents{{{PROGRAM}}})", "{{state}}")],
              unit="short", w=6, h=8, stacked=True, repeat="program", repeatDirection="h", maxPerRow=4,
              renames={"offline": "غير متصل", "available": "متاح", "ringing": "يرن", "on_call": "في مكالمة",
                       "wrapup": "إنهاء المكالمة", "paused": "استراحة"}),

        row("الاحتياج من الموظفين", "Staffing: agents needed for the service-level target against agents "
            "logged in."),
        graph("الموظفون المطلوبون مقابل المسجلين", "Agents needed to reach the service-level target (Erlang C "
              "over the last hour's traffic, ivr_staffing_agents_needed; dashed) against agents logged in "
              "(ivr_agents in any state but offline; solid), per programme.",
              [target(f'sum by (program) (ivr_agents{{{PROGRAM}, state!="offline"}})', "{{program}} · مسجلون"),
               target(f"sum by (program) (ivr_staffing_agents_needed{{{PROGRAM}}})", "{{program}} · مطلوبون",
                      ref="B")],
              unit="short", w=24, h=8, renames=programs, overrides=DASHED_B),

        row("المكالمات وأوقات الانتظار", "Traffic per hotline and how long callers wait."),
        graph("المكالمات الواردة حسب الخط (مكالمة/ساعة)", "Calls received per hotline, as calls per hour "
              "(rate of ivr_calls_received_total).",
              [target(f"sum by (hotline) (rate(ivr_calls_received_total{{{HOTLINE}}}[$__rate_interval])) * 3600",
                      "{{hotline}}")],
              unit="short", w=12, h=8),
        graph("مدة الانتظار (المئينات)", "Wait-time percentiles from ivr_queue_wait_seconds (selected "
              "programmes; not split by hotline): median, 90th and 95th percentile of answered calls' waits, "
              "and the 90th percentile of abandoned callers' waits (dashed).",
              [target(f'histogram_quantile({q}, sum by (le) (rate(ivr_queue_wait_seconds_bucket'
                      f'{{{PROGRAM}, outcome="answered"}}[$__rate_interval])))', label, ref=ref)
               for q, label, ref in ((0.5, "الوسيط", "A"), (0.9, "90%", "C"), (0.95, "95%", "D"))]
              + [target('histogram_quantile(0.9, sum by (le) (rate(ivr_queue_wait_seconds_bucket'
                        f'{{{PROGRAM}, outcome="abandoned"}}[$__rate_interval])))', "90% · المتخلون", ref="B")],
              unit="s", w=12, h=8, overrides=DASHED_B),

        row("المحافظات", "Where callers are from (the governorate of their national ID or landline)."),
        bars("المكالمات حسب المحافظة", "Calls offered to the selected queues per governorate over the time "
             "range (ivr_queue_offered_total), busiest first; a call offered to two queues counts twice.",
             [target(f"sort_desc(sum by (governorate) (increase(ivr_queue_offered_total{{{QUEUE}}}[{rng}])))",
                     "{{governorate}}", instant=True)],
             unit="short", w=24, h=16, renames=governorates, decimals=0),

        row("المغادرة من القوائم", "IVR drop-off: callers who hung up in the menus, before reaching a queue."),
        bars("الإنهاء داخل القوائم حسب القائمة", "Callers who hung up in each menu over the time range "
             '(ivr_menu_node_exits_total{outcome="hangup"}), most first.',
             [target("sort_desc(" + _increase("ivr_menu_node_exits_total", "node", rng,
                                              f'outcome="hangup", {HOTLINE}') + ")", "{{node}}", instant=True)],
             unit="short", w=8, h=10, renames=nodes, decimals=0),
        bars("نسبة الإنهاء داخل القوائم من المكالمات الواردة", "Hang-ups in each menu as a share of all calls "
             "received by the selected hotlines over the time range.",
             [target(f"sort_desc({drop_off_share('node')})", "{{node}}", instant=True)],
             unit="percentunit", max_=1, steps=GOOD_LOW, w=8, h=10, renames=nodes, decimals=1),
        stat("نسبة الإنهاء داخل القوائم", "All hang-ups in the menus as a share of calls received by the "
             "selected hotlines over the time range (the IVR drop-off).",
             drop_off_share(None), unit="percentunit", steps=GOOD_LOW, w=8, h=10, decimals=1),
        *(case_panels(names["sector"], rng) if names["sector"] else []),
    ]


def layout(items: list[dict]) -> list[dict]:
    """Give each panel an id and a gridPos: left to right, wrapping at 24."""
    x = y = line_h = 0
    for n, item in enumerate(items, start=1):
        pos = item["gridPos"]
        if item["type"] == "row" or x + pos["w"] > 24:
            x, y, line_h = 0, y + line_h, 0
        item["id"] = n
        item["gridPos"] = {"h": pos["h"], "w": pos["w"], "x": x, "y": y}
        x += pos["w"]
        line_h = max(line_h, pos["h"])
        if item["type"] == "row":
            x, y, line_h = 0, y + 1, 0
    return items


def variable(name: str, label: str, description: str, query: str) -> dict:
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": query,
        "refresh": 2,  # on time-range change: a programme added to the configuration shows up
        "regex": "",
        "sort": 1,
        "multi": True,
        "includeAll": True,
        # "All" as a regex rather than the list of values: shorter queries,
        # and label values that appear later are included.
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
    }


def build(config: Config) -> dict:
    return {
        "uid": DASHBOARD_UID,
        "title": "الخطوط الساخنة: متابعة المكالمات",
        "description": "IVR hotlines supervision: answer, abandonment and service level per programme and "
                       "hotline, queues and agents now, staffing, governorates, IVR drop-off and cases. Generated by "
                       "metrics/grafana/build.py; edit that file, not this JSON.",
        "tags": ["ivr", "asterisk", "hotlines"],
        "editable": True,
        "graphTooltip": 1,
        "timezone": "Africa/Cairo",
        "weekStart": "saturday",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": "30s",
        "time": {"from": "now-12h", "to": "now"},
        "timepicker": {},
        "schemaVersion": 39,
        "version": 1,
        "links": [],
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": [
            variable("tenant", "الجهة المسؤولة (الوزارة)", "Tenant: the ministry whose queues, lines and cases "
                     "the panels show", "label_values(ivr_queue_offered_total, tenant)"),
            variable("program", "البرنامج", "Programme (queue id, the program label) of the chosen ministries",
                     f"label_values(ivr_queue_offered_total{{{TENANT}}}, program)"),
            variable("hotline", "الخط", "Hotline number (the hotline label) of the chosen ministries",
                     f"label_values(ivr_queue_offered_total{{{TENANT}}}, hotline)"),
        ]},
        "panels": layout(panels(display_names(config))),
    }


def render(config: Config | None = None) -> str:
    """The dashboard JSON exactly as checked in."""
    dashboard = build(config if config is not None else load_config(REPO_ROOT / "config"))
    return json.dumps(dashboard, ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the checked-in dashboard is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not DASHBOARD_FILE.exists() or DASHBOARD_FILE.read_text(encoding="utf-8") != text:
            print(f"{DASHBOARD_FILE} is stale: run python -m metrics.grafana.build", file=sys.stderr)
            return 1
        return 0
    DASHBOARD_FILE.parent.mkdir(parents=True, exist_ok=True)
    DASHBOARD_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {DASHBOARD_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
