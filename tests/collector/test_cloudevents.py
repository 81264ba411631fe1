"""CloudEvents 1.0 over HTTP at the collector: structured, batch and binary mode; 202, 400, 401."""

from __future__ import annotations

import orjson
import pytest

from motwatch.adapters import check_payload
from tests.adapters.examples import CLOUDEVENT_CHECKOUT, CLOUDEVENT_SPEC_EXAMPLE
from tests.collector.conftest import KEY, NOW, basic, collector_client

STRUCTURED = {"Content-Type": "application/cloudevents+json; charset=utf-8"}
BATCH = {"Content-Type": "application/cloudevents-batch+json"}
BEARER = {"Authorization": f"Bearer {KEY}"}


def expected(payload) -> list[dict]:
    return [orjson.loads(a.raw) for a in check_payload("cloudevents", payload, NOW).accepted]


@pytest.mark.parametrize("auth", [BEARER, basic(KEY)])
async def test_a_structured_event_is_202_and_its_touchpoint(sink, auth):
    async with collector_client(sink) as client:
        answer = await client.post(
            "/cloudevents", data=orjson.dumps(CLOUDEVENT_CHECKOUT), headers=STRUCTURED | auth
        )
        assert answer.status == 202
    assert sink.touchpoints() == expected(CLOUDEVENT_CHECKOUT)
    assert sink.touchpoints()[0]["event_id"] == "/shop/checkout|c-1001"


async def test_a_batch_is_202_with_its_unusable_events_dead_lettered(sink):
    batch = [CLOUDEVENT_CHECKOUT, CLOUDEVENT_SPEC_EXAMPLE]
    async with collector_client(sink) as client:
        answer = await client.post("/cloudevents", data=orjson.dumps(batch), headers=BATCH | BEARER)
        assert answer.status == 202
    assert sink.touchpoints() == expected(batch)
    [letter] = sink.dead_letters()
    assert letter["reason"] == "unmapped_event" and letter["source"]["item"] == "[1]"
    assert orjson.loads(letter["raw"]) == CLOUDEVENT_SPEC_EXAMPLE


async def test_binary_mode_takes_the_attributes_from_ce_headers(sink):
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "com.example.touchpoint.checkout_started",
        "ce-source": "/shop/checkout",
        "ce-id": "c-2002",
        "ce-time": "2026-11-22T10:15:03.120Z",
        "ce-note": "caf%C3%A9",  # percent-encoded, as the HTTP binding writes non-ASCII
        "Content-Type": "application/json",
    }
    data = CLOUDEVENT_CHECKOUT["data"]
    async with collector_client(sink) as client:
        answer = await client.post("/cloudevents", data=orjson.dumps(data), headers=headers | BEARER)
        assert answer.status == 202
    [event] = sink.touchpoints()
    assert event["type"] == "checkout_started" and event["event_id"] == "/shop/checkout|c-2002"
    assert event["customer_id"] == data["customer_id"]
    assert event["occurred_at"] == headers["ce-time"]


async def test_a_rejected_binary_event_keeps_its_body_and_its_headers(sink):
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "checkout_started",
        "ce-source": "/s",
        "ce-note": "caf%C3%A9",
    }
    headers["Content-Type"] = "application/json"
    async with collector_client(sink) as client:
        answer = await client.post("/cloudevents", data=b'{"customer_id": "c1"}', headers=headers | BEARER)
        assert answer.status == 202
    [letter] = sink.dead_letters()
    assert letter["reason"] == "missing_field"
    assert letter["raw"] == '{"customer_id": "c1"}'
    assert letter["source"]["headers"]["ce-note"] == "café"


@pytest.mark.parametrize(
    ("body", "headers", "says"),
    [
        (b"{not json", STRUCTURED, "not valid JSON"),
        (orjson.dumps([CLOUDEVENT_CHECKOUT]), STRUCTURED, "one event"),
        (orjson.dumps(CLOUDEVENT_CHECKOUT), BATCH, "array"),
        (orjson.dumps(CLOUDEVENT_CHECKOUT), {"Content-Type": "application/json"}, "not a CloudEvent"),
    ],
)
async def test_a_malformed_request_is_400_and_nothing_is_produced(sink, body, headers, says):
    async with collector_client(sink) as client:
        answer = await client.post("/cloudevents", data=body, headers=headers | BEARER)
        assert answer.status == 400
        assert says in (await answer.json())["error"]
    assert sink.writes == 0


@pytest.mark.parametrize("auth", [{}, {"Authorization": "Bearer someone-else"}, basic("nobody-here")])
async def test_without_a_known_key_it_is_401(sink, auth):
    async with collector_client(sink) as client:
        answer = await client.post(
            "/cloudevents", data=orjson.dumps(CLOUDEVENT_CHECKOUT), headers=STRUCTURED | auth
        )
        assert answer.status == 401
    assert sink.writes == 0
