"""The one source of motwatch's dashboards, recording rules and alerts.

Everything Grafana and Prometheus show about a worker is defined here, from the
series that ``streams/metrics.py`` declares (plus Faust's own ``faust_…``
series and Prometheus's ``up`` and ``ALERTS``). ``python -m motwatch.monitoring``
writes the dashboards, the Prometheus rules, Grafana's alert provisioning and
the table of panels and alerts from it; a test checks the committed files are
what it writes.

Owners: alerts about failing moments keep the ``owner`` label of the moments
(the team the configuration makes owner of the failing touchpoint's channel),
so they route to that team; alerts about the pipeline itself go to
``PIPELINE_OWNER``, the team that runs motwatch.
"""

from __future__ import annotations

from itertools import pairwise

from motwatch.monitoring.model import (
    Alert,
    Dashboard,
    Panel,
    PanelRef,
    Recording,
    Row,
    Target,
    Variable,
)
from motwatch.monitoring.promql import RANGE, RATE_INTERVAL, count_in, quantile, ratio_or_zero

PIPELINE_OWNER = "platform"
# The Prometheus scrape job of the workers (config/prometheus.yml).
JOB = "motwatch"
DATASOURCE_UID = "prometheus"

MOMENTS = ("<ZMOT", "ZMOT", "FMOT", "SMOT", "UMOT")
# The channels the touchpoint-health dashboard shows: its variable, all selected by default.
CHANNEL = Variable(
    "channel",
    "Channel",
    "motwatch_events_accepted_total",
    "The touchpoints' channels (web, checkout, chat, …): the channels with touchpoints in the time range.",
)
IN_CHANNEL = {"channel": "$channel"}
# The worker reports the lag of the topics its agents read (touchpoints and the re-keyed topic).
CONSUMER_LAG = "motwatch_consumer_lag_messages"


def selector(name: str, **labels: str) -> str:
    """``name{label="value", …}``; alternatives (``a|b``) and Grafana variables match as a regex."""
    matchers = ", ".join(
        f'{label}{"=~" if "|" in value or "$" in value else "="}"{value}"' for label, value in labels.items()
    )
    return f"{name}{{{matchers}}}" if matchers else name


MOMENTS_METRIC = "motwatch_moments_total"
FAILED = selector(MOMENTS_METRIC, status="failed")


def failed(kind: str, **labels: str) -> str:
    return selector(MOMENTS_METRIC, status="failed", kind=kind, **labels)


def recovered(kind: str) -> str:
    return selector(MOMENTS_METRIC, status="recovered", kind=kind)


def accepted(type_: str = "", **labels: str) -> str:
    return selector("motwatch_events_accepted_total", **({"type": type_} if type_ else {}), **labels)


def recorded_failures(window: str, kind: str, **labels: str) -> str:
    """The recording rule of one kind's failing moments in ``window`` (``1h``, or ``1h:avg1d``)."""
    return selector(f"motwatch:moments_failed:increase{window}", kind=kind, **labels)


def reached(moment: str) -> str:
    return selector("motwatch_journeys_reached_total", moment=moment)


def per_hour(selector: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({selector}[{RATE_INTERVAL}])) * 3600"


def per_second(selector: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({selector}[{RATE_INTERVAL}]))"


# ---------------------------------------------------------------- recording rules

RECORDING_RULES: tuple[Recording, ...] = (
    *(
        Recording(
            f"motwatch:moments_failed:increase{window}",
            f"sum by (kind, moment, owner, channel) ({count_in(FAILED, window)})",
            f"Failing moments within the last {window}, by kind, moment of truth, owner and channel "
            "(a series born within the window counts in full).",
        )
        for window in ("5m", "15m", "1h")
    ),
    Recording(
        "motwatch:moments_failed:increase1h:avg1d",
        "avg_over_time(motwatch:moments_failed:increase1h[1d])",
        "The usual hourly count of failing moments: the 1-hour count averaged over the past day.",
    ),
    Recording(
        "motwatch:checkouts_started:increase1h",
        f"sum({count_in(accepted('checkout_started'), '1h')})",
        "Checkouts started within the last hour.",
    ),
    Recording(
        "motwatch:checkout_abandonment:ratio1h",
        'sum by (owner) (motwatch:moments_failed:increase1h{kind="abandoned_checkout"})'
        " / on() group_left() (motwatch:checkouts_started:increase1h > 0)",
        "Abandoned checkouts per checkout started, over the last hour (no sample while none started).",
    ),
    Recording(
        "motwatch:checkout_abandonment:ratio1h:avg1d",
        "avg_over_time(motwatch:checkout_abandonment:ratio1h[1d])",
        "The baseline abandoned-checkout rate: the hourly rate averaged over the past day.",
    ),
    Recording(
        "motwatch:events_received:rate5m",
        "sum(rate(motwatch_events_received_total[5m]))",
        "Messages read from the touchpoints topic per second, all workers.",
    ),
    Recording(
        "motwatch:events_rejected:ratio5m",
        ratio_or_zero("sum(rate(motwatch_events_rejected_total[5m]))", "motwatch:events_received:rate5m"),
        "Share of messages sent to the dead-letter topic over the last 5 minutes (0 when none were).",
    ),
    Recording(
        "motwatch:event_lag_seconds:p95_5m",
        quantile(0.95, "motwatch_event_lag_seconds", "5m"),
        "95th percentile of processing lag (wall clock minus occurred_at) over the last 5 minutes.",
    ),
    Recording(
        "motwatch:watermark_delay_seconds",
        "time() - max by (partition) (motwatch_watermark_seconds)",
        "How far each partition's event-time watermark is behind the wall clock (the freshest worker wins).",
    ),
)


# ---------------------------------------------------------------- dashboards

OVERVIEW = Dashboard(
    uid="motwatch-overview",
    title="motwatch: moments of truth",
    file="overview.json",
    description="Where customer journeys go wrong: the moments-of-truth funnel, failing moments by kind "
    "and owner, abandoned checkouts and their recovery, and the alerts firing now.",
    rows=(
        Row(
            "Moments of truth",
            (
                Panel(
                    "Moments of truth funnel",
                    "bargauge",
                    tuple(
                        Target(f"sum({count_in(reached(moment), RANGE)})", moment, instant=True)
                        for moment in MOMENTS
                    ),
                    shows="Journeys that reached each moment of truth for the first time within the time "
                    "range, in journey order: <ZMOT (ads, email, social), ZMOT (search, content, reviews), "
                    "FMOT (product pages, checkout, chat before buying), SMOT (after the first order), "
                    "UMOT (reviews shared).",
                    look_first="A stage much smaller than the one before it: open Touchpoint health for that "
                    "stage's channels (FMOT: the broken links and bounces, and Checkout rows; SMOT: the Chat "
                    "and Feedback rows).",
                ),
                Panel(
                    "Conversion between moments",
                    "stat",
                    tuple(
                        Target(
                            f"sum({count_in(reached(later), RANGE)})"
                            f" / (sum({count_in(reached(earlier), RANGE)}) > 0)",
                            f"{earlier} → {later}",
                            instant=True,
                        )
                        for earlier, later in pairwise(MOMENTS)
                    ),
                    unit="percentunit",
                    decimals=1,
                    shows="Journeys reaching a moment of truth per journey reaching the one before it, in "
                    "the time range. Journeys can enter late (a direct link to a product page starts at "
                    "FMOT), so a step can exceed 100 %.",
                    look_first="The step that dropped compared with last week's range: ZMOT → FMOT points at "
                    "product pages (broken links, bounces), FMOT → SMOT at checkout (errors, abandonment).",
                ),
            ),
        ),
        Row(
            "Failing moments",
            (
                Panel(
                    "Failing moments per hour, by kind",
                    "timeseries",
                    (Target(per_hour(FAILED, "kind"), "{{kind}}", exemplars=True),),
                    shows="Failing moments reported per hour, one line per failure kind.",
                    look_first="The kind whose line jumped; its panel in Touchpoint health, and its alert "
                    "if one fires.",
                    stacked=True,
                ),
                Panel(
                    "Failing moments per hour, by owner",
                    "timeseries",
                    (Target(per_hour(FAILED, "owner"), "{{owner}}", exemplars=True),),
                    shows="The same failures by the team that owns the failing touchpoint's channel.",
                    look_first="The team whose line jumped: tell them, and check their recent releases or "
                    "campaigns.",
                    stacked=True,
                ),
                Panel(
                    "Top failing kinds",
                    "bargauge",
                    (
                        Target(
                            f"topk(5, sum by (kind) ({count_in(FAILED, RANGE)}))", "{{kind}}", instant=True
                        ),
                    ),
                    shows="The five failure kinds with the most failing moments in the time range.",
                    look_first="Whether the top kind is the usual one; a newcomer at the top is the lead.",
                ),
                Panel(
                    "Failing moments by severity",
                    "stat",
                    (
                        Target(
                            f"sum by (severity) ({count_in(FAILED, RANGE)})",
                            "{{severity}}",
                            instant=True,
                        ),
                    ),
                    shows="Failing moments in the time range by configured severity "
                    "(critical, high, medium, low).",
                    look_first="Critical ones (checkout errors by default): Touchpoint health → Checkout.",
                ),
                Panel(
                    "Detection latency p50 / p95 (last 15 min)",
                    "timeseries",
                    tuple(
                        Target(
                            quantile(q, "motwatch_detection_latency_seconds", "15m"),
                            f"p{round(q * 100)}",
                            exemplars=True,
                        )
                        for q in (0.5, 0.95)
                    ),
                    unit="s",
                    width=24,
                    shows="Wall-clock time from a moment's occurred_at (when the failure became certain; for "
                    "a timeout, its deadline) to the worker writing the moment event, for moments written "
                    "in the last 15 minutes: how late failures reach the moments topic and the alerts. "
                    "Timeouts also wait for the watermark (the allowed lateness).",
                    look_first="A high exemplar (one late moment): the times of its evidence in the moment "
                    "event; then Pipeline → Event lag (producers or workers behind) and Watermark delay "
                    "(timeouts held back).",
                ),
            ),
        ),
        Row(
            "Abandoned checkouts",
            (
                Panel(
                    "Abandoned checkouts recovered",
                    "stat",
                    (
                        Target(
                            ratio_or_zero(
                                f"sum({count_in(recovered('abandoned_checkout'), RANGE)})",
                                f"sum({count_in(failed('abandoned_checkout'), RANGE)})",
                            ),
                            "recovered",
                            instant=True,
                        ),
                    ),
                    unit="percentunit",
                    decimals=1,
                    width=6,
                    shows="Share of checkouts reported abandoned in the time range that later became an "
                    "order (a recovery: the customer came back after the window).",
                    look_first="A falling share while abandonment rises: reminder e-mails or the saved cart "
                    "may be broken (marketing, ecommerce).",
                ),
                Panel(
                    "Abandoned and recovered checkouts per hour",
                    "timeseries",
                    (
                        Target(per_hour(failed("abandoned_checkout")), "abandoned", exemplars=True),
                        Target(per_hour(recovered("abandoned_checkout")), "recovered", exemplars=True),
                    ),
                    width=18,
                    shows="Checkouts reported abandoned (started, no order within the window) and "
                    "abandoned checkouts recovered by a later order, per hour.",
                    look_first="Abandonment rising without checkout errors: Touchpoint health → Checkout "
                    "duration (slow payment pages) and the abandoned-rate-vs-baseline panel.",
                ),
            ),
        ),
        Row(
            "Alerts",
            (
                Panel(
                    "Firing alerts",
                    "stat",
                    (
                        Target(
                            'sum by (alertname, owner, severity) (ALERTS{alertstate="firing", '
                            'alertname=~"Motwatch.+"})',
                            "{{alertname}} ({{owner}}, {{severity}})",
                            instant=True,
                        ),
                    ),
                    width=24,
                    height=5,
                    shows="motwatch alerts firing now in Prometheus, with their owner team and severity "
                    "(empty when all is well).",
                    look_first="The alert's own description and 'look first' (grafana/PANELS_AND_ALERTS.md).",
                ),
            ),
        ),
    ),
)

TOUCHPOINTS = Dashboard(
    uid="motwatch-touchpoints",
    title="motwatch: touchpoint health",
    file="touchpoint-health.json",
    description="Health of each channel's touchpoints, per channel (the Channel selector at the top): "
    "traffic and failing moments, broken links and bounces, checkout errors and abandonment, chat "
    "response times, reviews and surveys.",
    variables=(CHANNEL,),
    rows=(
        Row(
            "Traffic and failures by channel",
            (
                Panel(
                    "Touchpoints per second, by channel",
                    "timeseries",
                    (Target(per_second(accepted(**IN_CHANNEL), "channel"), "{{channel}}"),),
                    unit="cps",
                    stacked=True,
                    shows="Valid touchpoint events accepted per second, by channel (web, checkout, chat, …).",
                    look_first="A channel that dropped to zero: its producer stopped sending (or sends only "
                    "rejects: Pipeline → Rejected by reason).",
                ),
                Panel(
                    "Failing moments per hour, by channel",
                    "timeseries",
                    (
                        Target(
                            per_hour(selector(MOMENTS_METRIC, status="failed", **IN_CHANNEL), "channel"),
                            "{{channel}}",
                            exemplars=True,
                        ),
                    ),
                    stacked=True,
                    shows="Failing moments per hour, by the channel of the touchpoint that failed (for a "
                    "timeout, the touchpoint that started it: the checkout, the chat).",
                    look_first="The channel whose line jumped: its panels below (web: broken links and "
                    "bounces; checkout; chat and phone; review and survey), and its owner team.",
                ),
            ),
        ),
        Row(
            "Broken links and bounces",
            (
                Panel(
                    "Broken links per hour, by channel and moment of truth",
                    "timeseries",
                    (
                        Target(
                            per_hour(failed("broken_link", **IN_CHANNEL), "channel, moment, owner"),
                            "{{channel}} {{moment}} ({{owner}})",
                            exemplars=True,
                        ),
                    ),
                    width=8,
                    shows="Page views and link clicks (web, e-mail, chat) answered with HTTP 4xx/5xx, per "
                    "hour: ZMOT before the first product view, FMOT after it, SMOT after the first order.",
                    look_first="The moment events on the moments topic (kind broken_link): details.url and "
                    "http_status name the page; then the site's last deploy, or the campaign for e-mail.",
                ),
                Panel(
                    "Broken links per 1,000 page views and clicks, by channel",
                    "timeseries",
                    (
                        Target(
                            "1000 * "
                            + ratio_or_zero(
                                per_second(failed("broken_link", **IN_CHANNEL), "channel"),
                                per_second(accepted("page_view|link_click", **IN_CHANNEL), "channel"),
                                grouped=True,
                            ),
                            "{{channel}}",
                        ),
                    ),
                    width=8,
                    shows="Broken links relative to the channel's page views and link clicks, so a busy hour "
                    "does not look like an outage.",
                    look_first="A step up: a deploy or a removed page; a slow rise: links rotting in old "
                    "campaigns (marketing).",
                ),
                Panel(
                    "Bounce rate (first-impression bounces per page exit), by channel",
                    "timeseries",
                    (
                        Target(
                            ratio_or_zero(
                                per_second(failed("first_impression_bounce", **IN_CHANNEL), "channel"),
                                per_second(accepted("page_exit", **IN_CHANNEL), "channel"),
                                grouped=True,
                            ),
                            "{{channel}}",
                        ),
                    ),
                    unit="percentunit",
                    width=8,
                    shows="Product pages left within the minimum dwell time on the first visit, per page "
                    "exit.",
                    look_first="Page load times of product pages and what changed on them (images, prices, "
                    "stock); the bounce moments' details name the product.",
                ),
            ),
        ),
        Row(
            "Checkout",
            (
                Panel(
                    "Checkout errors per hour, by channel",
                    "timeseries",
                    (
                        Target(
                            per_hour(failed("checkout_error", **IN_CHANNEL), "channel, owner"),
                            "{{channel}} ({{owner}})",
                            exemplars=True,
                        ),
                    ),
                    width=8,
                    shows="Failed payments and checkout steps answered with HTTP 5xx, per hour.",
                    look_first="The checkout_error moments' details (step, http_status, reason): one step "
                    "or payment reason dominating points at that service or the payment provider.",
                ),
                Panel(
                    "Checkout errors per checkout started, by channel",
                    "timeseries",
                    (
                        Target(
                            ratio_or_zero(
                                per_second(failed("checkout_error", **IN_CHANNEL), "channel"),
                                per_second(accepted("checkout_started", **IN_CHANNEL), "channel"),
                                grouped=True,
                            ),
                            "{{channel}}",
                        ),
                    ),
                    unit="percentunit",
                    width=8,
                    shows="Checkout errors relative to checkouts started.",
                    look_first="Same as checkout errors; a high share with few checkouts can be one "
                    "customer retrying.",
                ),
                Panel(
                    "Abandoned checkout rate vs baseline",
                    "timeseries",
                    (
                        Target("motwatch:checkout_abandonment:ratio1h", "last hour ({{owner}})"),
                        Target(
                            "motwatch:checkout_abandonment:ratio1h:avg1d", "usual: 1-day average ({{owner}})"
                        ),
                    ),
                    unit="percentunit",
                    width=8,
                    shows="Abandoned checkouts per checkout started over the last hour, beside its average "
                    "over the past day (Prometheus recording rules; all channels).",
                    look_first="Checkout errors and checkout duration at the same time; then prices, "
                    "shipping costs and payment options changed today.",
                ),
                Panel(
                    "Checkout duration p50 / p95 (last hour)",
                    "timeseries",
                    (
                        Target(quantile(0.5, "motwatch_checkout_duration_seconds", "1h"), "p50"),
                        Target(quantile(0.95, "motwatch_checkout_duration_seconds", "1h"), "p95"),
                    ),
                    unit="s",
                    width=24,
                    shows="Event time from checkout_started to order_completed, for checkouts that "
                    "completed in the last hour (all channels).",
                    look_first="p95 rising: a slow step (shipping, payment, 3-D Secure); compare with "
                    "checkout errors.",
                ),
            ),
        ),
        Row(
            "Chat and calls",
            (
                Panel(
                    "Chat first-response time p50 / p95 (last 15 min)",
                    "timeseries",
                    (
                        Target(quantile(0.5, "motwatch_chat_first_response_seconds", "15m"), "p50"),
                        Target(quantile(0.95, "motwatch_chat_first_response_seconds", "15m"), "p95"),
                    ),
                    unit="s",
                    thresholds=((60, "red"),),
                    shows="Event time from chat_started to the first agent or bot message, for chats "
                    "answered in the last 15 minutes (the SLA is 60 s by default; every chat, whatever "
                    "the Channel selector).",
                    look_first="Support staffing right now and the chat queue; a bot that stopped "
                    "answering shows as p50 jumping.",
                ),
                Panel(
                    "Unanswered chats and calls per hour, by channel",
                    "timeseries",
                    (
                        Target(
                            per_hour(
                                failed("chat_unanswered|call_unanswered", **IN_CHANNEL),
                                "kind, channel, owner",
                            ),
                            "{{kind}} on {{channel}} ({{owner}})",
                            exemplars=True,
                        ),
                    ),
                    shows="Chats with no agent or bot reply within the SLA (or ended before one) and calls "
                    "not answered or answered after the SLA, per hour.",
                    look_first="Support staffing and the chat/phone platform's status; the moments' "
                    "details give the wait.",
                ),
            ),
        ),
        Row(
            "Feedback and after the order",
            (
                Panel(
                    "Negative reviews in the last hour vs usual, by channel",
                    "timeseries",
                    (
                        Target(
                            "sum by (channel, owner) "
                            f"({recorded_failures('1h', 'negative_review', **IN_CHANNEL)})",
                            "last hour: {{channel}} ({{owner}})",
                        ),
                        Target(
                            "sum by (channel, owner) "
                            f"({recorded_failures('1h:avg1d', 'negative_review', **IN_CHANNEL)})",
                            "usual: {{channel}} ({{owner}}), 1-day average",
                        ),
                    ),
                    shows="Reviews rated 2 or lower within the last hour, beside the hourly average over "
                    "the past day.",
                    look_first="The reviews' text (moment details and the review platform): one product, "
                    "one delivery problem, or a campaign gone wrong.",
                ),
                Panel(
                    "Low satisfaction and stalled onboarding per hour, by channel",
                    "timeseries",
                    (
                        Target(
                            per_hour(
                                failed("low_satisfaction|onboarding_stalled", **IN_CHANNEL),
                                "kind, channel, owner",
                            ),
                            "{{kind}} on {{channel}} ({{owner}})",
                            exemplars=True,
                        ),
                    ),
                    shows="Survey answers below the thresholds (CSAT, NPS, CES) and onboardings not "
                    "completed within their window, per hour.",
                    look_first="The survey texts in the moments' details; for onboarding, the step where "
                    "customers stop.",
                ),
            ),
        ),
    ),
)

PIPELINE = Dashboard(
    uid="motwatch-pipeline",
    title="motwatch: pipeline",
    file="pipeline.json",
    description="The motwatch workers themselves: throughput, rejected messages, lag, event-time "
    "watermarks and worker health.",
    rows=(
        Row(
            "Throughput",
            (
                Panel(
                    "Messages per second: in, accepted, rejected",
                    "timeseries",
                    (
                        Target(per_second("motwatch_events_received_total"), "in"),
                        Target(per_second("motwatch_events_accepted_total"), "accepted"),
                        Target(f"{per_second('motwatch_events_rejected_total')} or vector(0)", "rejected"),
                    ),
                    unit="cps",
                    shows="Messages read from the touchpoints topic, those accepted (valid) and those sent "
                    "to the dead-letter topic, per second, all workers.",
                    look_first="'in' at zero: producers or the broker; 'in' fine but 'accepted' low: "
                    "Rejected by reason.",
                ),
                Panel(
                    "Moment events written per second, by status",
                    "timeseries",
                    (Target(per_second("motwatch_moments_total", "status"), "{{status}}", exemplars=True),),
                    unit="cps",
                    shows="Moment events (failed and recovered) written to the moments topic per second.",
                    look_first="A sudden flood of one kind: the overview's failing moments by kind.",
                ),
                Panel(
                    "Rejected messages per second, by reason",
                    "timeseries",
                    (Target(per_second("motwatch_events_rejected_total", "reason"), "{{reason}}"),),
                    unit="cps",
                    width=8,
                    shows="Messages sent to the dead-letter topic, by reason code (invalid_json, "
                    "missing_field, unknown_type, bad_timestamp, bad_property, …; future_timestamp: "
                    "occurred_at further ahead of the message's arrival than max_future_skew_s).",
                    look_first="The dead-letter topic's records of that reason: 'error' names the field and "
                    "'raw' shows the message; then the producer that changed (future_timestamp: the "
                    "device or service whose clock runs ahead).",
                ),
                Panel(
                    "Rejected ratio",
                    "timeseries",
                    (
                        Target(
                            ratio_or_zero(
                                per_second("motwatch_events_rejected_total"),
                                per_second("motwatch_events_received_total"),
                            ),
                            "rejected / in",
                        ),
                    ),
                    unit="percentunit",
                    width=8,
                    thresholds=((0.05, "red"),),
                    shows="Share of incoming messages rejected (the alert fires above 5 % for 10 minutes).",
                    look_first="Rejected by reason, then the dead-letter topic.",
                ),
                Panel(
                    "Duplicates and late events per second, by channel",
                    "timeseries",
                    (
                        Target(
                            per_second("motwatch_events_duplicate_total", "channel"), "duplicate {{channel}}"
                        ),
                        Target(per_second("motwatch_events_late_total", "channel"), "late {{channel}}"),
                    ),
                    unit="cps",
                    width=8,
                    shows="Touchpoints dropped as duplicates (event_id seen before in the journey) and "
                    "touchpoints older than the watermark when they arrived (still applied).",
                    look_first="Duplicates: a producer retrying or replaying; late: a producer buffering, or "
                    "allowed_lateness_s too small for it.",
                ),
            ),
        ),
        Row(
            "Lag and event time",
            (
                Panel(
                    "Consumer lag (messages), by topic",
                    "timeseries",
                    (Target(f"sum by (topic) ({CONSUMER_LAG})", "{{topic}}"),),
                    width=8,
                    shows="Messages not yet read by the workers (end offset minus position) on the topics "
                    "the agents read (touchpoints and the re-keyed topic), refreshed every 15 s.",
                    look_first="Growing: throughput vs. input rate, processing time per record, and "
                    "rebalances; add a worker if partitions allow.",
                ),
                Panel(
                    "Uncommitted messages, by topic",
                    "timeseries",
                    (
                        Target(
                            "sum by (topic) (faust_topic_partition_end_offset"
                            " - faust_topic_partition_offset_commited)",
                            "{{topic}}",
                        ),
                    ),
                    width=8,
                    shows="End offset minus Faust's committed offset: what a crashed worker would read "
                    "again (at-least-once).",
                    look_first="Rising while consumer lag is flat: commits are failing or stuck; the "
                    "worker log.",
                ),
                Panel(
                    "Event lag p50 / p95 / p99 (now − occurred_at)",
                    "timeseries",
                    tuple(
                        Target(quantile(q, "motwatch_event_lag_seconds", RATE_INTERVAL), f"p{round(q * 100)}")
                        for q in (0.5, 0.95, 0.99)
                    ),
                    unit="s",
                    width=8,
                    shows="Wall-clock time from a touchpoint's occurred_at to its processing: producer "
                    "delay plus Kafka plus motwatch.",
                    look_first="Consumer lag: if it is low, the delay is upstream (producers batching or a "
                    "replay of old data).",
                ),
                Panel(
                    "Watermark delay, by partition",
                    "timeseries",
                    (
                        Target(
                            "time() - max by (partition) (motwatch_watermark_seconds)",
                            "partition {{partition}}",
                        ),
                    ),
                    unit="s",
                    shows="How far each partition's event-time watermark is behind the wall clock; "
                    "timeouts (abandoned checkout, chat SLA) fire only once it passes them. Normally about "
                    "the allowed lateness.",
                    look_first="One partition behind: a stuck or slow source partition; all behind: ticks "
                    "stopped (leader timer) or a replay of old data is running.",
                ),
                Panel(
                    "Active journeys and open timeouts",
                    "timeseries",
                    (
                        Target("sum(motwatch_active_journeys)", "active journeys"),
                        Target("sum(motwatch_open_timeouts)", "open timeouts"),
                    ),
                    shows="Journeys held in state and deadlines (checkouts, chats, onboardings) waiting for "
                    "event time, all workers.",
                    look_first="Open timeouts only growing: the watermark is not moving (watermark delay).",
                ),
            ),
        ),
        Row(
            "Workers",
            (
                Panel(
                    "Workers up",
                    "stat",
                    (
                        Target(f'sum(up{{job="{JOB}"}})', "up", instant=True),
                        Target(f'count(up{{job="{JOB}"}})', "scraped", instant=True),
                    ),
                    width=6,
                    shows="Workers whose /metrics Prometheus scraped successfully, of those it scrapes.",
                    look_first="Prometheus → Status → Targets for the scrape error; then the worker's log.",
                ),
                Panel(
                    "Processing time per record p99, by agent",
                    "timeseries",
                    (
                        Target(
                            quantile(0.99, "motwatch_processing_seconds", RATE_INTERVAL, by="agent"),
                            "{{agent}}",
                        ),
                    ),
                    unit="s",
                    width=9,
                    shows="Time one record takes (99th percentile): ingest, a touchpoint as read; journeys, "
                    "a record of the re-keyed topic.",
                    look_first="Rising with the number of active journeys: state too large for memory "
                    "(consider the RocksDB store).",
                ),
                Panel(
                    "Rebalances in progress and producer send errors",
                    "timeseries",
                    (
                        Target("sum(faust_total_rebalances)", "rebalances in progress"),
                        Target(
                            "sum(rate(faust_total_error_messages_sent_total[$__rate_interval]))",
                            "send errors/s",
                        ),
                    ),
                    width=9,
                    shows="Consumer-group rebalances under way and messages the workers failed to send "
                    "(Faust's own sensors).",
                    look_first="Rebalances repeating: workers restarting or too slow to poll (worker logs); "
                    "send errors: the broker.",
                ),
            ),
        ),
        Row(
            "Kafka",
            (
                Panel(
                    "Kafka reachable, by worker",
                    "timeseries",
                    (Target("max by (instance) (motwatch_kafka_reachable)", "{{instance}}"),),
                    decimals=0,
                    minimum=0,
                    maximum=1,
                    shows="1 while a Kafka broker answers the worker's probe (every second), 0 during an "
                    "outage (two probes in a row found no broker); no line before the first probe.",
                    look_first="A worker at 0: the brokers' health, then network and DNS from the worker to "
                    "them, and the worker's log ('Kafka unreachable since …'); motwatch status says for "
                    "how long.",
                ),
                Panel(
                    "Failed writes per second, by stream",
                    "timeseries",
                    (Target(per_second("motwatch_write_failures_total", "stream"), "{{stream}}"),),
                    unit="cps",
                    shows="Failed tries to write a record, by what it is (moments, deadletter, by_journey, "
                    "quarantine, journeys_changelog, clocks_changelog); each is tried again until written, "
                    "and the worker takes no input meanwhile. No line while no write has failed.",
                    look_first="One stream failing: its topic's configuration (max.message.bytes, "
                    "min.insync.replicas, ACLs) and the broker's log; every stream failing: Kafka "
                    "reachable.",
                ),
            ),
        ),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (OVERVIEW, TOUCHPOINTS, PIPELINE)


# ---------------------------------------------------------------- alerts

ALERTS: tuple[Alert, ...] = (
    Alert(
        name="MotwatchAbandonedCheckoutsAboveBaseline",
        query="motwatch:checkout_abandonment:ratio1h"
        " / clamp_min(motwatch:checkout_abandonment:ratio1h:avg1d, 0.01)",
        op=">",
        threshold=1.5,
        guard="on() (motwatch:checkouts_started:increase1h >= 20)",
        for_="15m",
        severity="high",
        owner=None,
        value_format="humanize",
        summary="Abandoned checkouts at {value}× their usual rate (owner {owner})",
        description="Over the last hour, {value} times as many checkouts per checkout started were "
        "abandoned (started, no order within the window) as on average over the past day. Customers are "
        "giving up during checkout: a slow or failing step, a payment provider problem, or prices and "
        "shipping costs that changed.",
        fires_when="abandoned checkouts per checkout started over the last hour exceed {threshold}× "
        "their 1-day average (a baseline of at least 1 %) with at least 20 checkouts started in the hour, "
        "for {for}",
        look_first="Touchpoint health → Checkout: checkout errors and checkout duration at the same time; "
        "then the payment provider's status and today's checkout deploys.",
        panel=PanelRef("motwatch-touchpoints", "Abandoned checkout rate vs baseline"),
    ),
    Alert(
        name="MotwatchCheckoutErrorBurst",
        query='sum by (owner) (motwatch:moments_failed:increase5m{kind="checkout_error"})',
        op=">=",
        threshold=3,
        for_="0m",
        severity="critical",
        owner=None,
        value_format="humanize",
        summary="{value} checkout errors in 5 minutes (owner {owner})",
        description="Customers hit {value} failed payments or checkout steps answered with a server error "
        "(HTTP 5xx) within 5 minutes. Each is a customer who wanted to buy and could not.",
        fires_when="at least {threshold} checkout errors (failed payments, checkout steps with HTTP 5xx) "
        "within 5 minutes, at once",
        look_first="The checkout_error moments on the moments topic: details.step, http_status and reason "
        "show whether one step or the payment provider fails; then the checkout service's logs and deploys.",
        panel=PanelRef("motwatch-touchpoints", "Checkout errors per hour, by channel"),
    ),
    Alert(
        name="MotwatchBrokenLinks",
        query='sum by (owner, channel, moment) (motwatch:moments_failed:increase15m{kind="broken_link"})',
        op=">",
        threshold=0,
        for_="0m",
        severity="high",
        owner=None,
        value_format="humanize",
        summary="{value} broken links on {label:channel} at {label:moment} in 15 minutes (owner {owner})",
        description="Customers followed {value} links answered with HTTP 4xx/5xx within 15 minutes, on the "
        "{label:channel} channel at the {label:moment} moment of truth. Every one is a customer who hit an "
        "error page.",
        fires_when="any broken link (page view or link click answered with HTTP ≥ 400) within 15 minutes, "
        "at once",
        look_first="The broken_link moments on the moments topic: details.url and http_status name the page; "
        "then the site's last deploy or the campaign that links there.",
        panel=PanelRef("motwatch-touchpoints", "Broken links per hour, by channel and moment of truth"),
    ),
    Alert(
        name="MotwatchChatSlaBreaches",
        query='sum by (owner) (motwatch:moments_failed:increase15m{kind="chat_unanswered"})',
        op=">=",
        threshold=3,
        for_="0m",
        severity="high",
        owner=None,
        value_format="humanize",
        summary="{value} chats unanswered within the SLA in 15 minutes (owner {owner})",
        description="{value} chats in the last 15 minutes got no agent or bot reply within the SLA "
        "(60 s by default), or ended before one. Customers asking for help are waiting.",
        fires_when="at least {threshold} chats without a reply within the SLA in 15 minutes, at once",
        look_first="Support staffing and the chat platform's status now; Touchpoint health → Chat "
        "first-response time.",
        panel=PanelRef("motwatch-touchpoints", "Unanswered chats and calls per hour, by channel"),
    ),
    Alert(
        name="MotwatchNegativeReviewSpike",
        query='sum by (owner) (motwatch:moments_failed:increase1h{kind="negative_review"})'
        ' / clamp_min(sum by (owner) (motwatch:moments_failed:increase1h:avg1d{kind="negative_review"}), 1)',
        op=">",
        threshold=3,
        guard='sum by (owner) (motwatch:moments_failed:increase1h{kind="negative_review"}) >= 5',
        for_="0m",
        severity="high",
        owner=None,
        value_format="humanize",
        summary="Negative reviews at {value}× the usual hourly count (owner {owner})",
        description="Reviews rated 2 or lower in the last hour are {value} times their hourly average over "
        "the past day (at least 5 of them). Something customers experience went wrong, publicly.",
        fires_when="at least 5 negative reviews in the last hour and more than {threshold}× the hourly "
        "average of the past day (counted as at least 1), at once",
        look_first="The reviews' text (negative_review moments, the review platforms): one product, a "
        "delivery problem or a campaign; then the team that owns it.",
        panel=PanelRef("motwatch-touchpoints", "Negative reviews in the last hour vs usual, by channel"),
    ),
    Alert(
        name="MotwatchRejectedEventRatioHigh",
        query="motwatch:events_rejected:ratio5m",
        op=">",
        threshold=0.05,
        guard="on() (motwatch:events_received:rate5m > 0.1)",
        for_="10m",
        severity="high",
        owner=PIPELINE_OWNER,
        value_format="humanizePercentage",
        summary="{value} of incoming touchpoints rejected",
        description="{value} of the messages on the touchpoints topic over the last 5 minutes were invalid "
        "and went to the dead-letter topic. Their journeys are missing those touchpoints, so moments can go "
        "unreported.",
        fires_when="more than 5 % of incoming messages rejected over 5 minutes (at least 0.1 message/s), "
        "for {for}",
        look_first="Pipeline → Rejected by reason, then the dead-letter topic's records of that reason "
        "('error' names the field); then the producer that changed its format, or (future_timestamp) "
        "whose clock runs ahead.",
        panel=PanelRef("motwatch-pipeline", "Rejected messages per second, by reason"),
    ),
    Alert(
        name="MotwatchProcessingLagHigh",
        query="motwatch:event_lag_seconds:p95_5m",
        op=">",
        threshold=300,
        for_="10m",
        severity="high",
        owner=PIPELINE_OWNER,
        value_format="humanizeDuration",
        summary="Touchpoints processed {value} after they happened (p95)",
        description="The 95th percentile of processing lag (wall clock minus occurred_at) is {value}. "
        "Failing moments are reported that much late. (A deliberate replay of old events also causes this.)",
        fires_when="95th percentile of processing lag above {threshold} s over 5 minutes, for {for}",
        look_first="Pipeline → Consumer lag: if it is growing the workers are behind (processing time, "
        "rebalances); if not, producers deliver late.",
        panel=PanelRef("motwatch-pipeline", "Event lag p50 / p95 / p99 (now − occurred_at)"),
    ),
    Alert(
        name="MotwatchConsumerLagHigh",
        query=f"sum by (topic) ({CONSUMER_LAG})",
        op=">",
        threshold=10000,
        for_="10m",
        severity="high",
        owner=PIPELINE_OWNER,
        value_format="humanize",
        summary="Workers {value} messages behind on {label:topic}",
        description="{value} messages on {label:topic} are not yet read by the workers, for 10 minutes. "
        "Moments are reported late, and later still if it keeps growing.",
        fires_when="more than {threshold} unread messages on a topic, for {for}",
        look_first="Pipeline → Messages per second (input rate vs throughput), processing time per record "
        "and rebalances; add a worker if the topic has more partitions than workers.",
        panel=PanelRef("motwatch-pipeline", "Consumer lag (messages), by topic"),
    ),
    Alert(
        name="MotwatchWatermarkStalled",
        query="motwatch:watermark_delay_seconds",
        op=">",
        threshold=900,
        for_="10m",
        severity="high",
        owner=PIPELINE_OWNER,
        value_format="humanizeDuration",
        summary="Event time of partition {label:partition} is {value} behind",
        description="The watermark of partition {label:partition} is {value} behind the wall clock. "
        "Timeouts (abandoned checkouts, unanswered chats, stalled onboardings) fire only when it passes "
        "them, so they are that late. (A replay of old events also causes this.)",
        fires_when="a partition's watermark more than {threshold} s behind the wall clock, for {for}",
        look_first="Pipeline → Watermark delay: one partition means a stuck source partition; all of them "
        "mean the leader's tick timer stopped (worker log) or a replay is running.",
        panel=PanelRef("motwatch-pipeline", "Watermark delay, by partition"),
    ),
    Alert(
        name="MotwatchWorkerDown",
        query=f'up{{job="{JOB}"}}',
        op="<",
        threshold=1,
        for_="2m",
        severity="critical",
        owner=PIPELINE_OWNER,
        value_format="humanize",
        summary="motwatch worker {label:instance} is not answering",
        description="Prometheus cannot scrape the worker at {label:instance}. Its partitions are not "
        "processed until the consumer group gives them to another worker, and nothing it would detect is "
        "reported.",
        fires_when="a worker's /metrics scrape failing, for {for}",
        look_first="Is the process running (container/systemd status, OOM kills)? Then its log and "
        "Prometheus → Status → Targets for the scrape error.",
        panel=PanelRef("motwatch-pipeline", "Workers up"),
    ),
    Alert(
        name="MotwatchWorkerMissing",
        query=f'count(up{{job="{JOB}"}}) or vector(0)',
        op="<",
        threshold=1,
        for_="5m",
        severity="critical",
        owner=PIPELINE_OWNER,
        value_format="humanize",
        summary="No motwatch worker is known to Prometheus",
        description="Prometheus has no target in its 'motwatch' scrape job: no worker reports, so no "
        "failing moment would be seen or alerted on.",
        fires_when="no scrape target in the motwatch job, for {for}",
        look_first="Prometheus → Status → Targets and its scrape configuration or service discovery; then "
        "whether the workers are deployed at all.",
        panel=PanelRef("motwatch-pipeline", "Workers up"),
    ),
    Alert(
        name="MotwatchWorkerStalled",
        query="sum by (instance) (rate(faust_messages_received_total[5m]))",
        op="<=",
        threshold=0,
        for_="5m",
        severity="critical",
        owner=PIPELINE_OWNER,
        value_format="humanize",
        summary="motwatch worker {label:instance} answers but reads nothing",
        description="The worker at {label:instance} is up but has read no message for 5 minutes, not even "
        "the ticks the leader sends every partition each second. Its agents are stuck or it holds no "
        "partition.",
        fires_when="a scraped worker that read no message, not even a tick, over 5 minutes, for {for}",
        look_first="The worker's log (a stuck agent, a rebalance that never finished); restart it if it does "
        "not recover. A worker with no partitions (more workers than partitions) also shows this.",
        panel=PanelRef("motwatch-pipeline", "Rebalances in progress and producer send errors"),
    ),
    Alert(
        name="MotwatchKafkaUnreachable",
        query="motwatch_kafka_reachable",
        op="<=",
        threshold=0,
        for_="2m",
        severity="critical",
        owner=PIPELINE_OWNER,
        value_format="humanize",
        summary="motwatch worker {label:instance} cannot reach Kafka",
        description="The worker at {label:instance} cannot reach any Kafka broker: none answers its probe. "
        "Nothing is read or written meanwhile, so no failing moment is reported; moments are held until "
        "Kafka is back, and the worker catches up by itself (late, none lost). "
        "motwatch_kafka_unreachable_seconds says how long the outage has lasted.",
        fires_when="a worker whose probe has found no Kafka broker answering (motwatch_kafka_reachable 0), "
        "for {for}",
        look_first="The brokers' health (running, a controller elected, disks), then network and DNS from "
        "the worker's host to the bootstrap servers, and the worker's log ('Kafka unreachable since …'); "
        "motwatch_kafka_unreachable_seconds or motwatch status say for how long.",
        panel=PanelRef("motwatch-pipeline", "Kafka reachable, by worker"),
    ),
    Alert(
        name="MotwatchWritesFailing",
        query="sum by (instance, stream) (increase(motwatch_write_failures_total[5m]))",
        op=">",
        threshold=0,
        for_="10m",
        severity="high",
        owner=PIPELINE_OWNER,
        value_format="humanize",
        summary="motwatch worker {label:instance} keeps failing to write {label:stream} "
        "({value} failed tries in 5 minutes)",
        description="The worker at {label:instance} has failed to write {label:stream} records for 10 "
        "minutes ({value} failed tries in the last 5). It tries each again until it is written and takes no "
        "input meanwhile (the wait adds to motwatch_write_stalled_seconds_total once written), so moments "
        "are late and consumer lag grows; none is lost.",
        fires_when="a worker's failed tries to write one stream (moments, deadletter, by_journey, "
        "quarantine, a changelog) in every 5 minutes, for {for}",
        look_first="The topic's configuration (max.message.bytes for a record too large, "
        "min.insync.replicas against the replicas in sync, the worker's ACLs) and the broker's log; the "
        "worker's log says 'could not write to <stream>' with the error. Every stream failing: Kafka "
        "reachable.",
        panel=PanelRef("motwatch-pipeline", "Failed writes per second, by stream"),
    ),
)

# Series the alerts and panels read that streams/metrics.py does not declare.
PROMETHEUS_SERIES = ("up", "ALERTS")
FAUST_SERIES = (
    "faust_messages_received_total",
    "faust_topic_partition_end_offset",
    "faust_topic_partition_offset_commited",
    "faust_total_rebalances",
    "faust_total_error_messages_sent_total",
)
