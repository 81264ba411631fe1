"""Alert routing to owner teams: an Alertmanager configuration and Grafana's notification policies.

Both come from the alerts' ``owner`` labels (``definitions.py``) and the
teams' receivers (``[teams.<name>]`` in the settings):

* one receiver (Alertmanager) or contact point (Grafana) per team, named after it;
  a team with no receiver configured gets an Alertmanager receiver without
  integrations, so its alerts are dropped, and no Grafana route (Grafana's own
  default contact point takes them);
* one child route per team matching ``owner="<team>"``, grouped by ``alertname``
  and ``owner``, with one nested route per severity setting how often a firing
  alert is sent again (``REPEAT``);
* an alert with an owner no route names goes to the pipeline's team
  (``PIPELINE_OWNER``), the team that runs motwatch and can fix its configuration;
* while an alert that means "the pipeline is down or lagging" fires
  (``PIPELINE_DOWN``), the alerts about failing moments are inhibited: their
  counts are then wrong, not the shop;
* while an alert names the cause of another on the same worker (``CAUSES``:
  Kafka unreachable, and so writes failing), the consequence is inhibited:
  one page for one trouble.

Secrets stay out of the generated files: Alertmanager reads them from the
files the settings name, Grafana from environment variables
(``grafana_secret_variable``).
"""

from __future__ import annotations

import re
from typing import Any

from motwatch.monitoring.definitions import PIPELINE_OWNER
from motwatch.monitoring.model import SEVERITIES, Alert
from motwatch.settings import Settings, TeamSettings

REPEAT = {"critical": "1h", "high": "4h", "medium": "12h", "low": "24h"}
GROUP_BY = ["alertname", "owner"]
GROUP_WAIT = "30s"
GROUP_INTERVAL = "5m"
PIPELINE_DOWN = (
    "MotwatchWorkerDown",
    "MotwatchWorkerMissing",
    "MotwatchWorkerStalled",
    "MotwatchKafkaUnreachable",
    "MotwatchConsumerLagHigh",
    "MotwatchWatermarkStalled",
)
# (cause, consequence): while the cause fires for a worker, the consequence on that worker is inhibited.
CAUSES = (("MotwatchKafkaUnreachable", "MotwatchWritesFailing"),)
# The label that says which worker an alert is about.
SAME_WORKER = ["instance"]
DEFAULT_RECEIVER = PIPELINE_OWNER


def teams(settings: Settings, alerts: tuple[Alert, ...]) -> list[str]:
    """Every owner team, sorted: configured, channel owners, default owner, alerts' static owners."""
    names = set(settings.teams) | set(settings.owners.values()) | {settings.default_owner}
    names |= {alert.owner for alert in alerts if alert.owner is not None}
    names.add(PIPELINE_OWNER)
    return sorted(names)


def _names(alerts: tuple[Alert, ...], wanted: tuple[str, ...]) -> list[str]:
    known = {alert.name for alert in alerts}
    missing = [name for name in wanted if name not in known]
    if missing:
        raise ValueError(f"inhibiting alerts not in the definitions: {', '.join(missing)}")
    return list(wanted)


def _regex(names: list[str]) -> str:
    return "|".join(names)


def moment_alerts(alerts: tuple[Alert, ...]) -> list[str]:
    """The alerts about failing moments: those routed by the moments' own owner label."""
    return [alert.name for alert in alerts if alert.owner is None]


def _integrations(team: TeamSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if team.webhook_url:
        out["webhook_configs"] = [{"url": team.webhook_url, "send_resolved": True}]
    if team.email:
        out["email_configs"] = [
            {
                "to": team.email,
                "from": team.email_from,
                "smarthost": team.email_smarthost,
                "send_resolved": True,
            }
        ]
    if team.slack_channel:
        out["slack_configs"] = [
            {"channel": team.slack_channel, "api_url_file": team.slack_api_url_file, "send_resolved": True}
        ]
    if team.pagerduty_routing_key_file:
        out["pagerduty_configs"] = [
            {"routing_key_file": team.pagerduty_routing_key_file, "send_resolved": True}
        ]
    return out


def _severity_routes() -> list[dict[str, Any]]:
    return [{"matchers": [f'severity="{s}"'], "repeat_interval": REPEAT[s]} for s in SEVERITIES]


def alertmanager_config(settings: Settings, alerts: tuple[Alert, ...]) -> dict[str, Any]:
    """Alertmanager's configuration: receivers, the route tree and the inhibition rules."""
    names = teams(settings, alerts)
    receivers = [{"name": name, **_integrations(settings.teams.get(name, TeamSettings()))} for name in names]
    routes = [
        {"matchers": [f'owner="{name}"'], "receiver": name, "routes": _severity_routes()} for name in names
    ]
    return {
        "route": {
            "receiver": DEFAULT_RECEIVER,
            "group_by": GROUP_BY,
            "group_wait": GROUP_WAIT,
            "group_interval": GROUP_INTERVAL,
            "repeat_interval": REPEAT["high"],
            "routes": [*routes, {"matchers": [], "receiver": DEFAULT_RECEIVER, "routes": _severity_routes()}],
        },
        "inhibit_rules": [
            {
                "source_matchers": [f'alertname=~"{_regex(_names(alerts, PIPELINE_DOWN))}"'],
                "target_matchers": [f'alertname=~"{_regex(moment_alerts(alerts))}"'],
            },
            *(
                {
                    "source_matchers": [f'alertname="{cause}"'],
                    "target_matchers": [f'alertname="{consequence}"'],
                    "equal": SAME_WORKER,
                }
                for cause, consequence in (_names(alerts, pair) for pair in CAUSES)
            ),
        ],
        "receivers": receivers,
    }


def grafana_secret_variable(team: str, secret: str) -> str:
    """The environment variable Grafana reads a team's secret from, e.g. MOTWATCH_WEB_SLACK_URL.

    Grafana's provisioning interpolates environment variables, not files: set it
    from the file the team's ``*_file`` setting names.
    """
    return "MOTWATCH_" + re.sub(r"[^A-Z0-9]", "_", f"{team}_{secret}".upper())


def _grafana_settings(kind: str, name: str, team: TeamSettings) -> dict[str, Any]:
    if kind == "webhook":
        return {"url": team.webhook_url}
    if kind == "email":
        return {"addresses": team.email}
    if kind == "slack":
        return {"recipient": team.slack_channel, "url": f"${{{grafana_secret_variable(name, 'slack_url')}}}"}
    return {"integrationKey": f"${{{grafana_secret_variable(name, 'pagerduty_key')}}}"}


def _grafana_receivers(name: str, team: TeamSettings) -> list[dict[str, Any]]:
    kinds = [
        ("webhook", team.webhook_url),
        ("email", team.email),
        ("slack", team.slack_channel),
        ("pagerduty", team.pagerduty_routing_key_file),
    ]
    return [
        {"uid": f"motwatch-{name}-{kind}"[:40], "type": kind, "settings": _grafana_settings(kind, name, team)}
        for kind, value in kinds
        if value
    ]


GRAFANA_DEFAULT_CONTACT_POINT = "grafana-default-email"


def grafana_notification_provisioning(settings: Settings, alerts: tuple[Alert, ...]) -> dict[str, Any]:
    """Grafana's contact points and notification policy tree, the same routes as Alertmanager's.

    Grafana has no contact point without integrations: a team without receivers
    has no route, and its alerts go where the root sends them (the pipeline
    team's contact point, else Grafana's own default one).
    """
    contact_points = []
    routes = []
    for name in teams(settings, alerts):
        receivers = _grafana_receivers(name, settings.teams.get(name, TeamSettings()))
        if not receivers:
            continue
        contact_points.append({"orgId": 1, "name": name, "receivers": receivers})
        routes.append(
            {
                "receiver": name,
                "object_matchers": [["owner", "=", name]],
                "routes": [
                    {"object_matchers": [["severity", "=", s]], "repeat_interval": REPEAT[s]}
                    for s in SEVERITIES
                ],
            }
        )
    root = (
        PIPELINE_OWNER
        if any(p["name"] == PIPELINE_OWNER for p in contact_points)
        else GRAFANA_DEFAULT_CONTACT_POINT
    )
    doc: dict[str, Any] = {"apiVersion": 1}
    if contact_points:
        doc["contactPoints"] = contact_points
    doc["policies"] = [
        {
            "orgId": 1,
            "receiver": root,
            "group_by": GROUP_BY,
            "group_wait": GROUP_WAIT,
            "group_interval": GROUP_INTERVAL,
            "repeat_interval": REPEAT["high"],
            "routes": routes,
        }
    ]
    return doc
