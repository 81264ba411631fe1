"""Dashboards, Prometheus rules and Grafana alerts: generated from one source, checked by real tools.

* The committed files are what ``python -m motwatch.monitoring`` writes (regenerating changes nothing),
  the table of panels and alerts in README.md included.
* Every metric name the dashboards and rules read is one a worker exports (``streams/metrics.py``),
  one of Faust's sensor series listed in the definitions (and really created by Faust's sensor),
  a recording rule of ours, or Prometheus's own ``up``/``ALERTS``.
* Every alert has severity, owner, summary, description and what to look at first, in both
  Prometheus and Grafana, and Grafana's alerts are Prometheus's alerts.
* ``promtool check rules``, ``promtool check config`` (the stack's config loading the rules) and
  ``promtool test rules`` with unit tests for every alert firing and not firing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter as Tally
from pathlib import Path
from typing import Any

import pytest
import yaml
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry

from motwatch.monitoring import definitions
from motwatch.monitoring.definitions import (
    ALERTS,
    DASHBOARDS,
    FAUST_SERIES,
    PROMETHEUS_SERIES,
    RECORDING_RULES,
)
from motwatch.monitoring.docs import README_BEGIN, README_END
from motwatch.monitoring.generate import (
    DASHBOARDS_DIR,
    DOCS_FILE,
    GRAFANA_ALERTS_FILE,
    README_FILE,
    RULES_FILE,
    render_all,
    stale,
    write_all,
)
from motwatch.monitoring.inventory import expressions
from motwatch.monitoring.model import SEVERITIES
from motwatch.monitoring.promql import metric_names
from motwatch.streams.metrics import Metrics
from tests.monitoring.promtool import cases
from tests.test_compose import provisioning_files

REPO = Path(__file__).resolve().parents[2]
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}


# ---------------------------------------------------------------- the files


def load(path: Path) -> Any:
    text = (REPO / path).read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((REPO / DASHBOARDS_DIR).glob("*.json"))
    }


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def prometheus_rules() -> list[dict[str, Any]]:
    return [rule for group in load(RULES_FILE)["groups"] for rule in group["rules"]]


def grafana_rules() -> list[dict[str, Any]]:
    return [rule for group in load(GRAFANA_ALERTS_FILE)["groups"] for rule in group["rules"]]


def shipped_expressions() -> dict[str, list[str]]:
    """Every PromQL expression in the committed dashboards and rule files, with where it is."""
    found: dict[str, list[str]] = {}
    for name, board in dashboards().items():
        for variable in board.get("templating", {}).get("list", []):
            metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["query"]).groups()
            found.setdefault(f"group by ({label}) ({metric})", []).append(f"{name} / ${variable['name']}")
        for panel in panels(board):
            for target in panel["targets"]:
                found.setdefault(target["expr"], []).append(f"{name} / {panel['title']} / {target['refId']}")
    for rule in prometheus_rules():
        found.setdefault(rule["expr"], []).append(f"{RULES_FILE} / {rule.get('alert') or rule.get('record')}")
    for rule in grafana_rules():
        for query in rule["data"]:
            if "expr" in query["model"]:
                found.setdefault(query["model"]["expr"], []).append(
                    f"{GRAFANA_ALERTS_FILE} / {rule['title']}"
                )
    return found


# ---------------------------------------------------------------- regeneration


def test_committed_files_are_what_the_definitions_generate() -> None:
    out_of_date = stale(REPO)
    assert out_of_date == [], (
        f"out of date: {[str(p) for p in out_of_date]}; run python -m motwatch.monitoring"
    )


def check(root: Path) -> subprocess.CompletedProcess[str]:
    """``python -m motwatch.monitoring --check`` on the checkout at ``root``."""
    return subprocess.run(
        [sys.executable, "-m", "motwatch.monitoring", "--check", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.external
def test_regenerating_changes_nothing(tmp_path: Path) -> None:
    assert render_all() == render_all(), "generation is not deterministic"
    written = write_all(tmp_path)
    assert sorted(written) == sorted(render_all())
    for path in written:
        assert (tmp_path / path).read_bytes() == (REPO / path).read_bytes(), path
    assert write_all(tmp_path) == []
    done = check(REPO)
    assert done.returncode == 0, done.stderr


def test_the_check_notices_a_hand_edited_file(tmp_path: Path) -> None:
    write_all(tmp_path)
    board = tmp_path / DASHBOARDS_DIR / "pipeline.json"
    board.write_text(board.read_text(encoding="utf-8").replace("Workers up", "Workers UP"), encoding="utf-8")
    assert stale(tmp_path) == [DASHBOARDS_DIR / "pipeline.json"]


def test_the_check_notices_a_hand_edited_readme_table_but_not_the_rest_of_the_readme(tmp_path: Path) -> None:
    write_all(tmp_path)
    readme = tmp_path / README_FILE
    text = readme.read_text(encoding="utf-8")
    begin, end = text.index(README_BEGIN), text.index(README_END)
    assert "| **MotwatchWorkerDown** |" in text[begin:end]
    readme.write_text(text.replace("## Docker", "## Docker and friends"), encoding="utf-8")
    assert stale(tmp_path) == []
    readme.write_text(
        text.replace("| **MotwatchWorkerDown** | critical |", "| **MotwatchWorkerDown** | low |")
    )
    assert stale(tmp_path) == [README_FILE]
    assert write_all(tmp_path) == [README_FILE]
    assert readme.read_text(encoding="utf-8") == text


@pytest.mark.external
def test_a_readme_without_its_markers_is_one_line_from_the_generator(tmp_path: Path) -> None:
    write_all(tmp_path)
    readme = tmp_path / README_FILE
    readme.write_text(readme.read_text(encoding="utf-8").replace(README_END, ""), encoding="utf-8")
    done = check(tmp_path)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stdout == "", done.stderr
    assert README_END in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------- metric names


def sample_names(registry: CollectorRegistry) -> set[str]:
    """The sample names a registry's metrics are exported under, children or not."""
    names = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def worker_series() -> set[str]:
    return sample_names(Metrics().registry)


def faust_series() -> set[str]:
    registry = CollectorRegistry()
    FaustMetrics.create(registry, "faust")  # as streams/app.py sets the sensor up (name_prefix="faust")
    return sample_names(registry)


def unknown_metric_names(exprs: dict[str, list[str]]) -> dict[str, list[str]]:
    allowed = (
        worker_series() | set(FAUST_SERIES) | set(PROMETHEUS_SERIES) | {r.record for r in RECORDING_RULES}
    )
    unknown: dict[str, list[str]] = {}
    for expr, where in exprs.items():
        for name in metric_names(expr) - allowed:
            unknown.setdefault(name, []).extend(where)
    return unknown


def test_every_metric_name_in_dashboards_and_rules_is_exported() -> None:
    exprs = shipped_expressions()
    assert len(exprs) > 50
    assert unknown_metric_names(exprs) == {}
    for expr, where in exprs.items():
        assert metric_names(expr), f"{where}: reads no metric? {expr}"


def test_the_faust_series_listed_are_ones_faust_exports_and_are_all_used() -> None:
    assert set(FAUST_SERIES) <= faust_series()
    used = set().union(*(metric_names(e) for e in shipped_expressions()))
    assert {n for n in used if n.startswith("faust_")} == set(FAUST_SERIES)
    assert not worker_series() & faust_series()


def test_the_metric_name_check_can_fail() -> None:
    broken = {
        "sum(rate(motwatch_events_recieved_total[5m])) / on() group_left() sum by (le) (faust_nope)": ["x"],
        "histogram_quantile(0.9, sum by (le) (rate(motwatch_event_lag_seconds_bucket[$__rate_interval])))": [
            "y"
        ],
        "motwatch_active_journeys_total offset $__range": ["z"],
    }
    assert unknown_metric_names(broken) == {
        "motwatch_events_recieved_total": ["x"],
        "faust_nope": ["x"],
        "motwatch_active_journeys_total": ["z"],
    }


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (kind, owner) (rate(motwatch_moments_total{status="failed", kind=~"a|b"}[5m])) * 3600',
            {"motwatch_moments_total"},
        ),
        ("(a:b:c / clamp_min(d, 0.01)) > 1.5 and on() (e >= 20)", {"a:b:c", "d", "e"}),
        ('x unless x offset 1h or increase(y{le="+Inf"}[$__range])', {"x", "y"}),
        ("time() - max by (partition) (w)", {"w"}),
        ('count(up{job="motwatch"}) or vector(0)', {"up"}),
        ('ALERTS{alertname=~"Motwatch.+", owner="by (x)"}', {"ALERTS"}),
        ("sum without (instance) (rate(z[1m] @ 100))", {"z"}),
        ("1e3 * q / ignoring(le) group_left sum(r)", {"q", "r"}),
    ],
)
def test_metric_names_are_told_from_functions_keywords_and_labels(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


# ---------------------------------------------------------------- alerts


def test_every_alert_has_severity_owner_summary_description_and_where_to_look() -> None:
    rules = [r for r in prometheus_rules() if "alert" in r]
    assert [r["alert"] for r in rules] == [a.name for a in ALERTS]
    assert len(rules) >= 8
    for rule, alert in zip(rules, ALERTS, strict=True):
        labels, notes = rule["labels"], rule["annotations"]
        assert labels["severity"] in SEVERITIES, rule["alert"]
        # A static owner, or (owner=None) the moments' own owner label, which the promtool cases
        # show on every firing instance (test_every_alert_fires_and_stays_quiet_in_unit_tests).
        assert labels.get("owner") == alert.owner
        for key in ("summary", "description", "look_first"):
            assert len(notes[key]) > 20, (rule["alert"], key)
        assert notes["dashboard"].startswith("/d/motwatch-")
    owners = Tally(r["labels"].get("owner", "from the series") for r in rules)
    assert owners[definitions.PIPELINE_OWNER] >= 4


def test_the_issue_s_alerts_are_all_there() -> None:
    names = {a.name for a in ALERTS}
    wanted = {
        "abandoned-checkout rate above its baseline": "MotwatchAbandonedCheckoutsAboveBaseline",
        "checkout errors in a burst": "MotwatchCheckoutErrorBurst",
        "broken links appearing": "MotwatchBrokenLinks",
        "chat SLA breaches": "MotwatchChatSlaBreaches",
        "negative-review spikes": "MotwatchNegativeReviewSpike",
        "rejected-event ratio": "MotwatchRejectedEventRatioHigh",
        "processing lag": "MotwatchProcessingLagHigh",
        "a worker that stops reporting": "MotwatchWorkerDown",
    }
    assert set(wanted.values()) <= names


def test_grafana_alerts_are_the_prometheus_alerts() -> None:
    prom = {r["alert"]: r for r in prometheus_rules() if "alert" in r}
    graf = {r["title"]: r for r in grafana_rules()}
    assert list(graf) == list(prom)
    datasource_uids = {
        source["uid"]
        for path in provisioning_files(REPO, "datasources")
        for source in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("datasources", [])
    }
    uids = [r["uid"] for r in graf.values()]
    assert len(set(uids)) == len(uids) and all(len(u) <= 40 for u in uids)
    ops = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
    for alert in ALERTS:
        rule, mirror = graf[alert.name], prom[alert.name]
        assert rule["labels"] == mirror["labels"]
        assert rule["for"] == alert.for_ and mirror.get("for", "0m") == alert.for_
        assert set(rule["annotations"]) == {"summary", "description", "look_first"}
        assert rule["annotations"]["look_first"] == mirror["annotations"]["look_first"]
        assert rule["noDataState"] == "OK" and rule["execErrState"] == "Error"
        data = {q["refId"]: q for q in rule["data"]}
        assert rule["condition"] == "C" and set(data) == {"A", "B", "C"}
        assert data["A"]["datasourceUid"] in datasource_uids
        assert data["A"]["model"]["expr"] == alert.grafana_query
        assert data["A"]["model"]["instant"] is True
        assert data["B"]["model"]["expression"] == "A" and data["B"]["model"]["reducer"] == "last"
        evaluator = data["C"]["model"]["conditions"][0]["evaluator"]
        assert evaluator == {"type": ops[alert.op], "params": [alert.threshold]}
        assert data["B"]["datasourceUid"] == data["C"]["datasourceUid"] == "__expr__"
        # The Prometheus expression is the same value, the same comparison, the same guard.
        assert mirror["expr"].startswith(f"({alert.query}) {alert.op} ")
        board = next(b for b in dashboards().values() if b["uid"] == rule["dashboardUid"])
        assert any(p["id"] == rule["panelId"] and p["title"] == alert.panel.panel for p in panels(board))


# ---------------------------------------------------------------- dashboards


def test_three_dashboards_with_described_panels_on_the_provisioned_datasource() -> None:
    boards = dashboards()
    assert set(boards) == {"overview.json", "touchpoint-health.json", "pipeline.json"}
    assert len({b["uid"] for b in boards.values()}) == 3
    for name, board in boards.items():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        occupied: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            pos = panel["gridPos"]
            cells = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
            assert not cells & occupied, f"{name}: {panel['title']} overlaps another panel"
            assert pos["x"] + pos["w"] <= 24
            occupied |= cells
        for panel in panels(board):
            assert "Look first:" in panel["description"], panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
            assert panel["targets"] and all(t["datasource"]["uid"] == "prometheus" for t in panel["targets"])
    titles = {p["title"] for p in panels(boards["overview.json"])}
    assert {"Moments of truth funnel", "Conversion between moments", "Top failing kinds"} <= titles


@pytest.mark.parametrize("path", [DOCS_FILE, README_FILE])
def test_the_table_lists_every_panel_and_alert(path: Path) -> None:
    text = (REPO / path).read_text(encoding="utf-8")
    for board in DASHBOARDS:
        for panel in board.panels():
            assert f"**{panel.title.replace('<', '&lt;')}**" in text
    for alert in ALERTS:
        assert f"| **{alert.name}** | {alert.severity} |" in text


def test_the_readme_names_every_series_of_the_worker_with_its_labels() -> None:
    text = (REPO / README_FILE).read_text(encoding="utf-8")
    for family in Metrics().registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        row = next((line for line in text.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"README.md's table of series lacks {name}"
        cells = [cell.strip() for cell in row.split("|")]
        assert cells[2] == family.type, row
        labels = {label.strip() for label in cells[3].split(",") if label.strip()}
        metric = next(m for m in vars(Metrics()).values() if getattr(m, "_name", None) == family.name)
        assert labels == set(metric._labelnames), row


def test_the_touchpoint_health_dashboard_is_per_channel() -> None:
    board = dashboards()["touchpoint-health.json"]
    [variable] = board["templating"]["list"]
    assert variable["name"] == "channel" and variable["includeAll"] and variable["multi"]
    assert variable["query"] == "label_values(motwatch_events_accepted_total, channel)"
    with_channel = {"motwatch_moments_total", "motwatch_events_accepted_total"} | {
        r.record for r in RECORDING_RULES if r.record.startswith("motwatch:moments_failed:")
    }
    filtered = 0
    for panel in panels(board):
        for target in panel["targets"]:
            if metric_names(target["expr"]) & with_channel:
                # Every selector of a series with a channel label takes the selected channels ...
                selectors = re.findall(r"([a-z_:]+)\{([^}]*)\}", target["expr"])
                assert all('channel=~"$channel"' in matchers for _, matchers in selectors), target["expr"]
                # ... and the legend tells the channels apart.
                assert "{{channel}}" in target["legendFormat"], (panel["title"], target["legendFormat"])
                filtered += 1
    assert filtered >= 10
    # Broken links, checkout errors and bounce rate per channel; chat first response is the chat channel's.
    titles = {p["title"] for p in panels(board)}
    assert {
        "Broken links per hour, by channel and moment of truth",
        "Checkout errors per hour, by channel",
        "Bounce rate (first-impression bounces per page exit), by channel",
        "Chat first-response time p50 / p95 (last 15 min)",
    } <= titles


def test_every_dashboard_variable_is_given_a_value_before_prometheus_sees_it() -> None:
    for expression in expressions():
        assert "$" not in expression.promql, expression.where
    assert any("$channel" in e.expr for e in expressions())


def test_the_inventory_covers_every_shipped_expression() -> None:
    mine = {e.expr for e in expressions()}
    assert set(shipped_expressions()) <= mine
    assert len(expressions()) == len({e.where for e in expressions()})


# ---------------------------------------------------------------- promtool


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run make prometheus", pytrace=False)
    return path


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.external
def test_promtool_checks_the_rules(promtool: str) -> None:
    done = run(promtool, "check", "rules", str(RULES_FILE))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(RECORDING_RULES) + len(ALERTS)} rules found" in done.stdout


@pytest.mark.external
def test_the_stack_s_prometheus_config_loads_the_rules(promtool: str, tmp_path: Path) -> None:
    """config/prometheus.yml with the rules where docker-compose.yml mounts them (/etc/prometheus/rules)."""
    shutil.copy(REPO / "config" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copytree(REPO / RULES_FILE.parent, tmp_path / "rules")
    done = run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout
    assert f"SUCCESS: {len(RECORDING_RULES) + len(ALERTS)} rules found" in done.stdout


@pytest.mark.external
def test_promtool_check_rules_can_fail(promtool: str, tmp_path: Path) -> None:
    rules = (REPO / RULES_FILE).read_text(encoding="utf-8")
    text = rules.replace("sum by (kind, moment, owner, channel) (", "sum by (kind (", 1)
    assert text != rules
    (tmp_path / "broken.yml").write_text(text, encoding="utf-8")
    assert run(promtool, "check", "rules", str(tmp_path / "broken.yml")).returncode != 0


def test_the_unit_test_file_is_up_to_date() -> None:
    rendered = cases.render()
    assert cases.TEST_FILE.read_text(encoding="utf-8") == rendered, (
        "run python -m tests.monitoring.promtool.cases"
    )


def test_every_alert_fires_and_stays_quiet_in_unit_tests() -> None:
    for name, (fires, quiet) in cases.coverage().items():
        assert fires >= 1 and quiet >= 1, f"{name}: {fires} firing and {quiet} quiet cases"
    for test in cases.document()["tests"]:
        for check in test.get("alert_rule_test", []):
            for expected in check["exp_alerts"]:
                assert expected["exp_labels"]["severity"] in SEVERITIES
                assert expected["exp_labels"]["owner"], test["name"]


@pytest.mark.external
def test_promtool_unit_tests_pass(promtool: str) -> None:
    done = run(promtool, "test", "rules", cases.TEST_FILE.name, cwd=cases.TEST_FILE.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.external
def test_promtool_unit_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    """The same unit tests against rules with one threshold moved must fail."""
    rules = (REPO / RULES_FILE).read_text(encoding="utf-8")
    moved = rules.replace('{kind="checkout_error"})) >= 3', '{kind="checkout_error"})) >= 4')
    assert moved != rules
    (tmp_path / "rules.yml").write_text(moved, encoding="utf-8")
    document = cases.document()
    document["rule_files"] = ["rules.yml"]
    document["tests"] = [t for t in document["tests"] if "MotwatchCheckoutErrorBurst" in t.get("name", "")]
    (tmp_path / "test.yml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    done = run(promtool, "test", "rules", "test.yml", cwd=tmp_path)
    assert done.returncode != 0
    assert "MotwatchCheckoutErrorBurst" in done.stdout + done.stderr
