"""The Prometheus rules and example configuration, checked by Debian's promtool.

`promtool check rules`, `promtool check config` and `promtool test rules`
(the hand-written series of tests/rules/*.yml) run offline, in a subprocess;
a failure shows promtool's own output. The last tests tie the rules to the
metric contract (docs/metrics.md): a metric or label the rules use but the
contract does not define is a drift between the two.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "metrics" / "rules"
RULE_FILES = (RULES_DIR / "recording.yml", RULES_DIR / "alerting.yml")
RULE_TESTS_DIR = ROOT / "tests" / "rules"
PROMETHEUS_CONFIG = ROOT / "metrics" / "prometheus.yml"
METRICS_DOC = ROOT / "docs" / "metrics.md"

LEVELS = ("program", "hotline")
WINDOWS = ("5m", "1h", "1d")
RATIOS = ("answered_per_offered", "abandoned_per_offered", "answered_within_threshold_per_offered")
SEVERITIES = {"critical", "warning"}

# A metric name as a whole token: not the middle of a recording rule's name
# (program:ivr_queue_offered:rate5m) nor of a longer word.
METRIC_NAME = re.compile(r"(?<![\w:])ivr_[a-z0-9_]+(?![\w:])")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
# Labels Prometheus itself attaches to every scraped series.
TARGET_LABELS = {"job", "instance", "__name__"}
ARABIC = re.compile(r"[\u0600-\u06FF]")


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: it comes with Debian's `prometheus` package "
                    "(`make deps` runs scripts/install-deps.sh, or `apt-get install prometheus`)")
    return path


def run_promtool(promtool: str, *args: str) -> str:
    command = [promtool, *args]
    try:
        result = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{' '.join(command)}` did not finish in {exc.timeout} s")
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"`{' '.join(command)}` failed (exit {result.returncode}):\n{output}")
    return output


def load_rules() -> list[dict]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules.extend(group["rules"])
    return rules


def rule_texts(rule: dict) -> list[str]:
    """The PromQL of a rule and its annotation templates (which may query)."""
    return [str(rule["expr"]), *map(str, rule.get("annotations", {}).values())]


def metric_names(text: str) -> set[str]:
    return set(METRIC_NAME.findall(text))


def label_names(expr: str) -> set[str]:
    """Labels named in by/without/on/ignoring clauses and in selectors."""
    labels: set[str] = set()
    for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        labels.update(name.strip() for name in clause.split(",") if name.strip())
    for selector in re.findall(r"\{([^}]*)\}", expr):
        labels.update(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", selector))
    return labels


def undocumented_metrics(used: set[str], documented: set[str]) -> set[str]:
    """Used names that docs/metrics.md does not define. Counters are
    documented with their `_total`; a histogram's series are its documented
    name plus `_bucket`, `_count` or `_sum`."""
    missing = set()
    for name in used:
        if name in documented:
            continue
        if any(name.endswith(suffix) and name[: -len(suffix)] in documented for suffix in HISTOGRAM_SUFFIXES):
            continue
        missing.add(name)
    return missing


def documented_metric_names() -> set[str]:
    return metric_names(METRICS_DOC.read_text(encoding="utf-8"))


def documented_labels() -> set[str]:
    """Labels in the contract's Labels table (`| \\`name\\` | values |`)."""
    return set(re.findall(r"^\|\s*`([a-z_]+)`\s*\|", METRICS_DOC.read_text(encoding="utf-8"), re.MULTILINE))


# ---- promtool ------------------------------------------------------------

def test_rule_files_pass_promtool_check(promtool):
    output = run_promtool(promtool, "check", "rules", *map(str, RULE_FILES))
    expected = {path: sum(len(g["rules"]) for g in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
                for path in RULE_FILES}
    for path, count in expected.items():
        assert f"SUCCESS: {count} rules found" in output, (path, output)


def test_example_prometheus_config_passes_promtool_check(promtool):
    output = run_promtool(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert "SUCCESS: 2 rule files found" in output, output


def test_example_config_scrapes_the_engine_as_job_ivr():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert "ivr" in jobs, "IvrScrapeDown watches up{job=\"ivr\"}"
    assert jobs["ivr"]["scrape_interval"] == "15s"
    assert [t for sc in jobs["ivr"]["static_configs"] for t in sc["targets"]] == ["127.0.0.1:9108"]
    resolved = {(PROMETHEUS_CONFIG.parent / f).resolve() for f in config["rule_files"]}
    assert resolved == {path.resolve() for path in RULE_FILES}


def test_rule_unit_tests_pass_promtool(promtool):
    test_files = sorted(RULE_TESTS_DIR.glob("*.yml"))
    assert {p.name for p in test_files} >= {"recording_test.yml", "alerting_test.yml"}
    output = run_promtool(promtool, "test", "rules", *map(str, test_files))
    assert output.count("SUCCESS") == len(test_files), output


# ---- what the rules must contain -------------------------------------------

def test_every_ratio_exists_per_program_and_hotline_over_each_window():
    recorded = {rule["record"] for rule in load_rules() if "record" in rule}
    expected = {f"{level}:ivr_queue_{ratio}:ratio_rate{window}"
                for level in LEVELS for ratio in RATIOS for window in WINDOWS}
    assert expected <= recorded, sorted(expected - recorded)


def test_recording_rule_names_follow_level_metric_operation():
    shape = re.compile(r"^(program|hotline|tenant_sector):ivr_[a-z0-9_]+:(rate|ratio_rate|increase|ratio_increase)"
                       r"(5m|1h|1d|30d)$")
    bad = [rule["record"] for rule in load_rules() if "record" in rule and not shape.match(rule["record"])]
    assert not bad, bad


def test_ratio_denominators_are_guarded_against_zero():
    """An idle programme must give no sample, not NaN or +Inf: every division
    in a ratio rule is by a series filtered with `> 0`."""
    for rule in load_rules():
        if ":ratio_" in rule.get("record", ""):
            assert re.search(r"/\s*\([^()]*>\s*0\s*\)", rule["expr"]), rule["record"]


def test_every_ratio_rule_and_alert_has_a_promtool_test():
    test_text = "\n".join(p.read_text(encoding="utf-8") for p in RULE_TESTS_DIR.glob("*.yml"))
    names = [rule.get("record") or rule["alert"] for rule in load_rules()
             if "alert" in rule or ":ratio_" in rule["record"]]
    untested = [name for name in names if not re.search(rf"\b{re.escape(name)}\b", test_text)]
    assert not untested, untested


def test_alerts_have_for_severity_and_bilingual_annotations():
    alerts = [rule for rule in load_rules() if "alert" in rule]
    assert {a["alert"] for a in alerts} == {
        "IvrAnswerRateBelowTarget", "IvrServiceLevelBelowTarget", "IvrNoAgentLoggedIn",
        "IvrScrapeDown", "IvrLiveFiguresStale", "IvrRedisCannotPersist", "IvrAmiEventsLagging", "IvrCriticalCaseOpen", "IvrCasesOverdue", "IvrCaseFiguresStale"}
    for alert in alerts:
        name = alert["alert"]
        assert re.fullmatch(r"\d+[smh]", str(alert.get("for", ""))), f"{name}: no `for:`"
        assert alert["labels"]["severity"] in SEVERITIES, name
        notes = alert["annotations"]
        for key in ("summary", "description"):
            assert notes[key].strip() and not ARABIC.search(notes[key]), f"{name}: English {key}"
            assert ARABIC.search(notes[f"{key}_ar"]), f"{name}: Arabic {key}_ar"


def test_rate_alerts_have_a_minimum_traffic_guard():
    for rule in load_rules():
        if rule.get("alert") in {"IvrAnswerRateBelowTarget", "IvrServiceLevelBelowTarget"}:
            assert re.search(r"offered_excluding_short_abandoned:rate1h\s*\*\s*3600\s*>=\s*\d+", rule["expr"]), \
                rule["alert"]


# ---- the rules and the contract (docs/metrics.md) ----------------------------

def test_every_metric_in_the_rules_is_documented():
    used = set().union(*(metric_names(text) for rule in load_rules() for text in rule_texts(rule)))
    # The parse found the rules' inputs (a broken pattern would pass vacuously).
    assert {"ivr_queue_offered_total", "ivr_queue_short_abandoned_total", "ivr_agents",
            "ivr_queue_callers_waiting", "ivr_target_answer_ratio", "ivr_live_figures_up"} <= used
    missing = undocumented_metrics(used, documented_metric_names())
    assert not missing, f"used in metrics/rules but not defined in docs/metrics.md: {sorted(missing)}"


def test_every_label_in_the_rules_is_documented():
    documented = documented_labels()
    assert {"program", "hotline", "state"} <= documented, "the Labels table of docs/metrics.md was not found"
    used = set().union(*(label_names(str(rule["expr"])) for rule in load_rules()))
    assert {"program", "hotline", "state"} <= used
    missing = used - documented - TARGET_LABELS
    assert not missing, f"labels used in metrics/rules but not in docs/metrics.md: {sorted(missing)}"


def test_drift_check_catches_an_undocumented_name():
    documented = {"ivr_queue_offered_total", "ivr_queue_wait_seconds"}
    used = metric_names('sum by (program) (rate(ivr_queue_offerd_total[5m])) '
                        'and program:ivr_queue_offered:rate5m '
                        'and ivr_queue_wait_seconds_bucket{le="20"} and ivr_queue_wait_seconds_max')
    assert used == {"ivr_queue_offerd_total", "ivr_queue_wait_seconds_bucket", "ivr_queue_wait_seconds_max"}
    assert undocumented_metrics(used, documented) == {"ivr_queue_offerd_total", "ivr_queue_wait_seconds_max"}
