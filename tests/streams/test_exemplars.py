"""From a series to one moment: exemplars carry the ``moment_id``, in OpenMetrics only, and nothing else.

The worker's registry after known moments is read as Prometheus would scrape
it: the OpenMetrics exposition (what /metrics serves when the scraper asks for
it) and the classic text format (what it serves otherwise). The web server is
started in this process and asked with Prometheus's own Accept header.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from motwatch.core.engine import JourneyEngine
from motwatch.core.moments import Moment
from motwatch.listening import listen_socket
from motwatch.streams.metrics import Metrics
from motwatch.streams.web import WebServer, wants_openmetrics
from tests.journeys import settings, touch

# What Prometheus 2.42 sends with every scrape.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
CUSTOMER = "cust-exemplar-0042"
BROKEN_URL = "https://shop.example/gone-for-good"
# How long after its occurred_at each moment is reported in these tests.
LATENCY_S = 42.0


def reported(*events: Any) -> tuple[Metrics, list[Moment]]:
    """A worker's metrics after ``events`` went through the engine, each moment reported
    ``LATENCY_S`` after it occurred; and the moments."""
    engine = JourneyEngine(settings(allowed_lateness_s=0))
    metrics = Metrics()
    tally = metrics.tally()
    moments: list[Moment] = []
    for event in events:
        step = engine.process(event)
        moments += step.moments
        now = max((m.occurred_ms / 1000 + LATENCY_S for m in step.moments), default=time.time())
        tally.step(step, event, now)
    metrics.add(tally)
    return metrics, moments


def exemplars(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    """Every exemplar of an OpenMetrics exposition, by its sample's name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.exemplar
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.exemplar is not None
    }


def failing_journeys() -> tuple[Metrics, list[Moment]]:
    """A customer's failed payment and a broken link on the site."""
    return reported(
        touch("payment_failed", 10, key=CUSTOMER, cart_id="c1", reason="card_declined"),
        touch("page_view", 20, key=CUSTOMER, channel="web", url=BROKEN_URL, http_status=404),
    )


def test_a_failed_moment_s_exemplar_is_its_moment_id_on_its_own_series() -> None:
    metrics, moments = failing_journeys()
    assert sorted(m.kind for m in moments) == ["broken_link", "checkout_error"]
    found = exemplars(openmetrics.generate_latest(metrics.registry).decode())
    expected = {}
    for m in moments:
        labels = {
            "kind": m.kind,
            "moment": m.moment,
            "phase": m.phase,
            "severity": m.severity,
            "owner": m.owner,
            "channel": m.channel,
            "status": "failed",
        }
        expected[("motwatch_moments_total", tuple(sorted(labels.items())))] = ({"moment_id": m.moment_id}, 1)
        # Reported 42 s after it occurred: the exemplar sits on the first bucket that holds 42 s.
        bucket = (("kind", m.kind), ("le", "60.0"))
        expected[("motwatch_detection_latency_seconds_bucket", bucket)] = (
            {"moment_id": m.moment_id},
            pytest.approx(LATENCY_S),
        )
    assert {key: (e.labels, e.value) for key, e in found.items()} == expected


def test_exemplars_name_no_customer_journey_or_url_and_fit_the_openmetrics_limit() -> None:
    metrics, moments = failing_journeys()
    assert {m.journey_key for m in moments} == {CUSTOMER}
    text = openmetrics.generate_latest(metrics.registry).decode()
    found = exemplars(text)
    assert found
    for exemplar in found.values():
        assert set(exemplar.labels) == {"moment_id"}
        assert exemplar.labels["moment_id"] in {m.moment_id for m in moments}
        # OpenMetrics: label names and values of an exemplar together at most 128 UTF-8 characters.
        assert sum(len(k) + len(v) for k, v in exemplar.labels.items()) <= 128
    assert CUSTOMER not in text and BROKEN_URL not in text


def test_a_recovery_carries_its_own_moment_id() -> None:
    metrics, moments = reported(
        touch("chat_started", 0, key=CUSTOMER, chat_id="c1"),
        touch("chat_message", 75, key=CUSTOMER, chat_id="c1", sender="agent"),  # after the 60 s SLA
    )
    by_status = {m.status: m.moment_id for m in moments}
    assert set(by_status) == {"failed", "recovered"} and len(set(by_status.values())) == 2
    found = exemplars(openmetrics.generate_latest(metrics.registry).decode())
    on_counter = {
        dict(labels)["status"]: e.labels["moment_id"]
        for (name, labels), e in found.items()
        if name == "motwatch_moments_total"
    }
    assert on_counter == by_status


def test_the_classic_text_format_has_no_exemplars() -> None:
    metrics, _ = failing_journeys()
    text = generate_latest(metrics.registry).decode()
    assert "motwatch_moments_total{" in text and "motwatch_detection_latency_seconds_bucket{" in text
    assert "moment_id" not in text and " # {" not in text


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        (PROMETHEUS_ACCEPT, True),
        ("application/openmetrics-text", True),
        ("text/plain, Application/OpenMetrics-Text; version=1.0.0; q=0.2", True),
        ("application/openmetrics-text;q=0, text/plain", False),
        ("application/openmetrics-text; q=0.0", False),
        ("text/plain;version=0.0.4", False),
        ("*/*", False),
        ("", False),
    ],
)
def test_openmetrics_is_served_when_the_accept_header_lists_it(accept: str, wanted: bool) -> None:
    assert wants_openmetrics(accept) is wanted


def fetch(url: str, accept: str | None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode()


async def test_the_web_server_negotiates_the_format(tmp_path) -> None:
    metrics, moments = failing_journeys()
    path = tmp_path / "web.url"
    server = WebServer(listen_socket("127.0.0.1", 0), metrics.registry, lambda: "ok", path)
    await server.start()
    try:
        content_type, body = await asyncio.to_thread(fetch, server.metrics_url, PROMETHEUS_ACCEPT)
        assert content_type.startswith("application/openmetrics-text; version=1.0.0")
        assert body.endswith("# EOF\n")
        ids = {e.labels["moment_id"] for e in exemplars(body).values()}
        assert ids == {m.moment_id for m in moments}
        for accept in (None, "text/plain;version=0.0.4"):
            content_type, body = await asyncio.to_thread(fetch, server.metrics_url, accept)
            assert content_type.startswith("text/plain"), accept
            assert "motwatch_moments_total{" in body and "moment_id" not in body and "# EOF" not in body
    finally:
        await server.stop()
