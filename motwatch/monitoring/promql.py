"""Small PromQL helpers: the expressions the definitions share, and the metric names an expression reads.

No PromQL parser is needed for either: the expressions are ours, and the name
scanner only has to tell metric names from functions, keywords, label names
and Grafana's ``$__…`` variables. Prometheus itself is the judge of validity
(``promtool check rules`` and the end-to-end test send every expression to it).
"""

from __future__ import annotations

import re

# Grafana's interval variables, as the dashboards use them.
RATE_INTERVAL = "$__rate_interval"
RANGE = "$__range"

# Stand-ins for Grafana's variables when an expression is sent to Prometheus directly.
GRAFANA_VARIABLES = {RATE_INTERVAL: "1m", RANGE: "1h", "$__interval": "15s"}
# What a dashboard variable (used as ``label=~"$name"``) stands for with "All" selected.
ALL_VALUE = ".*"


def count_in(selector: str, window: str) -> str:
    """How often a counter went up within ``window``, per series, counting series born within it.

    ``increase()`` needs two samples, so it misses what a series counted before
    its first scrape: a labelled counter is exported only from its first
    increment, so the first broken link (or checkout error, or rejected
    message of a new reason) after a worker start would be invisible. A series
    absent ``window`` ago counts in full (it started at zero within the
    window); every other series counts its ``increase()``. ``or`` keeps the
    left side's element where both sides have one (matching ignores the
    metric name).
    """
    return f"(({selector} unless {selector} offset {window}) or increase({selector}[{window}]))"


def ratio_or_zero(numerator: str, denominator: str, *, grouped: bool = False) -> str:
    """``numerator / denominator``: 0 where only the denominator has a series, nothing where it is 0.

    ``grouped``: both sides keep the same labels (``sum by (channel)``), and each
    group of the denominator without a numerator shows 0; ``vector(0)`` fills
    in only for an ungrouped numerator.
    """
    zero = f"0 * {denominator}" if grouped else "vector(0)"
    return f"({numerator} or {zero}) / ({denominator} > 0)"


def quantile(q: float, histogram: str, window: str, by: str = "") -> str:
    """The ``q`` quantile of a classic histogram over ``window``, optionally per label."""
    labels = f"{by}, le" if by else "le"
    return f"histogram_quantile({q:g}, sum by ({labels}) (rate({histogram}_bucket[{window}])))"


def substitute_grafana_variables(expr: str, variables: tuple[str, ...] = ()) -> str:
    """The expression as Prometheus sees it from Grafana: interval variables replaced, and the
    dashboard's own ``variables`` with "All" selected."""
    values = {**GRAFANA_VARIABLES, **{f"${name}": ALL_VALUE for name in variables}}
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    return expr


# ---------------------------------------------------------------- metric names

_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
    "atan2",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names an expression reads.

    Strings, label matchers, range and subquery brackets, label lists of
    ``by``/``on``/… and Grafana variables are removed first; what remains that
    is an identifier, not a keyword and not a function call, is a metric name.
    """
    text = _STRING.sub('""', expr)
    text = _VARIABLE.sub(" ", text)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", name):  # a duration left after "offset"
            continue
        names.add(name)
    return names
