"""The collector around its endpoints: /health, /metrics with bounded labels only, CORS, unknown paths."""

from __future__ import annotations

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from motwatch.adapters import VENDORS
from motwatch.collector.app import build_app
from motwatch.collector.metrics import KNOWN_REASONS, OTHER, CollectorMetrics, reason_label, status_class
from tests.adapters.examples import CLOUDEVENT_CHECKOUT, GA4_PURCHASE, SNOWPLOW_GET_QUERY
from tests.collector.conftest import KEY, basic, collector_client, sample

SHOP = "https://shop.example"
TRACK = {"type": "track", "userId": "u-1", "event": "checkout_started", "properties": {"cart_id": "c"}}


async def test_health_follows_the_sink(sink):
    async with collector_client(sink) as client:
        answer = await client.get("/health")
        assert answer.status == 200 and (await answer.json())["status"] == "ok"
        sink.up = False
        answer = await client.get("/health")
        assert answer.status == 503 and (await answer.json())["status"] != "ok"


async def test_unknown_paths_and_methods_are_counted_under_one_route(sink):
    async with collector_client(sink) as client:
        assert (await client.get("/v1/batch")).status == 405
        assert (await client.post("/customer/42/secret-path")).status == 404
        assert (
            sample(client, "motwatch_collector_requests_total", {"route": "unmatched", "status": "4xx"}) == 2
        )


async def test_short_and_long_segment_paths_count_as_one_route(sink):
    async with collector_client(sink) as client:
        await client.post("/v1/t", json=TRACK, headers=basic(KEY))
        await client.post("/v1/track", json=TRACK, headers=basic(KEY))
        await client.post("/v1/track", json=TRACK, headers=basic("unknown-key"))
        labels = {"route": "segment_track", "status": "2xx"}
        assert sample(client, "motwatch_collector_requests_total", labels) == 2
        labels = {"route": "segment_track", "status": "4xx"}
        assert sample(client, "motwatch_collector_requests_total", labels) == 1


async def test_metrics_carry_no_key_id_url_or_origin_as_a_label(sink):
    """Hostile values everywhere a request can put one; every label value is from a bounded set."""
    hostile = "https://evil.example/customer/42?token=" + "z" * 20
    weird = {"type": "track", "userId": hostile, "event": hostile, "messageId": hostile, "properties": {}}
    async with collector_client(sink, cors=[SHOP]) as client:
        origin = {"Origin": hostile}
        await client.post("/v1/batch", json={"batch": [weird, TRACK], "writeKey": KEY}, headers=origin)
        await client.post("/v1/batch", json={"batch": [TRACK], "writeKey": hostile}, headers=origin)
        await client.post(f"/v1/{hostile[-10:]}", json=TRACK, headers=basic(KEY))
        await client.get(f"/i?{SNOWPLOW_GET_QUERY}")
        await client.post(f"/mp/collect?api_secret={KEY}&measurement_id={hostile}", json=GA4_PURCHASE)
        await client.post(
            "/cloudevents", json=CLOUDEVENT_CHECKOUT, headers={"Authorization": f"Bearer {KEY}"}
        )
        await client.options("/v1/batch", headers=origin | {"Access-Control-Request-Method": "POST"})
        text = await (await client.get("/metrics")).text()
    routes = {r.name.split(":")[0] for r in build_app(client.app_collector).router.routes() if r.name}
    bounded = {
        "route": routes | {"unmatched", "preflight"},
        "status": {"1xx", "2xx", "3xx", "4xx", "5xx"},
        "vendor": set(VENDORS) | {OTHER},
        "reason": set(KNOWN_REASONS) | {OTHER},
    }
    seen: set[tuple[str, str]] = set()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            for name, value in s.labels.items():
                if name == "le":
                    continue
                assert name in bounded, (s.name, name)
                assert value in bounded[name], (s.name, name, value)
                seen.add((name, value))
    assert ("reason", "unmapped_event") in seen and ("vendor", "segment") in seen
    assert KEY not in text and "evil.example" not in text


def test_reasons_outside_the_known_codes_are_counted_as_other():
    assert reason_label("unmapped_event") == "unmapped_event"
    assert reason_label("anything a bug might say") == OTHER
    assert [status_class(s) for s in (101, 204, 302, 401, 503, 999)] == [
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "5xx",
    ]
    metrics = CollectorMetrics()
    metrics.rejects("segment", "made-up")
    assert (
        metrics.registry.get_sample_value(
            "motwatch_collector_events_rejected_total", {"vendor": "segment", "reason": OTHER}
        )
        == 1
    )


async def test_produce_latency_and_events_per_request_are_observed(sink):
    batch = {"batch": [TRACK, TRACK, TRACK], "writeKey": KEY}
    async with collector_client(sink) as client:
        await client.post("/v1/batch", data=orjson.dumps(batch))
        assert sample(client, "motwatch_collector_produce_seconds_count", {}) == 1
        assert sample(client, "motwatch_collector_request_events_sum", {"vendor": "segment"}) == 3
        assert sample(client, "motwatch_collector_request_events_count", {"vendor": "segment"}) == 1


# -- CORS ---------------------------------------------------------------------------


async def test_an_allowed_origin_may_read_the_answer(sink):
    async with collector_client(sink, cors=[SHOP, "https://other.example/"]) as client:
        answer = await client.post("/v1/track", json=TRACK, headers=basic(KEY) | {"Origin": SHOP})
        assert answer.status == 200
        assert answer.headers["Access-Control-Allow-Origin"] == SHOP
        assert answer.headers["Vary"] == "Origin"
        other = await client.post(
            "/v1/track", json=TRACK, headers=basic(KEY) | {"Origin": "https://other.example"}
        )
        assert other.headers["Access-Control-Allow-Origin"] == "https://other.example"
        refused = await client.post(
            "/v1/track", json=TRACK, headers=basic(KEY) | {"Origin": "https://evil.example"}
        )
        assert "Access-Control-Allow-Origin" not in refused.headers
        # Even a refusal is readable by an allowed page, so the tracker sees its status.
        unauthorized = await client.post("/v1/track", json=TRACK, headers={"Origin": SHOP})
        assert unauthorized.status == 401 and unauthorized.headers["Access-Control-Allow-Origin"] == SHOP


async def test_without_cors_origins_no_page_elsewhere_may_read_the_answer(sink):
    async with collector_client(sink) as client:
        answer = await client.post("/v1/track", json=TRACK, headers=basic(KEY) | {"Origin": SHOP})
        assert answer.status == 200 and "Access-Control-Allow-Origin" not in answer.headers
        preflight = await client.options(
            "/v1/track", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status == 403


async def test_a_wildcard_lets_any_origin_read(sink):
    async with collector_client(sink, cors=["*"]) as client:
        answer = await client.post(
            "/v1/track", json=TRACK, headers=basic(KEY) | {"Origin": "https://a.example"}
        )
        assert answer.headers["Access-Control-Allow-Origin"] == "https://a.example"


@pytest.mark.parametrize(
    "path", ["/v1/batch", "/com.snowplowanalytics.snowplow/tp2", "/mp/collect", "/cloudevents"]
)
async def test_a_preflight_from_an_allowed_origin_is_answered(sink, path):
    async with collector_client(sink, cors=[SHOP]) as client:
        answer = await client.options(
            path,
            headers={
                "Origin": SHOP,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, authorization, ce-specversion",
            },
        )
        assert answer.status == 204
        assert answer.headers["Access-Control-Allow-Origin"] == SHOP
        assert "POST" in answer.headers["Access-Control-Allow-Methods"]
        assert answer.headers["Access-Control-Allow-Headers"] == "content-type, authorization, ce-specversion"
        assert int(answer.headers["Access-Control-Max-Age"]) > 0
        assert (
            sample(client, "motwatch_collector_requests_total", {"route": "preflight", "status": "2xx"}) == 1
        )
    assert sink.writes == 0


async def test_a_preflight_to_a_path_nobody_serves_is_404(sink):
    async with collector_client(sink, cors=[SHOP]) as client:
        answer = await client.options(
            "/v2/nothing", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"}
        )
        assert answer.status == 404


async def test_a_bug_is_a_counted_500_not_a_dropped_connection(sink):
    async def broken(records):
        raise RuntimeError("a bug in the sink")

    sink.write = broken
    async with collector_client(sink) as client:
        answer = await client.post("/v1/track", json=TRACK, headers=basic(KEY))
        assert answer.status == 500
        assert "bug" not in await answer.text()
        labels = {"route": "segment_track", "status": "5xx"}
        assert sample(client, "motwatch_collector_requests_total", labels) == 1
