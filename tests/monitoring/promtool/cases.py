"""Unit tests of the Prometheus rules, for ``promtool test rules``: every alert firing and not firing.

The cases are written here, by hand: input series, when to evaluate, which
alert instances must fire with which labels, and the value each one must
show, as Prometheus formats it (``humanize``, ``humanizePercentage``,
``humanizeDuration``). The expected annotations are the alert's own templates
(from ``motwatch.monitoring``) with those values and labels filled in, so
promtool checks the rendered summaries and descriptions too.

``python -m tests.monitoring.promtool.cases`` writes ``tests/monitoring/promtool/motwatch.test.yml``;
``tests/monitoring/test_monitoring.py`` checks that file is up to date and runs promtool on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from motwatch.monitoring.definitions import ALERTS
from motwatch.monitoring.rules import _alert_rule

HERE = Path(__file__).resolve().parent
TEST_FILE = HERE / "motwatch.test.yml"
RULES = "../../../grafana/rules/motwatch.rules.yml"  # relative to TEST_FILE

WORKER = 'instance="w1:6066", job="motwatch"'
ALERTS_BY_NAME = {alert.name: alert for alert in ALERTS}


# The channel a kind's failing touchpoint usually comes from.
CHANNEL_OF = {
    "abandoned_checkout": "checkout",
    "checkout_error": "checkout",
    "broken_link": "web",
    "chat_unanswered": "chat",
    "negative_review": "review",
}


def moments(
    kind: str,
    owner: str,
    values: str,
    *,
    moment: str = "FMOT",
    status: str = "failed",
    channel: str | None = None,
) -> dict:
    labels = (
        f'kind="{kind}", moment="{moment}", phase="purchase", severity="high", owner="{owner}", '
        f'channel="{channel or CHANNEL_OF[kind]}", status="{status}", {WORKER}'
    )
    return {"series": f"motwatch_moments_total{{{labels}}}", "values": values}


def series(name: str, values: str, **labels: str) -> dict:
    text = ", ".join([*(f'{k}="{v}"' for k, v in labels.items()), WORKER])
    return {"series": f"{name}{{{text}}}", "values": values}


def histogram(name: str, buckets: dict[str, str]) -> list[dict]:
    """Classic histogram buckets: {le: values}."""
    return [series(f"{name}_bucket", values, le=le) for le, values in buckets.items()]


@dataclass
class Firing:
    """One alert instance expected to fire: its labels (besides severity/owner/alertname) and value."""

    value: str  # as the alert's value_format prints it
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Case:
    name: str
    alert: str
    input_series: list[dict]
    eval_time: str
    firing: list[Firing]  # empty: the alert must not fire
    interval: str = "1m"


def _expected(alert_name: str, firing: Firing) -> dict[str, Any]:
    alert = ALERTS_BY_NAME[alert_name]
    labels = {**firing.labels, **alert.labels()}
    annotations = dict(_alert_rule(alert)["annotations"])
    for key, text in annotations.items():
        text = text.replace(f"{{{{ $value | {alert.value_format} }}}}", firing.value)
        for label, value in labels.items():
            text = text.replace(f"{{{{ $labels.{label} }}}}", value)
        if "{{" in text:
            raise ValueError(f"{alert_name}: {key} still has a template after filling: {text}")
        annotations[key] = text
    return {"exp_labels": labels, "exp_annotations": annotations}


# Each alert: at least one case where it fires and one where it does not.
CASES: list[Case] = [
    # ------------------------------------------------------------ checkout errors
    Case(
        "three checkout errors within five minutes fire at once",
        "MotwatchCheckoutErrorBurst",
        [moments("checkout_error", "ecommerce", "0x10 1 2 3 3")],
        "13m",
        [Firing("3", {"owner": "ecommerce"})],
    ),
    Case(
        "a burst right after a worker start counts its first errors too",
        "MotwatchCheckoutErrorBurst",
        [moments("checkout_error", "ecommerce", "_x10 3 3")],
        "11m",
        [Firing("3", {"owner": "ecommerce"})],
    ),
    Case(
        "checkout errors on two channels of one owner add up",
        "MotwatchCheckoutErrorBurst",
        [
            moments("checkout_error", "ecommerce", "0x10 1 2 2", channel="checkout"),
            moments("checkout_error", "ecommerce", "0x10 0 0 1", channel="phone"),
        ],
        "13m",
        [Firing("3", {"owner": "ecommerce"})],
    ),
    Case(
        "two checkout errors are no burst",
        "MotwatchCheckoutErrorBurst",
        [moments("checkout_error", "ecommerce", "0x10 1 2 2 2")],
        "13m",
        [],
    ),
    Case(
        "a burst is over five minutes later",
        "MotwatchCheckoutErrorBurst",
        [moments("checkout_error", "ecommerce", "0x10 1 2 3 3x10")],
        "20m",
        [],
    ),
    # ------------------------------------------------------------ broken links
    Case(
        "the first broken link fires, per owner, channel and moment of truth",
        "MotwatchBrokenLinks",
        [
            moments("broken_link", "web", "_x20 1 1", moment="ZMOT"),
            moments("broken_link", "marketing", "0x20 2 2", moment="SMOT", channel="email"),
        ],
        "21m",
        [
            Firing("1", {"owner": "web", "channel": "web", "moment": "ZMOT"}),
            Firing("2", {"owner": "marketing", "channel": "email", "moment": "SMOT"}),
        ],
    ),
    Case(
        "no new broken link for 15 minutes",
        "MotwatchBrokenLinks",
        [moments("broken_link", "web", "_x10 1x30", moment="ZMOT")],
        "30m",
        [],
    ),
    Case(
        "other failures are not broken links",
        "MotwatchBrokenLinks",
        [moments("negative_review", "customer_success", "0 1 2 3")],
        "3m",
        [],
    ),
    # ------------------------------------------------------------ chat SLA
    Case(
        "three unanswered chats within 15 minutes",
        "MotwatchChatSlaBreaches",
        [moments("chat_unanswered", "support", "0x20 1 2 3")],
        "23m",
        [Firing("3", {"owner": "support"})],
    ),
    Case(
        "two unanswered chats are within bounds",
        "MotwatchChatSlaBreaches",
        [moments("chat_unanswered", "support", "0x20 1 2 2")],
        "23m",
        [],
    ),
    # ------------------------------------------------------------ negative reviews
    Case(
        "six negative reviews in an hour when there usually are none",
        "MotwatchNegativeReviewSpike",
        [moments("negative_review", "customer_success", "0x1500 1 2 3 4 5 6", moment="UMOT")],
        "1506m",
        [Firing("6", {"owner": "customer_success"})],
    ),
    Case(
        "six an hour is no spike when six an hour is usual",
        "MotwatchNegativeReviewSpike",
        [moments("negative_review", "customer_success", "0+0.1x1506", moment="UMOT")],
        "1506m",
        [],
    ),
    Case(
        "four negative reviews are too few to call a spike",
        "MotwatchNegativeReviewSpike",
        [moments("negative_review", "customer_success", "0x1500 1 2 3 4", moment="UMOT")],
        "1504m",
        [],
    ),
    # ------------------------------------------------------------ abandoned checkouts
    Case(
        "abandonment jumps from 10 % to 50 % of checkouts",
        "MotwatchAbandonedCheckoutsAboveBaseline",
        [
            series("motwatch_events_accepted_total", "0+1x1600", channel="checkout", type="checkout_started"),
            moments("abandoned_checkout", "ecommerce", "0+0.1x1500 150+0.5x100"),
        ],
        "1600m",
        [Firing("4.194", {"owner": "ecommerce"})],
    ),
    Case(
        "a steady 10 % is the baseline, not an alert",
        "MotwatchAbandonedCheckoutsAboveBaseline",
        [
            series("motwatch_events_accepted_total", "0+1x1600", channel="checkout", type="checkout_started"),
            moments("abandoned_checkout", "ecommerce", "0+0.1x1600"),
        ],
        "1600m",
        [],
    ),
    Case(
        "the same jump with ten checkouts an hour is too little to judge",
        "MotwatchAbandonedCheckoutsAboveBaseline",
        [
            series(
                "motwatch_events_accepted_total", "0+0.16x1600", channel="checkout", type="checkout_started"
            ),
            moments("abandoned_checkout", "ecommerce", "0+0.016x1500 24+0.08x100"),
        ],
        "1600m",
        [],
    ),
    # ------------------------------------------------------------ rejected messages
    Case(
        "one message in ten rejected for ten minutes",
        "MotwatchRejectedEventRatioHigh",
        [
            series("motwatch_events_received_total", "0+10x30"),
            series("motwatch_events_rejected_total", "0+1x30", reason="invalid_json"),
        ],
        "20m",
        [Firing("10%")],
    ),
    Case(
        "one in ten, but not yet for ten minutes",
        "MotwatchRejectedEventRatioHigh",
        [
            series("motwatch_events_received_total", "0+10x30"),
            series("motwatch_events_rejected_total", "0+1x30", reason="invalid_json"),
        ],
        "8m",
        [],
    ),
    Case(
        "one in a hundred rejected is tolerated",
        "MotwatchRejectedEventRatioHigh",
        [
            series("motwatch_events_received_total", "0+100x30"),
            series("motwatch_events_rejected_total", "0+1x30", reason="bad_timestamp"),
        ],
        "20m",
        [],
    ),
    Case(
        "half of a trickle rejected is too little traffic to page for",
        "MotwatchRejectedEventRatioHigh",
        [
            series("motwatch_events_received_total", "0+2x30"),
            series("motwatch_events_rejected_total", "0+1x30", reason="invalid_json"),
        ],
        "20m",
        [],
    ),
    # ------------------------------------------------------------ processing lag
    Case(
        "most touchpoints processed 5 to 15 minutes after they happened",
        "MotwatchProcessingLagHigh",
        histogram(
            "motwatch_event_lag_seconds",
            {"60": "0x30", "300": "0x30", "900": "0+10x30", "+Inf": "0+10x30"},
        ),
        "20m",
        [Firing("14m 30s")],
    ),
    Case(
        "touchpoints processed within a minute",
        "MotwatchProcessingLagHigh",
        histogram(
            "motwatch_event_lag_seconds",
            {"60": "0+10x30", "300": "0+10x30", "900": "0+10x30", "+Inf": "0+10x30"},
        ),
        "20m",
        [],
    ),
    # ------------------------------------------------------------ consumer lag
    Case(
        "20,000 messages behind for ten minutes",
        "MotwatchConsumerLagHigh",
        [
            series("motwatch_consumer_lag_messages", "12000x20", topic="motwatch.touchpoints", partition="0"),
            series("motwatch_consumer_lag_messages", "8000x20", topic="motwatch.touchpoints", partition="1"),
            series(
                "motwatch_consumer_lag_messages",
                "5x20",
                topic="motwatch.touchpoints-by-journey",
                partition="0",
            ),
        ],
        "15m",
        [Firing("20k", {"topic": "motwatch.touchpoints"})],
    ),
    Case(
        "9,000 messages behind over two partitions is within bounds",
        "MotwatchConsumerLagHigh",
        [
            series("motwatch_consumer_lag_messages", "6000x20", topic="motwatch.touchpoints", partition="0"),
            series("motwatch_consumer_lag_messages", "3000x20", topic="motwatch.touchpoints", partition="1"),
        ],
        "15m",
        [],
    ),
    Case(
        "a lag that clears within ten minutes",
        "MotwatchConsumerLagHigh",
        [
            series(
                "motwatch_consumer_lag_messages",
                "20000x5 100x15",
                topic="motwatch.touchpoints",
                partition="0",
            )
        ],
        "12m",
        [],
    ),
    # ------------------------------------------------------------ watermark
    Case(
        "a watermark stuck at the epoch while the clock runs",
        "MotwatchWatermarkStalled",
        [series("motwatch_watermark_seconds", "0x60", partition="3")],
        "40m",
        [Firing("40m 0s", {"partition": "3"})],
    ),
    Case(
        "a watermark that follows the clock, two minutes behind",
        "MotwatchWatermarkStalled",
        [series("motwatch_watermark_seconds", "-120+60x60", partition="3")],
        "40m",
        [],
    ),
    # ------------------------------------------------------------ workers
    Case(
        "a worker whose scrapes fail for two minutes",
        "MotwatchWorkerDown",
        [series("up", "1 1 0 0 0 0")],
        "5m",
        [Firing("0", {"instance": "w1:6066", "job": "motwatch"})],
    ),
    Case(
        "a worker that missed one scrape",
        "MotwatchWorkerDown",
        [series("up", "1 1 0 1 1 1")],
        "5m",
        [],
    ),
    Case(
        "no worker target at all",
        "MotwatchWorkerMissing",
        [series("motwatch_active_journeys", "0x10")],
        "10m",
        [Firing("0")],
    ),
    Case(
        "a worker target, even a failing one, is not missing",
        "MotwatchWorkerMissing",
        [series("up", "0x10")],
        "10m",
        [],
    ),
    Case(
        "a worker that stopped reading, ticks included",
        "MotwatchWorkerStalled",
        [series("faust_messages_received_total", "0+60x5 300x20")],
        "20m",
        [Firing("0", {"instance": "w1:6066"})],
    ),
    Case(
        "a worker reading its ticks",
        "MotwatchWorkerStalled",
        [series("faust_messages_received_total", "0+60x25")],
        "20m",
        [],
    ),
    # ------------------------------------------------------------ Kafka and writes
    Case(
        "a worker that has reached no broker for two minutes",
        "MotwatchKafkaUnreachable",
        [series("motwatch_kafka_reachable", "1 1 0 0 0 0")],
        "5m",
        [Firing("0", {"instance": "w1:6066", "job": "motwatch"})],
    ),
    Case(
        "an outage of a minute is over before the alert",
        "MotwatchKafkaUnreachable",
        [series("motwatch_kafka_reachable", "1 1 0 1 1 1")],
        "5m",
        [],
    ),
    Case(
        "a worker that has not probed yet (NaN) is no outage",
        "MotwatchKafkaUnreachable",
        [series("motwatch_kafka_reachable", "NaN NaN NaN NaN NaN NaN")],
        "5m",
        [],
    ),
    Case(
        "moments failing to be written, tried again every 5 s, for ten minutes",
        "MotwatchWritesFailing",
        [
            series("motwatch_write_failures_total", "0+12x30", stream="moments"),
            series("motwatch_write_failures_total", "3x30", stream="deadletter"),
        ],
        "20m",
        [Firing("60", {"instance": "w1:6066", "stream": "moments"})],
    ),
    Case(
        "failing writes, but not yet for ten minutes",
        "MotwatchWritesFailing",
        [series("motwatch_write_failures_total", "0+12x30", stream="moments")],
        "8m",
        [],
    ),
    Case(
        "a few failed tries, then written",
        "MotwatchWritesFailing",
        [series("motwatch_write_failures_total", "0 3 6 6x30", stream="journeys_changelog")],
        "15m",
        [],
    ),
]

BROKEN_LINKS_5M = (
    'motwatch:moments_failed:increase5m{kind="broken_link", moment="ZMOT", owner="web", channel="web"}'
)

# Recording rules whose meaning the alerts rely on.
EXPR_CASES: list[dict[str, Any]] = [
    {
        "name": "a failing-moment series born within the window counts in full",
        "interval": "1m",
        "input_series": [moments("broken_link", "web", "_x10 2x10", moment="ZMOT")],
        "promql_expr_test": [
            {
                "expr": "motwatch:moments_failed:increase5m",
                "eval_time": "11m",
                "exp_samples": [
                    {
                        "labels": BROKEN_LINKS_5M,
                        "value": 2,
                    }
                ],
            },
            {
                "expr": "motwatch:moments_failed:increase5m",
                "eval_time": "20m",
                "exp_samples": [
                    {
                        "labels": BROKEN_LINKS_5M,
                        "value": 0,
                    }
                ],
            },
        ],
    },
    {
        "name": "a counter reset (a restarted worker) is not a negative count",
        "interval": "1m",
        "input_series": [moments("checkout_error", "ecommerce", "0x10 4 5 1 2")],
        "promql_expr_test": [
            {
                "expr": "motwatch:moments_failed:increase5m",
                "eval_time": "14m",
                "exp_samples": [
                    {
                        "labels": 'motwatch:moments_failed:increase5m{kind="checkout_error", moment="FMOT", '
                        'owner="ecommerce", channel="checkout"}',
                        "value": 7,
                    }
                ],
            }
        ],
    },
    {
        "name": "no rejects is a ratio of 0, not no data",
        "interval": "1m",
        "input_series": [series("motwatch_events_received_total", "0+10x10")],
        "promql_expr_test": [
            {
                "expr": "motwatch:events_rejected:ratio5m",
                "eval_time": "10m",
                "exp_samples": [{"labels": "motwatch:events_rejected:ratio5m", "value": 0}],
            }
        ],
    },
    {
        "name": "abandonment ratio per owner",
        "interval": "1m",
        "input_series": [
            series("motwatch_events_accepted_total", "0+1x120", channel="checkout", type="checkout_started"),
            moments("abandoned_checkout", "ecommerce", "0+0.25x120"),
        ],
        "promql_expr_test": [
            {
                "expr": "motwatch:checkout_abandonment:ratio1h",
                "eval_time": "120m",
                "exp_samples": [
                    {"labels": 'motwatch:checkout_abandonment:ratio1h{owner="ecommerce"}', "value": 0.25}
                ],
            },
            {
                "expr": "motwatch:checkouts_started:increase1h",
                "eval_time": "120m",
                "exp_samples": [{"labels": "motwatch:checkouts_started:increase1h", "value": 60}],
            },
        ],
    },
]


def document() -> dict[str, Any]:
    tests: list[dict[str, Any]] = []
    for case in CASES:
        tests.append(
            {
                "name": f"{case.alert}: {case.name}",
                "interval": case.interval,
                "input_series": case.input_series,
                "alert_rule_test": [
                    {
                        "eval_time": case.eval_time,
                        "alertname": case.alert,
                        "exp_alerts": [_expected(case.alert, f) for f in case.firing],
                    }
                ],
            }
        )
    tests.extend(EXPR_CASES)
    return {"rule_files": [RULES], "evaluation_interval": "1m", "tests": tests}


def render() -> str:
    header = (
        "# Generated by `python -m tests.monitoring.promtool.cases` from cases.py beside it: do not edit.\n"
        "# Run: promtool test rules tests/monitoring/promtool/motwatch.test.yml\n"
    )
    return header + yaml.safe_dump(
        document(), sort_keys=False, allow_unicode=True, width=10_000, default_flow_style=False
    )


def coverage() -> dict[str, tuple[int, int]]:
    """For every alert: (cases where it fires, cases where it must not)."""
    out = {alert.name: (0, 0) for alert in ALERTS}
    for case in CASES:
        fires, quiet = out[case.alert]
        out[case.alert] = (fires + 1, quiet) if case.firing else (fires, quiet + 1)
    return out


if __name__ == "__main__":
    TEST_FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {TEST_FILE}")
