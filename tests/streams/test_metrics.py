"""The worker's series as Prometheus reads them: labels bounded, and no stale per-partition series.

Each test reads the registry's text exposition (what /metrics serves), not the
client objects, so it sees exactly what Prometheus would scrape.
"""

from __future__ import annotations

import dataclasses
import time

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from motwatch.core.engine import JourneyEngine, Step
from motwatch.streams.metrics import NO_CHANNEL, Metrics
from tests.journeys import settings, touch


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
