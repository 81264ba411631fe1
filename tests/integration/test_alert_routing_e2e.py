"""From failing journeys to the owning team's pager: worker, Prometheus, Alertmanager, webhooks.

Everything is real and runs here: the worker reads the session's Kafka broker
(the touchpoints sent by confluent-kafka's producer, a client nobody here
wrote); Debian's Prometheus scrapes it every second and evaluates the rules
on the test profile's clock (``motwatch.monitoring.profile.TEST``: the real
expressions and thresholds, every window and ``for`` divided by 30); it
sends its alerts to Debian's Alertmanager running the configuration
generated from the same settings file the worker reads, whose teams'
webhook receivers are HTTP endpoints of this test.

The settings make a "checkout" team owner of the checkout channel and give
it, the support team and the pipeline team a webhook. Checkout errors reach
the checkout team's receiver alone, unanswered chats the support team's
alone, each with its summary, what to look at first and the owner label;
the pipeline team, its pipeline healthy, hears nothing; and once the
failures stop, each team gets the resolved notification.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from motwatch.monitoring.definitions import ALERTS, PIPELINE_OWNER, RECORDING_RULES
from motwatch.monitoring.profile import TEST
from motwatch.settings import DEFAULT_OWNERS, load_settings
from tests.alerting import AlertmanagerProcess, Receivers
from tests.clients import produce_with_librdkafka
from tests.integration.test_prometheus_e2e import Prometheus, _event
from tests.workers import WorkerProcess, motwatch_env, wait_until

pytestmark = pytest.mark.integration

CHECKOUT_ALERT = "MotwatchCheckoutErrorBurst"
CHAT_ALERT = "MotwatchChatSlaBreaches"
LOOK_FIRST = {alert.name: alert.look_first for alert in ALERTS}


def settings_file(path: Path, receivers: Receivers) -> Path:
    """The worker's settings: the usual owners, but checkout owned by a team of its own; webhooks."""
    owners = {**DEFAULT_OWNERS, "checkout": "checkout"}
    lines = ["[owners]", *(f'{channel} = "{team}"' for channel, team in owners.items())]
    for team in ("checkout", "support", PIPELINE_OWNER):
        lines += [f"[teams.{team}]", f'webhook_url = "{receivers.url(team)}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def feed(now: datetime) -> list[bytes]:
    """Four failed payments and three chats nobody answers, then a page view that moves event time on."""
    ago = lambda minutes: now - timedelta(minutes=minutes)  # noqa: E731
    chats = [
        _event(f"rt-chat-{i}", ago(4 - i / 60), f"cust-chat-{i}", "chat", "chat_started", chat_id=f"c{i}")
        for i in range(3)
    ]
    payments = [
        _event(
            f"rt-pay-{i}",
            ago(2 - i / 60),
            f"cust-pay-{i}",
            "checkout",
            "payment_failed",
            cart_id=f"cart-{i}",
            reason="card_declined",
        )
        for i in range(4)
    ]
    # The watermark passes the chats' deadlines (SLA 60 s) with this one.
    tail = _event("rt-tail", ago(0.5), "anon-tail", "web", "page_view", url="https://shop.example/")
    return [*chats, *payments, tail]


def notifications(receivers: Receivers, team: str, alertname: str, status: str) -> list[dict[str, Any]]:
    """The alerts named ``alertname`` with ``status`` in what ``team``'s receiver got."""
    return [
        alert
        for body in receivers.got(team)
        for alert in body["alerts"]
        if alert["labels"]["alertname"] == alertname and alert["status"] == status
    ]


def test_each_team_gets_its_own_alert_and_then_its_resolution(kafka_bootstrap, topic_prefix, tmp_path):
    with Receivers() as receivers:
        config = settings_file(tmp_path / "motwatch.toml", receivers)
        settings = load_settings(config, environ={})
        (tmp_path / "alertmanager.yml").write_text(
            yaml.safe_dump(TEST.alertmanager(settings, ALERTS)), encoding="utf-8"
        )
        (tmp_path / "rules.yml").write_text(TEST.rules(RECORDING_RULES, ALERTS), encoding="utf-8")

        env = motwatch_env(kafka_bootstrap, topic_prefix, partitions=1, allowed_lateness_s=0)
        env["MOTWATCH_CONFIG"] = str(config)
        manager = AlertmanagerProcess(tmp_path / "alertmanager", tmp_path / "alertmanager.yml")
        prometheus = Prometheus(tmp_path / "prometheus", int(env["MOTWATCH_WEB_PORT"]))
        prometheus.configure(rules=tmp_path / "rules.yml", alertmanager=f"127.0.0.1:{manager.port}")
        with WorkerProcess(env, tmp_path / "worker") as worker:
            try:
                manager.start()
                prometheus.start()
                prometheus.wait_scraping()
                sent = produce_with_librdkafka(
                    kafka_bootstrap, f"{topic_prefix}touchpoints", feed(datetime.now(UTC)), keyed=True
                )
                assert sent == 8

                wait_until(
                    lambda: (
                        notifications(receivers, "checkout", CHECKOUT_ALERT, "firing")
                        and notifications(receivers, "support", CHAT_ALERT, "firing")
                    ),
                    120,
                    "each team's alert at its receiver",
                    interval=0.25,
                )
                (checkout, *_) = notifications(receivers, "checkout", CHECKOUT_ALERT, "firing")
                assert checkout["labels"]["owner"] == "checkout"
                assert checkout["labels"]["severity"] == "critical"
                # 3 or 4: a scrape may fall between the worker's third and fourth moment
                summary = checkout["annotations"]["summary"]
                assert re.fullmatch(r"[34] checkout errors in 5 minutes \(owner checkout\)", summary), summary
                assert checkout["annotations"]["look_first"] == LOOK_FIRST[CHECKOUT_ALERT]
                (chat, *_) = notifications(receivers, "support", CHAT_ALERT, "firing")
                assert chat["labels"]["owner"] == "support"
                assert chat["annotations"]["summary"].startswith("3 chats unanswered within the SLA")
                assert chat["annotations"]["look_first"] == LOOK_FIRST[CHAT_ALERT]
                assert {body["receiver"] for body in receivers.got("checkout")} == {"checkout"}

                # No more failures: within the (divided) windows both alerts resolve.
                wait_until(
                    lambda: (
                        notifications(receivers, "checkout", CHECKOUT_ALERT, "resolved")
                        and notifications(receivers, "support", CHAT_ALERT, "resolved")
                    ),
                    120,
                    "each team's resolved notification",
                    interval=0.25,
                )
                # Nobody got another team's alert, and the pipeline team, its pipeline healthy, nothing.
                for team in ("checkout", "support"):
                    owners = {a["labels"].get("owner") for b in receivers.got(team) for a in b["alerts"]}
                    assert owners == {team}, (team, receivers.got(team))
                names = {a["labels"]["alertname"] for b in receivers.got("checkout") for a in b["alerts"]}
                assert names == {CHECKOUT_ALERT}, names
                assert receivers.got(PIPELINE_OWNER) == []
                assert worker.alive()
            finally:
                prometheus.stop()
                manager.stop()
