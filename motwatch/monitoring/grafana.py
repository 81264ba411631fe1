"""Grafana dashboards and Grafana-managed alert rules, built with grafana-foundation-sdk.

Dashboards are the SDK's dashboard model serialised to JSON (what Grafana's
file provider reads). Alert rules use the SDK's alerting model for each rule
and its queries; the provisioning file around them (``apiVersion``,
``groups``, the folder) is Grafana's file format, which the SDK does not model.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import alerting, bargauge, expr, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import common as viz
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.alerting import RelativeTimeRange
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    GridPos,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from motwatch.monitoring.definitions import DASHBOARDS, DATASOURCE_UID
from motwatch.monitoring.model import Alert, Dashboard, Panel, Variable, render
from motwatch.monitoring.promql import ALL_VALUE

DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
EXPRESSION_UID = "__expr__"
FOLDER = "motwatch"  # the folder grafana/provisioning/dashboards/motwatch.yml puts the dashboards in
RULE_GROUP = "motwatch"
EVALUATION_INTERVAL = "1m"
_OPS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
_REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _to_plain(obj: Any) -> Any:
    """An SDK object as plain JSON data (dicts, lists, strings, numbers)."""
    return json.loads(json.dumps(obj, cls=JSONEncoder))


# ---------------------------------------------------------------- dashboards


def _thresholds(panel: Panel) -> dash.ThresholdsConfig:
    steps = [Threshold(value=None, color="green")]
    steps += [Threshold(value=value, color=color) for value, color in panel.thresholds]
    return dash.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)


# Appended to the description of a panel whose queries show exemplars.
EXEMPLARS_NOTE = (
    "Exemplars (the marks on the graph) are single moments: hover one for its moment_id, then "
    "`motwatch moments --id MOMENT_ID` shows the moment event."
)


def _description(panel: Panel) -> str:
    text = f"{panel.shows}\n\nLook first: {panel.look_first}"
    if panel.exemplars:
        text += f"\n\n{EXEMPLARS_NOTE}"
    # Grafana renders descriptions as Markdown, where "<ZMOT" would read as an HTML tag.
    return text.replace("<", "&lt;")


def _panel(panel: Panel, panel_id: int, *, x: int, y: int) -> Any:
    builder: Any
    if panel.kind == "timeseries":
        builder = (
            timeseries.Panel()
            .line_width(1)
            .fill_opacity(20 if panel.stacked else 10)
            .show_points(common.VisibilityMode.NEVER)
            .legend(
                viz.VizLegendOptions()
                .display_mode(common.LegendDisplayMode.LIST)
                .placement(common.LegendPlacement.BOTTOM)
                .show_legend(True)
            )
        )
        if panel.stacked:
            builder = builder.stacking(viz.StackingConfig().mode(common.StackingMode.NORMAL))
        if panel.thresholds:
            builder = builder.thresholds_style(
                viz.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE)
            )
    elif panel.kind == "stat":
        builder = (
            stat.Panel()
            .graph_mode(common.BigValueGraphMode.NONE)
            .color_mode(common.BigValueColorMode.VALUE)
            .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
            .reduce_options(viz.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .no_value("none")
        )
    else:
        builder = (
            bargauge.Panel()
            .orientation(common.VizOrientation.HORIZONTAL)
            .display_mode(common.BarGaugeDisplayMode.GRADIENT)
            .reduce_options(viz.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .min(0)
        )
    builder = (
        builder.id(panel_id)
        .title(panel.title)
        .description(_description(panel))
        .datasource(DATASOURCE)
        .unit(panel.unit)
        .thresholds(_thresholds(panel))
        .grid_pos(GridPos(h=panel.height, w=panel.width, x=x, y=y))
    )
    if panel.decimals is not None:
        builder = builder.decimals(panel.decimals)
    if panel.minimum is not None:
        builder = builder.min(panel.minimum)
    if panel.maximum is not None:
        builder = builder.max(panel.maximum)
    for ref_id, target in zip(_REF_IDS, panel.targets, strict=False):
        query = (
            prometheus.Dataquery()
            .ref_id(ref_id)
            .datasource(DATASOURCE)
            .expr(target.expr)
            .legend_format(target.legend or "__auto")
        )
        query = query.instant() if target.instant else query.range()
        if target.exemplars:
            query = query.exemplar(True)
        builder = builder.with_target(query)
    return builder


def _variable(variable: Variable) -> dash.QueryVariable:
    return (
        dash.QueryVariable(variable.name)
        .label(variable.label)
        .description(variable.description)
        .datasource(DATASOURCE)
        .query(variable.query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL_VALUE)
        .allow_custom_value(False)
        .current(VariableOption(selected=True, text="All", value="$__all"))
    )


def build_dashboard(board: Dashboard) -> dict[str, Any]:
    """One dashboard as the JSON object Grafana's file provider reads."""
    builder = (
        dash.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(["motwatch"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time(board.time_from, "now")
        .refresh(board.refresh)
        .timezone("browser")
    )
    for variable in board.variables:
        builder = builder.with_variable(_variable(variable))
    panel_id = 0
    y = 0
    for row in board.rows:
        panel_id += 1
        builder = builder.with_row(dash.Row(row.title).id(panel_id).grid_pos(GridPos(h=1, w=24, x=0, y=y)))
        y += 1
        x, row_height = 0, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            panel_id += 1
            builder = builder.with_panel(_panel(panel, panel_id, x=x, y=y))
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    data = _to_plain(builder.build())
    data["links"] = [
        {
            "title": "motwatch dashboards",
            "type": "dashboards",
            "tags": ["motwatch"],
            "asDropdown": True,
            "includeVars": False,
            "keepTime": True,
            "targetBlank": False,
            "icon": "external link",
            "tooltip": "",
            "url": "",
        }
    ]
    return data


def panel_ids(board: Dashboard) -> dict[str, int]:
    """The id each panel gets in ``build_dashboard`` (rows take ids too)."""
    ids: dict[str, int] = {}
    panel_id = 0
    for row in board.rows:
        panel_id += 1
        for panel in row.panels:
            panel_id += 1
            ids[panel.title] = panel_id
    return ids


# ---------------------------------------------------------------- alerting


def _rule_uid(alert: Alert) -> str:
    # Grafana rule uids: at most 40 characters of [a-zA-Z0-9_-].
    name = alert.name.removeprefix("Motwatch")
    slug = "".join(f"-{c.lower()}" if c.isupper() else c for c in name).strip("-")
    uid = f"mw-{slug}"
    if len(uid) > 40:
        raise ValueError(f"alert {alert.name}: Grafana rule uid {uid!r} is longer than 40 characters")
    return uid


def build_rule(alert: Alert) -> dict[str, Any]:
    """One Grafana-managed alert rule in the provisioning file's format."""
    query = (
        alerting.Query("A")
        .datasource_uid(DATASOURCE_UID)
        .relative_time_range(_relative(600))
        .model(prometheus.Dataquery().ref_id("A").datasource(DATASOURCE).expr(alert.grafana_query).instant())
    )
    reduce = (
        alerting.Query("B")
        .datasource_uid(EXPRESSION_UID)
        .model(
            expr.TypeReduce()
            .ref_id("B")
            .datasource(DataSourceRef(type_val=EXPRESSION_UID, uid=EXPRESSION_UID))
            .expression("A")
            .reducer("last")
        )
    )
    threshold = (
        alerting.Query("C")
        .datasource_uid(EXPRESSION_UID)
        .model(
            expr.TypeThreshold()
            .ref_id("C")
            .datasource(DataSourceRef(type_val=EXPRESSION_UID, uid=EXPRESSION_UID))
            .expression("B")
            .conditions(
                [
                    expr.ExprTypeThresholdConditions().evaluator(
                        expr.ExprTypeThresholdConditionsEvaluator()
                        .type(_OPS[alert.op])  # type: ignore[arg-type]
                        .params([alert.threshold])
                    )
                ]
            )
        )
    )
    board = next(b for b in DASHBOARDS if b.uid == alert.panel.dashboard)
    rule = (
        alerting.Rule(alert.name)
        .uid(_rule_uid(alert))
        .condition("C")
        .queries([query, reduce, threshold])
        .for_val(alert.for_)
        # An empty result means the condition does not hold (queries return nothing
        # while all is well); a worker that stops reporting has alerts of its own.
        .no_data_state("OK")
        .exec_err_state("Error")
        .labels(alert.labels())
        .annotations(
            {
                "summary": render(alert.summary, alert, "grafana"),
                "description": render(alert.description, alert, "grafana"),
                "look_first": alert.look_first,
            }
        )
        .is_paused(False)
    )
    data = _to_plain(rule.build())
    # The file format names the group and folder around the rules, not in them.
    for key in ("folderUID", "ruleGroup", "orgID"):
        data.pop(key, None)
    data["dashboardUid"] = board.uid
    data["panelId"] = panel_ids(board)[alert.panel.panel]
    return data


def _relative(seconds: int) -> RelativeTimeRange:
    return RelativeTimeRange(from_val=seconds, to=0)


def alert_provisioning(alerts: tuple[Alert, ...]) -> dict[str, Any]:
    """Grafana's alert rule provisioning file (grafana/provisioning/alerting/)."""
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": RULE_GROUP,
                "folder": FOLDER,
                "interval": EVALUATION_INTERVAL,
                "rules": [build_rule(alert) for alert in alerts],
            }
        ],
    }
