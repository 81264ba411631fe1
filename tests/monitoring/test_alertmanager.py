"""Alert routing to owner teams, checked by Debian's amtool and a real Alertmanager.

* ``amtool check-config`` accepts the generated configuration, with no receivers
  (the defaults) and with every kind of receiver configured.
* ``amtool config routes test`` sends every owner team's alerts, at every severity,
  to that team's receiver, and an alert with an unknown owner to the pipeline team.
* A real Alertmanager inhibits a moment alert while a pipeline-down alert fires, and
  a worker's failing writes while that worker (not another) cannot reach Kafka.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from motwatch.monitoring.alertmanager import (
    CAUSES,
    DEFAULT_RECEIVER,
    GRAFANA_DEFAULT_CONTACT_POINT,
    PIPELINE_DOWN,
    REPEAT,
    alertmanager_config,
    grafana_notification_provisioning,
    grafana_secret_variable,
    moment_alerts,
    teams,
)
from motwatch.monitoring.definitions import ALERTS, PIPELINE_OWNER
from motwatch.monitoring.generate import ALERTMANAGER_FILE, render_all
from motwatch.monitoring.model import SEVERITIES
from motwatch.settings import Settings, load_settings
from tests.alerting import AlertmanagerProcess
from tests.workers import wait_until

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.external


@pytest.fixture(scope="module")
def amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        pytest.fail("amtool is not installed: run make alertmanager", pytrace=False)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def route(amtool: str, config: Path, **labels: str) -> str:
    done = run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={config}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_amtool_accepts_the_committed_configuration(amtool: str) -> None:
    done = run(amtool, "check-config", str(REPO / ALERTMANAGER_FILE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_team_without_receivers_gets_one_without_integrations() -> None:
    config = alertmanager_config(Settings(), ALERTS)
    assert [r["name"] for r in config["receivers"]] == teams(Settings(), ALERTS)
    assert all(set(r) == {"name"} for r in config["receivers"])
    assert {PIPELINE_OWNER, Settings().default_owner} | set(Settings().owners.values()) <= set(
        teams(Settings(), ALERTS)
    )


@pytest.fixture
def configured(tmp_path: Path) -> Settings:
    """Settings whose web team has every kind of receiver, secrets as files."""
    config = tmp_path / "motwatch.toml"
    config.write_text(
        "[teams.web]\n"
        'webhook_url = "http://127.0.0.1:9/web"\n'
        'email = "web@example.com"\n'
        'email_smarthost = "smtp.example.com:587"\n'
        'email_from = "alerts@example.com"\n'
        'slack_channel = "#web"\n'
        f'slack_api_url_file = "{tmp_path / "slack"}"\n'
        f'pagerduty_routing_key_file = "{tmp_path / "pagerduty"}"\n'
        "[teams.search_ads]\n",
        encoding="utf-8",
    )
    return load_settings(config, environ={})


def test_amtool_accepts_every_kind_of_receiver(amtool: str, configured: Settings, tmp_path: Path) -> None:
    path = tmp_path / "alertmanager.yml"
    path.write_text(render_all(REPO, configured)[ALERTMANAGER_FILE], encoding="utf-8")
    done = run(amtool, "check-config", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    web = next(r for r in yaml.safe_load(path.read_text())["receivers"] if r["name"] == "web")
    assert set(web) == {"name", "webhook_configs", "email_configs", "slack_configs", "pagerduty_configs"}
    assert "search_ads" in teams(configured, ALERTS)


def test_amtool_rejects_a_broken_configuration(amtool: str, tmp_path: Path) -> None:
    path = tmp_path / "alertmanager.yml"
    config = alertmanager_config(Settings(), ALERTS)
    config["route"]["receiver"] = "nobody"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert run(amtool, "check-config", str(path)).returncode != 0


def test_every_team_and_severity_routes_to_the_team(
    amtool: str, configured: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "alertmanager.yml"
    path.write_text(render_all(REPO, configured)[ALERTMANAGER_FILE], encoding="utf-8")
    names = [moment_alerts(ALERTS)[0], PIPELINE_DOWN[0]]
    for team in teams(configured, ALERTS):
        for severity in SEVERITIES:
            for name in names:
                assert route(amtool, path, owner=team, severity=severity, alertname=name) == team


def test_an_unknown_owner_goes_to_the_pipeline_team(amtool: str) -> None:
    path = REPO / ALERTMANAGER_FILE
    assert "nobody_knows" not in teams(Settings(), ALERTS)
    assert route(amtool, path, owner="nobody_knows", severity="high", alertname="MotwatchBrokenLinks") == (
        DEFAULT_RECEIVER
    )
    assert route(amtool, path, severity="low", alertname="MotwatchBrokenLinks") == DEFAULT_RECEIVER


def test_each_severity_repeats_at_its_interval() -> None:
    config = alertmanager_config(Settings(), ALERTS)
    for team_route in config["route"]["routes"]:
        assert [(r["matchers"], r["repeat_interval"]) for r in team_route["routes"]] == [
            ([f'severity="{s}"'], REPEAT[s]) for s in SEVERITIES
        ]


def test_pipeline_down_inhibits_only_moment_alerts_and_a_cause_its_consequence_on_one_worker() -> None:
    rule, *by_cause = alertmanager_config(Settings(), ALERTS)["inhibit_rules"]
    assert [(r["source_matchers"], r["target_matchers"], r["equal"]) for r in by_cause] == [
        ([f'alertname="{cause}"'], [f'alertname="{consequence}"'], ["instance"])
        for cause, consequence in CAUSES
    ]
    targets = moment_alerts(ALERTS)
    assert targets and all(a.owner is None for a in ALERTS if a.name in targets)
    assert not set(targets) & set(PIPELINE_DOWN)
    assert rule["target_matchers"] == [f'alertname=~"{"|".join(targets)}"']
    assert rule["source_matchers"] == [f'alertname=~"{"|".join(PIPELINE_DOWN)}"']


# ---------------------------------------------------------------- a real Alertmanager


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[AlertmanagerProcess]:
    manager = AlertmanagerProcess(tmp_path, REPO / ALERTMANAGER_FILE).start()
    try:
        yield manager
    finally:
        manager.stop(10)


def states(manager: AlertmanagerProcess) -> dict[str, str]:
    return {a["labels"]["alertname"]: a["status"]["state"] for a in manager.api("/alerts")}


def test_a_real_alertmanager_inhibits_moment_alerts_while_the_pipeline_is_down(
    alertmanager: AlertmanagerProcess,
) -> None:
    moment = moment_alerts(ALERTS)[0]
    alertmanager.api("/alerts", [{"labels": {"alertname": moment, "owner": "web", "severity": "high"}}])
    wait_until(lambda: states(alertmanager).get(moment) == "active", 20, f"{moment} active")
    down = {"alertname": PIPELINE_DOWN[0], "owner": PIPELINE_OWNER, "severity": "critical"}
    alertmanager.api("/alerts", [{"labels": down}])
    wait_until(lambda: states(alertmanager).get(moment) == "suppressed", 20, f"{moment} inhibited")
    assert states(alertmanager)[PIPELINE_DOWN[0]] == "active"


def test_a_real_alertmanager_inhibits_a_worker_s_failing_writes_while_it_cannot_reach_kafka(
    alertmanager: AlertmanagerProcess,
) -> None:
    """One page for one trouble: the writes of the worker that cannot reach Kafka are not paged
    for; another worker's failing writes still are."""
    cause, consequence = CAUSES[0]

    def alert(name: str, instance: str) -> dict[str, dict[str, str]]:
        labels = {"alertname": name, "owner": PIPELINE_OWNER, "severity": "high", "instance": instance}
        return {"labels": labels}

    def state(name: str, instance: str) -> str | None:
        return next(
            (a["status"]["state"] for a in alertmanager.api("/alerts")
             if a["labels"]["alertname"] == name and a["labels"].get("instance") == instance),
            None,
        )  # fmt: skip

    alertmanager.api("/alerts", [alert(consequence, "w1:9100"), alert(consequence, "w2:9100")])
    wait_until(lambda: state(consequence, "w1:9100") == "active", 20, f"{consequence} active")
    alertmanager.api("/alerts", [alert(cause, "w1:9100")])
    wait_until(lambda: state(consequence, "w1:9100") == "suppressed", 20, f"w1's {consequence} inhibited")
    assert state(consequence, "w2:9100") == "active"
    assert state(cause, "w1:9100") == "active"


def test_grafana_routes_only_teams_with_receivers_and_keeps_secrets_out(configured: Settings) -> None:
    doc = grafana_notification_provisioning(configured, ALERTS)
    assert doc["apiVersion"] == 1
    assert [p["name"] for p in doc["contactPoints"]] == ["web"]
    (web,) = doc["contactPoints"]
    assert sorted(r["type"] for r in web["receivers"]) == ["email", "pagerduty", "slack", "webhook"]
    (policy,) = doc["policies"]
    assert policy["receiver"] == GRAFANA_DEFAULT_CONTACT_POINT  # platform has no receiver here
    (route_,) = policy["routes"]
    assert route_["object_matchers"] == [["owner", "=", "web"]]
    assert [r["repeat_interval"] for r in route_["routes"]] == [REPEAT[s] for s in SEVERITIES]
    text = yaml.safe_dump(doc)
    assert f"${{{grafana_secret_variable('web', 'slack_url')}}}" in text
    assert str(configured.teams["web"].slack_api_url_file) not in text


def test_the_generator_uses_the_given_config(configured: Settings, tmp_path: Path) -> None:
    config = tmp_path / "motwatch.toml"
    done = run(sys.executable, "-m", "motwatch.monitoring", "--root", str(tmp_path), "--config", str(config))
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load((tmp_path / ALERTMANAGER_FILE).read_text(encoding="utf-8"))
    assert written == alertmanager_config(configured, ALERTS)
    assert written != alertmanager_config(Settings(), ALERTS)
