"""Every PromQL expression the dashboards and rules use, named by where it is used."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from motwatch.monitoring.definitions import ALERTS, DASHBOARDS, RECORDING_RULES
from motwatch.monitoring.promql import substitute_grafana_variables

Role = Literal["panel", "variable", "recording", "alert_query", "alert"]


@dataclass(frozen=True)
class Expression:
    where: str  # e.g. "motwatch-pipeline / Workers up / B", "alert MotwatchWorkerDown"
    expr: str
    role: Role
    variables: tuple[str, ...] = ()  # the dashboard's variables the expression may use

    @property
    def promql(self) -> str:
        """What Prometheus gets from Grafana, with every dashboard variable at "All"."""
        return substitute_grafana_variables(self.expr, self.variables)


def expressions() -> list[Expression]:
    """Panel queries (with Grafana's variables), dashboard variables' values, recording rules,
    alert values and alert conditions."""
    out: list[Expression] = []
    for board in DASHBOARDS:
        names = tuple(v.name for v in board.variables)
        for variable in board.variables:
            out.append(Expression(f"{board.uid} / variable {variable.name}", variable.expr, "variable"))
        for panel in board.panels():
            for ref_id, target in zip("ABCDEFGHIJ", panel.targets, strict=False):
                where = f"{board.uid} / {panel.title} / {ref_id}"
                out.append(Expression(where, target.expr, "panel", names))
    out += [Expression(f"recording {r.record}", r.expr, "recording") for r in RECORDING_RULES]
    for alert in ALERTS:
        out.append(Expression(f"alert {alert.name} (value)", alert.query, "alert_query"))
        if alert.guard:
            out.append(Expression(f"alert {alert.name} (Grafana query)", alert.grafana_query, "alert_query"))
        out.append(Expression(f"alert {alert.name}", alert.expr, "alert"))
    return out
