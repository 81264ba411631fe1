"""The failure panels and the detection-latency panel ask Grafana for exemplars, and only those.

A worker attaches exemplars (``moment_id``) to ``motwatch_moments_total`` and
``motwatch_detection_latency_seconds_bucket`` (``streams/metrics.py``). A time
series panel whose queries read only those series shows them; a query that
also reads another series (a ratio) would mark raw moments on a ratio's axis,
and an instant query or a stat panel shows none, so neither asks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from motwatch.monitoring.definitions import DASHBOARDS
from motwatch.monitoring.generate import DASHBOARDS_DIR
from motwatch.monitoring.grafana import EXEMPLARS_NOTE
from motwatch.monitoring.model import Panel, Target
from motwatch.monitoring.promql import metric_names

REPO = Path(__file__).resolve().parents[2]
WITH_EXEMPLARS = {"motwatch_moments_total", "motwatch_detection_latency_seconds_bucket"}


def shows_exemplars(panel: Panel, target: Target) -> bool:
    """Whether Grafana can mark the exemplars of what ``target`` reads on ``panel``'s graph."""
    return panel.kind == "timeseries" and not target.instant and metric_names(target.expr) <= WITH_EXEMPLARS


def test_every_query_that_can_show_moments_asks_for_their_exemplars_and_no_other() -> None:
    asking = []
    for board in DASHBOARDS:
        for panel in board.panels():
            for target in panel.targets:
                assert target.exemplars == shows_exemplars(panel, target), (panel.title, target.expr)
                if target.exemplars:
                    asking.append(panel.title)
    assert {
        "Failing moments per hour, by kind",
        "Detection latency p50 / p95 (last 15 min)",
        "Checkout errors per hour, by channel",
        "Broken links per hour, by channel and moment of truth",
    } <= set(asking)


def test_the_committed_dashboards_ask_for_exemplars_and_say_where_they_lead() -> None:
    for board in DASHBOARDS:
        committed = json.loads((REPO / DASHBOARDS_DIR / board.file).read_text(encoding="utf-8"))
        by_title = {p["title"]: p for p in committed["panels"] if p["type"] != "row"}
        for panel in board.panels():
            shipped = by_title[panel.title]
            assert [t.get("exemplar", False) for t in shipped["targets"]] == [
                t.exemplars for t in panel.targets
            ]
            assert (EXEMPLARS_NOTE in shipped["description"]) == panel.exemplars, panel.title
    assert "`motwatch moments --id MOMENT_ID`" in EXEMPLARS_NOTE


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        ("timeseries", Target("sum(motwatch_moments_total)", exemplars=True, instant=True)),
        ("stat", Target("sum(motwatch_moments_total)", exemplars=True)),
    ],
)
def test_a_panel_that_cannot_show_exemplars_may_not_ask_for_them(kind: str, target: Target) -> None:
    with pytest.raises(ValueError, match="exemplars"):
        Panel("p", kind, (target,), shows="s", look_first="l")  # type: ignore[arg-type]
