"""Every PromQL query of a Grafana dashboard, ready for Prometheus's HTTP API.

No Grafana can be installed where the project is tested, so the dashboard is
checked by evaluating each panel's query against a real Prometheus. Grafana
rewrites a query before sending it: template variables (``$program``,
``${program}``, ``${program:regex}``, ``[[program]]``) become the selection,
and the built-in ``$__rate_interval``, ``$__interval`` and ``$__range`` become
durations. :func:`panel_queries` does the same rewriting, so what is evaluated
is what a supervisor's Grafana would send.

A template variable that the dashboard defines and the caller does not set
becomes ``.*``: the "All" choice, as the dashboard's variables declare it
(``allValue``). This is only right inside regex matchers (``=~``, ``!~``),
which is why the unit tests check that variables appear nowhere else.
"""

from __future__ import annotations

import re

# Grafana's built-in time variables, in both spellings ($__x and ${__x}).
_BUILTIN = re.compile(r"\$\{(__[a-z_]+)\}|\$(__[a-z_]+)")
# User variables: $name, ${name}, ${name:format}, [[name]].
_USER = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w|y)$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class DashboardQueryError(ValueError):
    """A panel query that cannot be turned into plain PromQL."""


def _seconds(duration: str) -> float:
    match = _DURATION.match(duration)
    if not match:
        raise DashboardQueryError(f"{duration!r} is not a Prometheus duration such as 30s, 5m or 1h")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def iter_panels(panels: list[dict]):
    """Every panel, rows included, and the panels inside collapsed rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def template_defaults(dashboard: dict) -> dict[str, str]:
    """Each template variable's "All" value (``allValue``, else ``.*``)."""
    return {v["name"]: v.get("allValue") or ".*" for v in dashboard.get("templating", {}).get("list", [])}


def substitute(expr: str, *, variables: dict[str, str], rate_interval: str, interval: str,
               time_range: str) -> str:
    """``expr`` with every Grafana variable replaced; an unknown one is an error."""
    range_s = _seconds(time_range)
    interval_s = _seconds(interval)
    builtins = {
        "__rate_interval": rate_interval,
        "__interval": interval,
        "__interval_ms": str(int(interval_s * 1000)),
        "__range": time_range,
        "__range_s": str(int(range_s)),
        "__range_ms": str(int(range_s * 1000)),
    }
    _seconds(rate_interval)  # reject a malformed one here, not in Prometheus

    def builtin(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in builtins:
            raise DashboardQueryError(f"unknown Grafana variable ${name} in {expr!r}")
        return builtins[name]

    def user(match: re.Match) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name.isdigit():
            return match.group(0)  # label_replace's "$1" is PromQL's, not Grafana's
        if name not in variables:
            raise DashboardQueryError(
                f"${name} in {expr!r} is not a template variable of the dashboard ({', '.join(sorted(variables))})")
        return variables[name]

    # Built-ins first: `$__range_s` must not be read as `$__range` followed by "_s".
    return _USER.sub(user, _BUILTIN.sub(builtin, expr))


def panel_queries(dashboard: dict, *, variables: dict[str, str] | None = None, rate_interval: str = "1m",
                  interval: str | None = None, time_range: str = "1h") -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel, rows included.

    ``variables`` sets template variables (a value for a regex matcher, e.g.
    ``"nasser_bank"`` or ``"(nasser_bank|forsa)"``); unset ones take their
    "All" value. ``rate_interval``, ``interval`` (default: ``rate_interval``)
    and ``time_range`` stand for Grafana's ``$__rate_interval``,
    ``$__interval`` and ``$__range``.
    """
    values = template_defaults(dashboard)
    unknown = set(variables or {}) - set(values)
    if unknown:
        raise DashboardQueryError(
            f"the dashboard has no template variable {', '.join(sorted(unknown))} (it has {', '.join(sorted(values))})")
    values.update(variables or {})
    out = []
    for panel in iter_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if not expr:
                raise DashboardQueryError(f"panel {panel.get('title')!r} has a target without a PromQL expr")
            out.append((panel.get("title", ""), substitute(
                expr, variables=values, rate_interval=rate_interval, interval=interval or rate_interval,
                time_range=time_range)))
    return out
