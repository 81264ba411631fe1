"""The worker's series as Prometheus reads them: labels bounded, and no stale per-partition series.

Each test reads the registry's text exposition (what /metrics serves), not the
client objects, so it sees exactly what Prometheus would scrape.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import prometheus_client.context_managers
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from motwatch.core.engine import JourneyEngine, Step
from motwatch.core.events import Touchpoint
from motwatch.core.records import TICK, control_headers, encode_body
from motwatch.streams.metrics import NO_CHANNEL, Metrics
from tests.agents.test_journeys_agent import Producer, _agent, _record
from tests.journeys import line, settings, touch


def samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The exposed samples of ``name``, by their sorted labels."""
    text = generate_latest(metrics.registry).decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def labels_of(metrics: Metrics, name: str) -> list[dict[str, str]]:
    return [dict(labels) for labels in samples(metrics, name)]


def test_a_moment_is_counted_with_the_channel_of_the_touchpoint_that_failed() -> None:
    engine = JourneyEngine(settings(allowed_lateness_s=0))
    metrics = Metrics()
    for event in (
        touch("payment_failed", 10, cart_id="c1"),
        touch("page_view", 20, channel="web", url="https://shop.example/gone", http_status=404),
        touch(
            "link_click", 30, channel="email", url="mail-1", target_url="https://x.example/", http_status=410
        ),
    ):
        metrics.observe_step(engine.process(event), event, time.time())
    counted = {(d["kind"], d["channel"], d["owner"]): d for d in labels_of(metrics, "motwatch_moments_total")}
    assert set(counted) == {
        ("checkout_error", "checkout", "ecommerce"),
        ("broken_link", "web", "web"),
        ("broken_link", "email", "marketing"),
    }
    assert all(
        set(d) == {"kind", "moment", "phase", "severity", "owner", "channel", "status"}
        for d in counted.values()
    )


def test_a_channel_outside_the_contract_is_counted_as_none() -> None:
    engine = JourneyEngine(settings(allowed_lateness_s=0))
    event = touch("payment_failed", 10, cart_id="c1")
    reported = engine.process(event).moments
    assert len(reported) == 1
    step = Step()
    step.moments.append(dataclasses.replace(reported[0], channel="https://not-a-channel.example/?q=1"))
    metrics = Metrics()
    metrics.observe_step(step, None, time.time())
    assert [d["channel"] for d in labels_of(metrics, "motwatch_moments_total")] == [NO_CHANNEL]


def test_consumer_lag_of_partitions_no_longer_assigned_is_removed() -> None:
    metrics = Metrics()
    metrics.set_consumer_lag({("mw.touchpoints", 0): 5, ("mw.touchpoints", 1): 7, ("mw.by-journey", 1): 2})
    assert samples(metrics, "motwatch_consumer_lag_messages") == {
        (("partition", "0"), ("topic", "mw.touchpoints")): 5,
        (("partition", "1"), ("topic", "mw.touchpoints")): 7,
        (("partition", "1"), ("topic", "mw.by-journey")): 2,
    }
    # A rebalance took partition 1 of both topics away and gave partition 2.
    metrics.set_consumer_lag({("mw.touchpoints", 0): 3, ("mw.touchpoints", 2): 0})
    assert samples(metrics, "motwatch_consumer_lag_messages") == {
        (("partition", "0"), ("topic", "mw.touchpoints")): 3,
        (("partition", "2"), ("topic", "mw.touchpoints")): 0,
    }
    metrics.set_consumer_lag({})
    assert samples(metrics, "motwatch_consumer_lag_messages") == {}


def test_watermarks_of_partitions_no_longer_assigned_are_removed() -> None:
    metrics = Metrics()
    for partition in (0, 1, 2):
        metrics.set_watermark(partition, 1_000.0 + partition)
    metrics.keep_watermarks([0, 2, 5])  # 5: assigned, but no tick seen yet
    assert samples(metrics, "motwatch_watermark_seconds") == {
        (("partition", "0"),): 1_000.0,
        (("partition", "2"),): 1_002.0,
    }
    metrics.set_watermark(1, 2_000.0)  # assigned again later
    metrics.keep_watermarks([1])
    assert samples(metrics, "motwatch_watermark_seconds") == {(("partition", "1"),): 2_000.0}


# ---------------------------------------------------------------- values, from known events


def histogram(metrics: Metrics, name: str, **labels: str) -> tuple[dict[float, float], float, float]:
    """A histogram as scraped: its cumulative buckets (upper bound → count), count and sum."""
    wanted = tuple(sorted(labels.items()))
    buckets = {
        float(dict(key)["le"]): value
        for key, value in samples(metrics, f"{name}_bucket").items()
        if tuple(item for item in key if item[0] != "le") == wanted
    }
    return buckets, samples(metrics, f"{name}_count")[wanted], samples(metrics, f"{name}_sum")[wanted]


def fed(*events: Touchpoint, **overrides: Any) -> Metrics:
    """A worker's metrics after ``events`` went through the engine one by one, as the agent counts them."""
    engine = JourneyEngine(settings(allowed_lateness_s=0, **overrides))
    metrics = Metrics()
    for event in events:
        metrics.observe_step(engine.process(event), event, time.time())
    return metrics


def test_first_arrivals_count_each_journey_once_at_each_moment_of_truth() -> None:
    ad = touch("ad_impression", 0, key="cust-a", channel="ads", campaign="spring")
    metrics = fed(
        # A customer through every moment of truth, some of them more than once.
        ad,
        touch("search", 10, key="cust-a", channel="search", query="desk lamp"),
        touch("page_view", 20, key="cust-a", url="https://shop.example/p/1", page_category="product"),
        touch("cart_add", 30, key="cust-a", product_id="p1"),
        touch("order_completed", 40, key="cust-a", order_id="o1"),
        touch("delivery_received", 50, key="cust-a", channel="store"),
        touch("page_view", 60, key="cust-a", url="https://shop.example/"),  # after the order: SMOT again
        touch("review_posted", 70, key="cust-a", rating=5),
        ad,  # a duplicate: nothing new
        # An anonymous visitor: two awareness touches and a page of reviews.
        touch("email_open", 80, key=None, anon="anon-b", channel="email", campaign="news"),
        touch("email_click", 90, key=None, anon="anon-b", channel="email", campaign="news"),
        touch(
            "page_view", 100, key=None, anon="anon-b", url="https://shop.example/r", page_category="reviews"
        ),
    )
    reached = {
        dict(key)["moment"]: value
        for key, value in samples(metrics, "motwatch_journeys_reached_total").items()
    }
    assert reached == {"<ZMOT": 2, "ZMOT": 2, "FMOT": 1, "SMOT": 1, "UMOT": 1}
    assert samples(metrics, "motwatch_events_duplicate_total") == {(("channel", "ads"),): 1}


def test_chat_first_response_is_the_first_agent_or_bot_reply_of_each_chat() -> None:
    metrics = fed(
        touch("chat_started", 0, chat_id="c1"),
        touch("chat_message", 5, chat_id="c1", sender="customer"),  # not a response
        touch("chat_message", 25, chat_id="c1", sender="agent"),  # 25 s
        touch("chat_message", 40, chat_id="c1", sender="agent"),  # not the first
        touch("chat_started", 100, key="cust-2", chat_id="c2"),
        touch("chat_message", 175, key="cust-2", chat_id="c2", sender="bot"),  # 75 s, after the SLA
        touch("chat_started", 200, key="cust-3", chat_id="c3"),  # never answered
    )
    buckets, count, total = histogram(metrics, "motwatch_chat_first_response_seconds")
    assert (count, total) == (2, 100)
    assert {le: buckets[le] for le in (20, 30, 60, 90, float("inf"))} == {
        20: 0,
        30: 1,
        60: 1,
        90: 2,
        float("inf"): 2,
    }
    # The late reply was reported as a breach and then its recovery.
    moments = labels_of(metrics, "motwatch_moments_total")
    assert sorted((m["kind"], m["status"]) for m in moments) == [
        ("chat_unanswered", "failed"),
        ("chat_unanswered", "recovered"),
    ]


def test_checkout_duration_runs_from_checkout_started_to_the_order() -> None:
    metrics = fed(
        touch("checkout_started", 0, cart_id="k1"),
        touch("order_completed", 300, order_id="o1", cart_id="k1"),  # 5 minutes
        touch("checkout_started", 1000, key="cust-2", cart_id="k2"),
        touch("order_completed", 1045, key="cust-2", order_id="o2", cart_id="k2"),  # 45 s
        touch("checkout_started", 2000, key="cust-3", cart_id="k3"),  # still open: not measured
    )
    buckets, count, total = histogram(metrics, "motwatch_checkout_duration_seconds")
    assert (count, total) == (2, 345)
    assert {le: buckets[le] for le in (30, 60, 120, 300, 600)} == {30: 0, 60: 1, 120: 1, 300: 2, 600: 2}
    # A window a tenth as long: each order comes after its checkout was reported abandoned.
    late = fed(
        touch("checkout_started", 0, cart_id="k1"),
        touch("order_completed", 300, order_id="o1", cart_id="k1"),
        kinds={"abandoned_checkout": {"window_s": 180}},
    )
    assert histogram(late, "motwatch_checkout_duration_seconds")[1:] == (0, 0)
    assert sorted(d["status"] for d in labels_of(late, "motwatch_moments_total")) == ["failed", "recovered"]


async def test_processing_seconds_time_each_record_under_its_agent(monkeypatch) -> None:
    """Each record observed once, under ``ingest`` (a touchpoint as read) or ``journeys`` (a record
    of the re-keyed topic), with the time its handling took: a clock that only the dead-letter send
    (a slow broker) moves makes that the one record that took time."""
    now = [100.0]
    monkeypatch.setattr(prometheus_client.context_managers, "default_timer", lambda: now[0])

    class SlowDeadLetters(Producer):
        async def send(self, topic: str, *rest: Any) -> Any:
            if topic.endswith("deadletter"):
                now[0] += 0.3
            return await super().send(topic, *rest)

    agent, mw = _agent(SlowDeadLetters())
    touchpoints = mw.settings.touchpoints_topic
    lines = [line("page_view", i, url="https://shop.example/") for i in range(5)] + [b'{"cut": ']
    records = [_record(i, raw, b"cust-1", [], topic=touchpoints) for i, raw in enumerate(lines)]
    ticks = [_record(i, encode_body({"wall_ms": 1_000 + i}), None, control_headers(TICK)) for i in range(3)]
    await agent.process(records + ticks)

    buckets, count, total = histogram(mw.metrics, "motwatch_processing_seconds", agent="ingest")
    assert (count, total) == (6, pytest.approx(0.3))
    assert (buckets[0.1], buckets[0.5]) == (5, 6)  # the five valid ones took no time, the reject 0.3 s
    assert histogram(mw.metrics, "motwatch_processing_seconds", agent="journeys")[1:] == (3, 0)
    assert samples(mw.metrics, "motwatch_events_received_total") == {(): 6}
