"""The worker's series as Prometheus reads them: labels bounded, and no stale per-partition series.

Each test reads the registry's text exposition (what /metrics serves), not the
client objects, so it sees exactly what Prometheus would scrape.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from motwatch.agents import journeys
from motwatch.core.engine import JourneyEngine, Step
from motwatch.core.events import Touchpoint
from motwatch.core.records import TICK, control_headers, encode_body
from motwatch.streams.metrics import NO_CHANNEL, Metrics
from motwatch.streams.prometheus_internals import observe_all
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
    tally = metrics.tally()
    for event in (
        touch("payment_failed", 10, cart_id="c1"),
        touch("page_view", 20, channel="web", url="https://shop.example/gone", http_status=404),
        touch(
            "link_click", 30, channel="email", url="mail-1", target_url="https://x.example/", http_status=410
        ),
    ):
        tally.step(engine.process(event), event, time.time())
    metrics.add(tally)
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
    tally = metrics.tally()
    tally.step(step, None, time.time())
    metrics.add(tally)
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
    """A worker's metrics after ``events`` went through the engine one by one, as the agent counts
    them: in one batch."""
    engine = JourneyEngine(settings(allowed_lateness_s=0, **overrides))
    metrics = Metrics()
    tally = metrics.tally()
    for event in events:
        tally.step(engine.process(event), event, time.time())
    metrics.add(tally)
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
    monkeypatch.setattr(journeys, "perf_counter", lambda: now[0])

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


def exposition(metrics: Metrics) -> list[bytes]:
    """The metrics' text exposition, without the times their series were created."""
    return [row for row in generate_latest(metrics.registry).splitlines() if b"_created" not in row]


def test_observations_added_at_once_equal_each_observed_in_turn() -> None:
    """``observe_all`` adds to prometheus_client's histogram as its ``observe`` does (it reads the
    library's buckets: this fails the day they change), bounds themselves included."""
    values = [0.0, 0.01, 0.0100001, 0.7, 1, 5, 86400, 86400.5, 1e9, *[i / 7 for i in range(200)]]
    one_by_one, at_once = Metrics(), Metrics()
    for value in values:
        one_by_one.event_lag.observe(value)
        one_by_one.processing.labels("ingest").observe(value / 1000)
    observe_all(at_once.event_lag, values)
    observe_all(at_once.processing.labels("ingest"), [v / 1000 for v in values])
    observe_all(at_once.event_lag, [])
    assert exposition(at_once) == exposition(one_by_one)


def test_a_batch_counted_at_once_gives_the_series_of_each_record_counted_in_turn() -> None:
    """The tally of a batch, added once, against a tally added after every record."""
    events = [touch("page_view", i, channel="web", url="https://shop.example/") for i in range(20)] + [
        touch("payment_failed", 30, cart_id="c1"),
        touch("page_view", 5, channel="web", url="/"),
    ]
    per_record, per_batch = Metrics(), Metrics()
    engines = [JourneyEngine(settings(allowed_lateness_s=0)) for _ in range(2)]
    batch = per_batch.tally()
    for event in events:
        single = per_record.tally()
        for tally, engine in ((single, engines[0]), (batch, engines[1])):
            tally.received += 1
            tally.accept(event)
            tally.step(engine.process(event), event, 1_800_000_000.0)
            tally.took("ingest", 0.002)
        per_record.add(single)
    per_batch.add(batch)
    assert exposition(per_batch) == exposition(per_record)
    assert samples(per_batch, "motwatch_events_received_total") == {(): len(events)}
    assert batch.received == 0 and not batch.lags, "added, the tally starts afresh"
