"""The Grafana dashboard: generated, well formed, over documented metrics only,
and every query is PromQL that parses and computes the contract's figures.

No Grafana runs here (none can be installed): what Grafana would send to
Prometheus is reproduced by ``metrics.grafana.panel_queries`` and checked with
``promtool`` offline (``check rules`` parses, ``test rules`` evaluates on
sample series). tests/e2e/test_dashboard_queries.py evaluates the same queries
on a Prometheus that scraped real calls.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from core.paths import REPO_ROOT
from metrics.grafana import DashboardQueryError, build, iter_panels, panel_queries

GRAFANA = REPO_ROOT / "metrics" / "grafana"
DASHBOARD_FILE = GRAFANA / "dashboards" / "ivr-hotlines.json"
DATASOURCES_FILE = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARDS_PROVIDER_FILE = GRAFANA / "provisioning" / "dashboards" / "ivr.yml"
METRICS_DOC = REPO_ROOT / "docs" / "metrics.md"

SELECTIONS = (
    None,                                                         # All
    {"program": "nasser_bank", "hotline": "14403"},               # one each
    {"program": "(nasser_bank|addiction_fund)", "hotline": "(1442|14403)"},  # Grafana's multi-value regex
)


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


def content_panels(dashboard: dict) -> list[dict]:
    return [p for p in iter_panels(dashboard["panels"]) if p["type"] != "row"]


def panel(dashboard: dict, title: str) -> dict:
    found = [p for p in content_panels(dashboard) if p["title"] == title]
    assert len(found) == 1, f"expected one panel titled {title!r}, found {len(found)}"
    return found[0]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run `make deps` (Debian package prometheus)")
    return path


# --- generated, not hand-edited ---------------------------------------------

def test_the_checked_in_json_is_what_build_py_generates():
    assert DASHBOARD_FILE.read_text(encoding="utf-8") == build.render(), (
        "metrics/grafana/dashboards/ivr-hotlines.json differs from metrics/grafana/build.py: "
        "edit build.py and run `.venv/bin/python -m metrics.grafana.build`")


def test_build_check_flag_reports_a_stale_file(tmp_path, monkeypatch):
    stale = tmp_path / "ivr-hotlines.json"
    stale.write_text("{}\n", encoding="utf-8")
    monkeypatch.setattr(build, "DASHBOARD_FILE", stale)
    assert build.main(["--check"]) == 1
    assert build.main([]) == 0
    assert build.main(["--check"]) == 0
    assert stale.read_text(encoding="utf-8") == build.render()


# --- structure -------------------------------------------------------------

def test_panel_ids_are_unique(dashboard):
    ids = [p["id"] for p in iter_panels(dashboard["panels"])]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), sorted(ids)


def test_panels_sit_on_the_24_column_grid_without_overlapping(dashboard):
    boxes = []
    for p in iter_panels(dashboard["panels"]):
        pos = p["gridPos"]
        assert set(pos) == {"x", "y", "w", "h"} and all(isinstance(v, int) for v in pos.values()), p["title"]
        assert pos["x"] >= 0 and pos["y"] >= 0 and pos["w"] > 0 and pos["h"] > 0, p["title"]
        assert pos["x"] + pos["w"] <= 24, p["title"]
        if p["type"] == "row":
            assert (pos["x"], pos["w"], pos["h"]) == (0, 24, 1), p["title"]
        boxes.append((p["title"], pos))
    for n, (title_a, a) in enumerate(boxes):
        for title_b, b in boxes[n + 1:]:
            apart = (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                     or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])
            assert apart, f"{title_a!r} overlaps {title_b!r}"


def test_the_data_source_is_the_provisioned_one_everywhere(dashboard):
    provisioned = yaml.safe_load(DATASOURCES_FILE.read_text(encoding="utf-8"))["datasources"]
    assert len(provisioned) == 1 and provisioned[0]["type"] == "prometheus"
    uid = provisioned[0]["uid"]
    for p in content_panels(dashboard):
        assert p["datasource"] == {"type": "prometheus", "uid": uid}, p["title"]
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": uid}, p["title"]
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"] == {"type": "prometheus", "uid": uid}, variable["name"]


def test_every_panel_has_targets_with_distinct_ref_ids(dashboard):
    panels = content_panels(dashboard)
    assert len(panels) >= 20
    for p in panels:
        refs = [t["refId"] for t in p["targets"]]
        assert refs, f"panel {p['title']!r} has no query"
        assert len(refs) == len(set(refs)), p["title"]
        assert all(t["expr"].strip() for t in p["targets"]), p["title"]
        # Grafana needs an instant vector for stat and bar gauge panels.
        if p["type"] in ("stat", "bargauge"):
            assert all(t["instant"] and not t["range"] for t in p["targets"]), p["title"]


def test_titles_are_unique_so_a_failure_names_one_panel(dashboard):
    titles = [p["title"] for p in content_panels(dashboard)]
    assert len(titles) == len(set(titles)), sorted(t for t in titles if titles.count(t) > 1)


def test_titles_are_arabic_and_descriptions_english(dashboard):
    arabic = re.compile(r"[\u0600-\u06FF]")
    for p in iter_panels(dashboard["panels"]):
        assert arabic.search(p["title"]), p["title"]
        assert p["description"] and not arabic.search(p["description"]), p["title"]


def test_template_variables_program_hotline_and_tenant(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["tenant", "program", "hotline"]
    for name, v in variables.items():
        assert v["type"] == "query" and v["multi"] and v["includeAll"], name
        assert v["query"] == v["definition"]
        assert re.fullmatch(rf"label_values\((ivr_\w+)(\{{tenant=~\"\$tenant\"\}})?, {name}\)", v["query"]), v["query"]
    # The programme and hotline lists offer the chosen ministries' only.
    assert 'tenant=~"$tenant"' in variables["program"]["query"] and 'tenant=~"$tenant"' in variables["hotline"]["query"]


def test_the_case_panels_filter_by_tenant_and_name_the_sectors(dashboard):
    row = [p for p in dashboard["panels"] if p["type"] == "row"]
    assert "البلاغات" in [r["title"] for r in row]
    cases = [p for p in content_panels(dashboard) if any("ivr_cases" in t["expr"] for t in p["targets"])]
    assert len(cases) == 8
    for p in cases:
        for t in p["targets"]:
            # Every case series is selected by the tenant variable, never by programme or hotline.
            for selector in re.findall(r"ivr_cases_\w+\{([^}]*)\}", t["expr"]):
                assert 'tenant=~"$tenant"' in selector and "program" not in selector, t["expr"]
    by_sector = next(p for p in cases if p["title"] == "البلاغات المفتوحة حسب الجهة")
    renames = {r["options"]["renamePattern"] for r in by_sector["transformations"]}
    assert "تكافل وكرامة" in renames


# --- metrics ---------------------------------------------------------------

def referenced_metrics(dashboard: dict) -> set[str]:
    texts = [t["expr"] for p in content_panels(dashboard) for t in p["targets"]]
    texts += [v["query"] for v in dashboard["templating"]["list"]]
    return {m for text in texts for m in re.findall(r"\b(ivr_[a-z_]+)", text)}


def documented_metrics() -> set[str]:
    return set(re.findall(r"`(ivr_[a-z_]+)", METRICS_DOC.read_text(encoding="utf-8")))


def test_every_metric_the_dashboard_reads_is_documented(dashboard):
    documented = documented_metrics()
    assert "ivr_queue_offered_total" in documented  # the reading of the doc works
    undocumented = sorted(
        m for m in referenced_metrics(dashboard)
        if m not in documented and re.sub(r"_(bucket|sum|count)$", "", m) not in documented)
    assert not undocumented, f"not in docs/metrics.md: {undocumented}"


def test_the_dashboard_covers_the_supervisors_figures(dashboard):
    required = {
        "ivr_queue_offered_total", "ivr_queue_answered_total", "ivr_queue_abandoned_total",
        "ivr_queue_short_abandoned_total", "ivr_queue_answered_within_threshold_total",
        "ivr_target_service_level_ratio", "ivr_queue_callers_waiting", "ivr_queue_longest_wait_seconds",
        "ivr_agents", "ivr_menu_node_exits_total", "ivr_calls_received_total", "ivr_queue_wait_seconds_bucket",
        "ivr_staffing_agents_needed",
    }
    assert required <= referenced_metrics(dashboard), sorted(required - referenced_metrics(dashboard))


def test_variables_appear_only_in_regex_matchers(dashboard):
    """`.*` (All) or `(a|b)` is only right after =~ or !~."""
    for p in content_panels(dashboard):
        for t in p["targets"]:
            for match in re.finditer(r"\$\{?(program|hotline)\b", t["expr"]):
                before = t["expr"][:match.start()]
                assert re.search(r'\w+\s*[=!]~\s*"$', before), (p["title"], t["expr"])


def test_each_panel_filters_by_the_variables_its_metrics_carry(dashboard):
    """Metrics with a program label honour $program, with a hotline label $hotline."""
    program_labelled = ("ivr_queue_", "ivr_agents", "ivr_staffing_", "ivr_target_")
    hotline_labelled = ("ivr_calls_received_total", "ivr_menu_node_exits_total", "ivr_queue_offered_total",
                        "ivr_queue_answered", "ivr_queue_abandoned_total", "ivr_queue_short_abandoned_total")
    for p in content_panels(dashboard):
        for t in p["targets"]:
            for selector in re.finditer(r"\b(ivr_[a-z_]+)\{([^}]*)\}", t["expr"]):
                metric, matchers = selector.groups()
                if metric.startswith(program_labelled):
                    assert 'program=~"$program"' in matchers, (p["title"], metric)
                    assert 'tenant=~"$tenant"' in matchers, (p["title"], metric)
                if metric.startswith(hotline_labelled):
                    assert 'hotline=~"$hotline"' in matchers, (p["title"], metric)


# --- panel_queries ---------------------------------------------------------

def balanced(expr: str) -> bool:
    """Brackets balance outside string literals."""
    pairs, stack, quote = {")": "(", "]": "[", "}": "{"}, [], None
    for n, ch in enumerate(expr):
        if quote:
            if ch == quote and expr[n - 1] != "\\":
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack and quote is None


def test_balanced_checks_what_it_should():
    assert balanced('sum(rate(x{a=~"(b|c)"}[5m]))')
    assert balanced('x{a="not ) a bracket"}')
    assert not balanced("sum(rate(x[5m])")
    assert not balanced("sum(x[5m)]")


@pytest.mark.parametrize("selection", SELECTIONS, ids=["all", "one", "several"])
def test_every_query_is_plain_promql_after_substitution(dashboard, selection):
    queries = panel_queries(dashboard, variables=selection, rate_interval="2m", time_range="6h")
    assert len(queries) == sum(len(p["targets"]) for p in content_panels(dashboard))
    for title, expr in queries:
        assert "$" not in expr and "[[" not in expr, (title, expr)
        assert balanced(expr), (title, expr)
    exprs = " ".join(expr for _, expr in queries)
    assert "[2m]" in exprs and "[6h]" in exprs
    for name, value in (selection or {"program": ".*", "hotline": ".*"}).items():
        assert f'{name}=~"{value}"' in exprs


def test_panel_queries_substitutes_like_grafana():
    dashboard = {
        "templating": {"list": [{"name": "program", "allValue": ".*"}, {"name": "hotline"}]},
        "panels": [
            {"type": "stat", "title": "a", "targets": [
                {"refId": "A", "expr": 'sum(rate(m{program=~"$program"}[$__rate_interval]))'},
                {"refId": "B", "expr": 'sum(increase(m{program=~"${program:regex}", hotline=~"[[hotline]]"}'
                                       '[$__range])) / $__range_s'}]},
            {"type": "row", "title": "collapsed", "collapsed": True, "panels": [
                {"type": "timeseries", "title": "inside",
                 "targets": [{"refId": "A", "expr": 'avg_over_time(g{hotline=~"${hotline}"}[${__interval}])'}]}]},
        ],
    }
    assert panel_queries(dashboard, rate_interval="1m", time_range="2h") == [
        ("a", 'sum(rate(m{program=~".*"}[1m]))'),
        ("a", 'sum(increase(m{program=~".*", hotline=~".*"}[2h])) / 7200'),
        ("inside", 'avg_over_time(g{hotline=~".*"}[1m])'),
    ]
    assert panel_queries(dashboard, variables={"hotline": "1442"}, interval="15s")[2] == (
        "inside", 'avg_over_time(g{hotline=~"1442"}[15s])')


@pytest.mark.parametrize(("expr", "kwargs", "message"), [
    ('m{a=~"$nope"}', {}, "$nope"),
    ("rate(m[$__nope])", {}, "$__nope"),
    ("m", {"variables": {"programme": "x"}}, "no template variable programme"),
    ("rate(m[$__rate_interval])", {"rate_interval": "5 minutes"}, "not a Prometheus duration"),
])
def test_panel_queries_names_what_it_cannot_substitute(expr, kwargs, message):
    dashboard = {"templating": {"list": [{"name": "program"}]},
                 "panels": [{"type": "stat", "title": "t", "targets": [{"refId": "A", "expr": expr}]}]}
    with pytest.raises(DashboardQueryError, match=re.escape(message)):
        panel_queries(dashboard, **kwargs)


# --- promtool: the queries parse and compute the contract's figures ---------

def rules_file(path: Path, queries: list[tuple[str, str]]) -> Path:
    rules = [{"record": f"dashboard:query_{n}", "expr": expr} for n, (_, expr) in enumerate(queries)]
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, allow_unicode=True))
    return path


def test_promtool_rejects_a_broken_query(tmp_path):
    """The parse check below would catch a typo: promtool does parse each expr."""
    result = subprocess.run([promtool(), "check", "rules", str(rules_file(tmp_path / "r.yml", [
        ("broken", 'sum(rate(ivr_queue_offered_total{program=~".*"}[1m])) / ')]))],
        check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "parse error" in (result.stdout + result.stderr).lower()


@pytest.mark.parametrize("selection", SELECTIONS, ids=["all", "one", "several"])
def test_every_query_parses(dashboard, tmp_path, selection):
    queries = panel_queries(dashboard, variables=selection)
    result = subprocess.run([promtool(), "check", "rules", str(rules_file(tmp_path / "r.yml", queries))],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


# Sample traffic over 10 minutes: (hotline, program) -> counts per counter.
# Programme `forsa` has no calls: its ratios must be absent, not 0 %.
TRAFFIC = {
    ("1442", "nasser_bank"): {"offered": 2, "short_abandoned": 0, "answered": 1, "within": 1, "abandoned": 1},
    ("14403", "nasser_bank"): {"offered": 9, "short_abandoned": 1, "answered": 6, "within": 3, "abandoned": 1},
    ("1442", "addiction_fund"): {"offered": 4, "short_abandoned": 2, "answered": 1, "within": 0, "abandoned": 1},
    ("1442", "forsa"): {"offered": 0, "short_abandoned": 0, "answered": 0, "within": 0, "abandoned": 0},
}
COUNTERS = {"offered": "ivr_queue_offered_total", "short_abandoned": "ivr_queue_short_abandoned_total",
            "answered": "ivr_queue_answered_total", "within": "ivr_queue_answered_within_threshold_total",
            "abandoned": "ivr_queue_abandoned_total"}
# Calls received and menu hang-ups over the same 10 minutes.
RECEIVED = {"1442": 10, "14403": 10}
HANGUPS = {("1442", "main-1442"): 3, ("14403", "nasser_bank"): 1, ("1442", "nasser_bank"): 1}


def input_series() -> list[dict]:
    # One sample a minute for 10 minutes, rising steadily from 0 to 10 × count:
    # increase() over [10m] at 10m is then exactly 10 × count.
    series = []
    for (hotline, program), counts in TRAFFIC.items():
        for key, metric in COUNTERS.items():
            labels = f'hotline="{hotline}",program="{program}",request_type="inquiry",governorate="giza"'
            series.append({"series": f"{metric}{{{labels}}}", "values": f"0+{counts[key]}x10"})
    for hotline, count in RECEIVED.items():
        series.append({"series": f'ivr_calls_received_total{{hotline="{hotline}"}}', "values": f"0+{count}x10"})
    for (hotline, node), count in HANGUPS.items():
        series.append({"series": f'ivr_menu_node_exits_total{{hotline="{hotline}",node="{node}",outcome="hangup"}}',
                       "values": f"0+{count}x10"})
    return series


def expected_ratio(numerator: str, by: str) -> dict[str, float]:
    """Sum numerator and denominator per group, then divide (docs/metrics.md)."""
    sums: dict[str, dict[str, int]] = {}
    for (hotline, program), counts in TRAFFIC.items():
        group = sums.setdefault({"program": program, "hotline": hotline}[by], dict.fromkeys(COUNTERS, 0))
        for key in COUNTERS:
            group[key] += counts[key]
    return {g: s[numerator] / (s["offered"] - s["short_abandoned"]) for g, s in sums.items()
            if s["offered"] - s["short_abandoned"] > 0}


def promql_test(expr: str, by: str | None, expected: dict[str, float]) -> dict:
    return {"expr": expr, "eval_time": "10m",
            "exp_samples": [{"labels": f'{{{by}="{group}"}}' if by else "{}", "value": value}
                            for group, value in expected.items()]}


def test_the_ratios_sum_numerator_and_denominator_before_dividing(dashboard, tmp_path):
    answer = expected_ratio("answered", "program")
    # The sample traffic tells the two ways apart: nasser_bank's lines
    # answer 1/2 and 6/8, averaging 0.625; summed first it is 7/10.
    assert answer["nasser_bank"] == 0.7 and "forsa" not in answer
    cases = [
        ("نسبة الرد حسب البرنامج", "program", answer),
        ("نسبة الرد حسب الخط", "hotline", expected_ratio("answered", "hotline")),
        ("نسبة التخلي حسب البرنامج", "program", expected_ratio("abandoned", "program")),
        ("نسبة التخلي حسب الخط", "hotline", expected_ratio("abandoned", "hotline")),
        ("مستوى الخدمة حسب البرنامج", "program", expected_ratio("within", "program")),
    ]
    totals = {k: sum(c[k] for c in TRAFFIC.values()) for k in COUNTERS}
    overall = totals["offered"] - totals["short_abandoned"]
    cases += [("نسبة الرد", None, {"": totals["answered"] / overall}),
              ("نسبة التخلي", None, {"": totals["abandoned"] / overall}),
              ("مستوى الخدمة", None, {"": totals["within"] / overall})]
    received = sum(RECEIVED.values())
    per_node: dict[str, int] = {}
    for (_, node), count in HANGUPS.items():
        per_node[node] = per_node.get(node, 0) + count
    cases += [("نسبة الإنهاء داخل القوائم من المكالمات الواردة", "node",
               {node: count / received for node, count in per_node.items()}),
              ("نسبة الإنهاء داخل القوائم", None, {"": sum(per_node.values()) / received})]
    tests = []
    for title, by, expected in cases:
        exprs = [e for t, e in panel_queries({**dashboard, "panels": [panel(dashboard, title)]}, time_range="10m")]
        assert len(exprs) == 1, title
        tests.append(promql_test(exprs[0], by, expected))
    (tmp_path / "empty.yml").write_text("groups: []\n")
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": ["empty.yml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input_series(), "promql_expr_test": tests}]},
        allow_unicode=True))
    result = subprocess.run([promtool(), "test", "rules", "test.yml"], cwd=tmp_path,
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- provisioning ------------------------------------------------------------

def test_the_provisioning_files_point_grafana_at_the_dashboard():
    datasources = yaml.safe_load(DATASOURCES_FILE.read_text(encoding="utf-8"))
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["uid"] == build.DATASOURCE["uid"] and source["type"] == "prometheus"
    assert source["url"].startswith("http://127.0.0.1:")
    providers = yaml.safe_load(DASHBOARDS_PROVIDER_FILE.read_text(encoding="utf-8"))
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path.startswith("/")
    # The folder Grafana reads holds what dashboards/ holds: the README's
    # install command copies the generated JSON there.
    assert sorted(p.name for p in DASHBOARD_FILE.parent.iterdir()) == [DASHBOARD_FILE.name]
    readme = (GRAFANA / "README.md").read_text(encoding="utf-8")
    assert f"metrics/grafana/dashboards/{DASHBOARD_FILE.name} {path}/{DASHBOARD_FILE.name}" in readme
    assert f"metrics/grafana/dashboards` on `{path}`" in readme
