"""What a dashboard panel, a recording rule and an alert are, independent of any output format.

The definitions (``definitions.py``) are written in these terms; the
generators turn them into Grafana dashboards, Prometheus rules, Grafana's
alert provisioning and the table of panels and alerts. Text that ends up in
an alert's summary or description may use two placeholders:

``{value}``
    the alert's value (its ``query``), formatted by ``value_format``;
``{label:NAME}``
    a label of the firing series, e.g. ``{label:owner}``;
``{owner}``
    the owner team: the static one, or the series' ``owner`` label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")
PanelKind = Literal["timeseries", "stat", "bargauge"]
Comparison = Literal[">", ">=", "<", "<="]
ValueFormat = Literal["humanize", "humanizePercentage", "humanizeDuration"]


@dataclass(frozen=True)
class Target:
    """One query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False
    # Grafana asks Prometheus for the exemplars of the series the query reads and marks them on
    # the graph: each one a moment (its moment_id), for ``motwatch moments --id``. Range queries only.
    exemplars: bool = False


@dataclass(frozen=True)
class Panel:
    """A dashboard panel and what the person on call should make of it."""

    title: str
    kind: PanelKind
    targets: tuple[Target, ...]
    shows: str  # what it shows, in a sentence or two
    look_first: str  # what to look at first when it looks wrong
    unit: str = "short"
    width: int = 12
    height: int = 8
    decimals: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    # (value, colour) steps above the base colour green, e.g. ((0.05, "orange"), (0.2, "red")).
    thresholds: tuple[tuple[float, str], ...] = ()
    stacked: bool = False

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError(f"panel {self.title!r} has no query")
        if not 1 <= self.width <= 24:
            raise ValueError(f"panel {self.title!r}: width {self.width} is not 1-24")
        if any(t.exemplars and (t.instant or self.kind != "timeseries") for t in self.targets):
            raise ValueError(f"panel {self.title!r}: exemplars are shown only by a time series' range query")

    @property
    def exemplars(self) -> bool:
        return any(target.exemplars for target in self.targets)


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    """A dashboard variable: the values of the label ``name`` of ``metric``, all selected by default.

    Queries use it as a regex matcher (``channel=~"$channel"``), so several
    values, or all of them, can be selected.
    """

    name: str
    label: str
    metric: str
    description: str

    @property
    def query(self) -> str:
        """Grafana's Prometheus variable query."""
        return f"label_values({self.metric}, {self.name})"

    @property
    def expr(self) -> str:
        """The same values as a PromQL query, for checking the metric and label exist."""
        return f"group by ({self.name}) ({self.metric})"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    file: str  # file name under grafana/dashboards/
    description: str
    rows: tuple[Row, ...]
    time_from: str = "now-6h"
    refresh: str = "30s"
    variables: tuple[Variable, ...] = ()

    def panels(self) -> list[Panel]:
        return [panel for row in self.rows for panel in row.panels]

    def panel(self, title: str) -> Panel:
        for panel in self.panels():
            if panel.title == title:
                return panel
        raise KeyError(f"dashboard {self.uid} has no panel {title!r}")


@dataclass(frozen=True)
class Recording:
    """A Prometheus recording rule: a series worth keeping history of, or shared by alerts and panels."""

    record: str
    expr: str
    help: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", self.record) or ":" not in self.record:
            raise ValueError(f"recording rule name {self.record!r} is not level:metric:operations")


@dataclass(frozen=True)
class PanelRef:
    dashboard: str  # uid
    panel: str  # title


@dataclass(frozen=True)
class Alert:
    """An alert: ``query`` compared with ``threshold``, optionally only while ``guard`` holds.

    ``owner=None`` means the query keeps an ``owner`` label (``sum by (owner)``)
    and the alert is routed to whichever team the configuration made owner of
    the failing touchpoint (the promtool unit tests show the label on every
    firing alert).
    """

    name: str
    query: str
    op: Comparison
    threshold: float
    for_: str
    severity: Severity
    owner: str | None
    summary: str
    description: str
    fires_when: str  # plain words for the table; may use {threshold} and {for}
    look_first: str
    panel: PanelRef
    guard: str | None = None  # appended as "and <guard>", e.g. 'on() (sum(...) >= 20)'
    value_format: ValueFormat = "humanize"
    extra_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z][A-Za-z0-9]+", self.name):
            raise ValueError(f"alert name {self.name!r} is not CamelCase")
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert {self.name}: severity {self.severity!r}")
        if not re.fullmatch(r"\d+[smh]", self.for_):
            raise ValueError(f"alert {self.name}: 'for' {self.for_!r} is not a duration like 5m")

    @property
    def threshold_text(self) -> str:
        return f"{self.threshold:g}"

    @property
    def expr(self) -> str:
        """The Prometheus alerting expression: a series per firing instance, none otherwise."""
        text = f"({self.query}) {self.op} {self.threshold_text}"
        return f"{text} and {self.guard}" if self.guard else text

    @property
    def grafana_query(self) -> str:
        """What Grafana queries: the value, present only while the guard holds."""
        return f"({self.query}) and {self.guard}" if self.guard else self.query

    def labels(self) -> dict[str, str]:
        labels = {"severity": self.severity}
        if self.owner is not None:
            labels["owner"] = self.owner
        labels.update(self.extra_labels)
        return labels

    def fires_when_text(self) -> str:
        return self.fires_when.replace("{threshold}", self.threshold_text).replace("{for}", self.for_)


_LABEL = re.compile(r"\{label:([a-zA-Z_]\w*)\}")


def render(text: str, alert: Alert, flavour: Literal["prometheus", "grafana", "plain"]) -> str:
    """An alert's summary or description with its placeholders filled for one consumer."""
    if alert.owner is not None:
        text = text.replace("{owner}", alert.owner)
    else:
        text = text.replace("{owner}", "{label:owner}")
    if flavour == "prometheus":
        value = f"{{{{ $value | {alert.value_format} }}}}"
        label = r"{{ $labels.\1 }}"
    elif flavour == "grafana":
        # B is the reduced value of query A (see grafana.py).
        value = f"{{{{ {alert.value_format} $values.B.Value }}}}"
        label = r"{{ $labels.\1 }}"
    else:
        value = "N"
        label = r"<\1>"
    return _LABEL.sub(label, text.replace("{value}", value))
