"""Segment's HTTP API at the collector: paths, write keys, Segment's limits and answers, dead letters."""

from __future__ import annotations

import copy

import orjson
import pytest

from motwatch.adapters import check_payload
from tests.adapters.examples import (
    SEGMENT_ALIAS,
    SEGMENT_HTTP_BATCH,
    SEGMENT_IDENTIFY,
    SEGMENT_ORDER_COMPLETED,
    SEGMENT_PAGE,
)
from tests.collector.conftest import KEY, NOW, OTHER_KEY, basic, collector_client, sample

TRACK = {
    "userId": "cust-7",
    "event": "checkout_started",
    "messageId": "m-track-1",
    "timestamp": "2026-11-22T10:15:00.000Z",
    "properties": {"cart_id": "cart-1", "value": 89, "currency": "EUR"},
}
# In a batch a message names its type.
TYPED = {"type": "track", **TRACK}


def expected(payload, kind=None) -> list[dict]:
    """What the adapter makes of the payload, as the touchpoints topic should hold it."""
    return [orjson.loads(a.raw) for a in check_payload("segment", payload, NOW, kind=kind).accepted]


@pytest.mark.parametrize(
    ("path", "payload", "kind"),
    [
        ("/v1/track", TRACK, "track"),
        ("/v1/t", TRACK, "track"),
        ("/v1/page", SEGMENT_PAGE, None),
        ("/v1/p", {k: v for k, v in SEGMENT_PAGE.items() if k != "type"}, "page"),
        ("/v1/identify", SEGMENT_IDENTIFY, None),
        ("/v1/i", SEGMENT_IDENTIFY, None),
        ("/v1/alias", SEGMENT_ALIAS, None),
        ("/v1/a", SEGMENT_ALIAS, None),
    ],
)
async def test_each_message_path_produces_its_touchpoint_keyed_by_journey(sink, path, payload, kind):
    async with collector_client(sink) as client:
        answer = await client.post(path, data=orjson.dumps(payload), headers=basic(KEY))
        assert answer.status == 200
        assert await answer.json() == {"success": True}
    made = expected(payload, kind)
    assert made and sink.touchpoints() == made
    assert sink.dead_letters() == []


async def test_the_path_names_the_type_of_a_message_without_one(sink):
    untyped = {k: v for k, v in SEGMENT_PAGE.items() if k != "type"}
    async with collector_client(sink) as client:
        assert (await client.post("/v1/page", json=untyped, headers=basic(KEY))).status == 200
    [event] = sink.touchpoints()
    assert event["type"] == "page_view"


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/b"])
async def test_a_batch_sent_as_text_plain_with_the_key_in_its_body(sink, path):
    batch = {"batch": [TYPED, SEGMENT_ORDER_COMPLETED], "writeKey": KEY, "sentAt": "2026-11-22T10:15:30Z"}
    async with collector_client(sink) as client:
        answer = await client.post(
            path, data=orjson.dumps(batch), headers={"Content-Type": "text/plain;charset=UTF-8"}
        )
        assert answer.status == 200
    assert sink.touchpoints() == expected(batch)
    assert [e["type"] for e in sink.touchpoints()] == ["checkout_started", "order_completed"]


async def test_one_bad_message_is_dead_lettered_and_the_batch_still_answers_success(sink):
    bad = {"type": "track", "event": "checkout_started", "messageId": "m-bad", "properties": {}}
    unmapped = {"type": "track", "userId": "u1", "event": "Song Played", "messageId": "m-song"}
    batch = {"batch": [TYPED, bad, unmapped], "writeKey": KEY}
    async with collector_client(sink) as client:
        answer = await client.post("/v1/batch", data=orjson.dumps(batch))
        assert answer.status == 200
        assert await answer.json() == {"success": True}
        assert sample(client, "motwatch_collector_events_accepted_total", {"vendor": "segment"}) == 1
        for reason in ("missing_field", "unmapped_event"):
            labels = {"vendor": "segment", "reason": reason}
            assert sample(client, "motwatch_collector_events_rejected_total", labels) == 1
    assert [e["event_id"] for e in sink.touchpoints()] == ["m-track-1"]
    letters = sink.dead_letters()
    assert [(d["reason"], d["source"]["item"]) for d in letters] == [
        ("missing_field", "batch[1]"),
        ("unmapped_event", "batch[2]"),
    ]
    # Each dead letter holds its own message, not the batch, and no write key.
    assert orjson.loads(letters[0]["raw"]) == bad
    assert orjson.loads(letters[1]["raw"]) == unmapped
    assert letters[0]["source"]["http"] == "segment_batch"
    assert letters[0]["source"]["vendor"] == "segment"
    assert all(KEY not in d["raw"] for d in letters)
    assert letters[0]["received_at"] == "2026-11-22T10:16:00.000Z"


async def test_a_rejected_single_message_keeps_its_body_without_the_write_key(sink):
    message = {"userId": "u1", "event": "Song Played", "messageId": "m-1", "writeKey": KEY}
    async with collector_client(sink) as client:
        assert (await client.post("/v1/track", data=orjson.dumps(message))).status == 200
    [letter] = sink.dead_letters()
    assert letter["reason"] == "unmapped_event"
    assert orjson.loads(letter["raw"]) == {k: v for k, v in message.items() if k != "writeKey"}
    assert "item" not in letter["source"]


async def test_messages_carrying_no_touchpoint_are_counted_not_dead_lettered(sink):
    one_id = {"type": "identify", "userId": "u1", "messageId": "i-1", "traits": {}}
    async with collector_client(sink) as client:
        assert (await client.post("/v1/batch", json={"batch": [one_id], "writeKey": KEY})).status == 200
        labels = {"vendor": "segment", "reason": "no_touchpoint"}
        assert sample(client, "motwatch_collector_events_rejected_total", labels) == 1
    assert sink.records == []


async def test_the_http_api_batch_example_accounts_for_every_message(sink):
    async with collector_client(sink) as client:
        assert (await client.post("/v1/batch", json=SEGMENT_HTTP_BATCH, headers=basic(KEY))).status == 200
    checked = check_payload("segment", SEGMENT_HTTP_BATCH, NOW)
    dead = [r for r in checked.rejected if r.reason != "no_touchpoint"]
    assert len(sink.touchpoints()) == len(checked.accepted)
    assert [d["source"]["item"] for d in sink.dead_letters()] == [r.item for r in dead]


@pytest.mark.parametrize(
    ("headers", "body_key"),
    [({}, None), (basic("not-a-known-key"), None), ({}, "not-a-known-key"), (basic("nope1234"), KEY)],
)
async def test_an_unknown_or_missing_write_key_is_401_and_nothing_is_produced(sink, headers, body_key):
    batch = {"batch": [TYPED]} | ({"writeKey": body_key} if body_key else {})
    async with collector_client(sink) as client:
        answer = await client.post("/v1/batch", data=orjson.dumps(batch), headers=headers)
        assert answer.status == 401
        assert (await answer.json())["success"] is False
    assert sink.records == [] and sink.writes == 0


async def test_any_of_the_keys_is_taken_and_the_password_is_ignored(sink):
    async with collector_client(sink) as client:
        answer = await client.post("/v1/track", json=TRACK, headers=basic(OTHER_KEY, "whatever"))
        assert answer.status == 200
    assert len(sink.touchpoints()) == 1


async def test_without_auth_no_key_is_needed(sink):
    async with collector_client(sink, keys=(), open=True) as client:
        assert (await client.post("/v1/track", json=TRACK)).status == 200
    assert len(sink.touchpoints()) == 1


async def test_invalid_json_is_400_with_a_json_error_and_nothing_is_produced(sink):
    async with collector_client(sink) as client:
        answer = await client.post("/v1/batch", data=b'{"batch": [', headers=basic(KEY))
        assert answer.status == 400
        body = await answer.json()
        assert body["success"] is False and body["code"] == "invalid_json"
        labels = {"vendor": "segment", "reason": "invalid_json"}
        assert sample(client, "motwatch_collector_events_rejected_total", labels) == 1
    assert sink.writes == 0


def _padded(message: dict, size: int) -> dict:
    padded = copy.deepcopy(message)
    padded["properties"]["note"] = ""
    padded["properties"]["note"] = "x" * (size - len(orjson.dumps(padded)))
    assert len(orjson.dumps(padded)) == size
    return padded


@pytest.mark.parametrize("path", ["/v1/track", "/v1/t"])
async def test_a_message_over_32_kb_is_400_and_one_of_32_kb_is_taken(sink, path):
    async with collector_client(sink) as client:
        over = await client.post(path, data=orjson.dumps(_padded(TRACK, 32 * 1024 + 1)), headers=basic(KEY))
        assert over.status == 400
        assert (await over.json())["code"] == "too_large"
        assert sink.writes == 0
        at_limit = await client.post(path, data=orjson.dumps(_padded(TRACK, 32 * 1024)), headers=basic(KEY))
        assert at_limit.status == 200


async def test_a_batch_over_500_kb_is_400(sink):
    message = _padded(TYPED, 20 * 1024)
    batch = {"batch": [message] * 26, "writeKey": KEY}
    assert len(orjson.dumps(batch)) > 500 * 1024
    async with collector_client(sink) as client:
        answer = await client.post("/v1/batch", data=orjson.dumps(batch))
        assert answer.status == 400
        assert (await answer.json())["code"] == "too_large"
        fits = {"batch": [message] * 24, "writeKey": KEY}
        assert (await client.post("/v1/batch", data=orjson.dumps(fits))).status == 200
    assert len(sink.touchpoints()) == 24


async def test_a_batch_holding_a_message_over_32_kb_is_400_as_segment_answers(sink):
    batch = {"batch": [TYPED, _padded(TYPED, 32 * 1024 + 1)], "writeKey": KEY}
    async with collector_client(sink) as client:
        answer = await client.post("/v1/batch", data=orjson.dumps(batch))
        assert answer.status == 400
        assert "message 1" in (await answer.json())["message"]
    assert sink.writes == 0


async def test_kafka_not_acknowledging_is_503_so_the_sender_retries(sink):
    sink.fail = "no acknowledgement"
    async with collector_client(sink) as client:
        answer = await client.post("/v1/track", json=TRACK, headers=basic(KEY))
        assert answer.status == 503
        body = await answer.json()
        assert body["success"] is False and "no acknowledgement" in body["message"]
        assert sample(client, "motwatch_collector_produce_failures_total", {}) == 1
        assert sample(client, "motwatch_collector_events_accepted_total", {"vendor": "segment"}) == 0


async def test_a_duplicate_message_id_passes_through(sink):
    async with collector_client(sink) as client:
        for _ in range(2):
            assert (await client.post("/v1/track", json=TRACK, headers=basic(KEY))).status == 200
    assert [e["event_id"] for e in sink.touchpoints()] == ["m-track-1", "m-track-1"]


async def test_a_gzipped_body_is_read(sink):
    import gzip

    async with collector_client(sink) as client:
        answer = await client.post(
            "/v1/track",
            data=gzip.compress(orjson.dumps(TRACK)),
            headers=basic(KEY) | {"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        assert answer.status == 200
    assert len(sink.touchpoints()) == 1


async def test_a_body_that_cannot_be_decoded_is_400(sink):
    async with collector_client(sink) as client:
        answer = await client.post(
            "/v1/track", data=b"not gzip at all", headers=basic(KEY) | {"Content-Encoding": "gzip"}
        )
        assert answer.status == 400
    assert sink.writes == 0
