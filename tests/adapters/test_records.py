"""A vendor's messages on the input topic become the touchpoint records they carry, read from their place."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from motwatch.adapters.records import input_format
from motwatch.core.dispatch import Inbound
from motwatch.core.records import header_map
from motwatch.core.validation import Rejection, validate_touchpoint
from motwatch.settings import Settings
from tests.adapters.cloudevents_binary import SOURCE, as_cloudevent

ARRIVED_MS = 1_796_000_000_000
AT = "2026-12-01T10:00:00.000Z"


def _segment_batch() -> bytes:
    page = {
        "type": "page",
        "messageId": "m-1",
        "anonymousId": "anon-1",
        "timestamp": AT,
        "properties": {"url": "https://shop.example/p/1"},
    }
    order = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "m-2",
        "userId": "cust-9",
        "timestamp": AT,
        "properties": {"order_id": "o-1", "total": 12.5, "currency": "EUR"},
    }
    unknown = {
        "type": "track",
        "event": "Coupon Spun",
        "messageId": "m-3",
        "userId": "cust-9",
        "timestamp": AT,
    }
    one_sided = {"type": "identify", "messageId": "m-4", "userId": "cust-9", "timestamp": AT}
    return orjson.dumps({"batch": [page, order, unknown, one_sided]})


def test_motwatch_own_format_needs_no_conversion() -> None:
    assert input_format(Settings()) is None


def test_a_segment_batch_gives_its_touchpoints_read_from_the_record_and_its_mistakes() -> None:
    convert = input_format(Settings(input_format="segment"))
    assert convert is not None
    record = Inbound(_segment_batch(), 3, timestamp_ms=ARRIVED_MS, topic="segment", offset=41, behind=True)
    out = list(convert(record))
    events = [item for item in out if isinstance(item, Inbound)]
    rejections = [item for item in out if isinstance(item, Rejection)]
    assert [orjson.loads(e.value)["event_id"] for e in events] == ["m-1", "m-2"]
    assert [e.key for e in events] == [b"anon-1", b"cust-9"]
    assert all(
        (e.partition, e.offset, e.topic, e.timestamp_ms, e.behind) == (3, 41, "segment", ARRIVED_MS, True)
        for e in events
    )
    assert all(not isinstance(validate_touchpoint(e.value), Rejection) for e in events)
    # The unknown event is a mistake to dead-letter; the one-sided identify is no touchpoint at all.
    assert [(r.reason, r.error.split(":")[0]) for r in rejections] == [("unmapped_event", "batch[2]")]


def test_a_binary_cloudevent_reads_its_headers() -> None:
    convert = input_format(Settings(input_format="cloudevents"))
    assert convert is not None
    event = {
        "event_id": "e-7",
        "occurred_at": AT,
        "anonymous_id": "anon-2",
        "channel": "web",
        "type": "page_view",
        "properties": {"url": "https://shop.example/"},
    }
    headers, body = as_cloudevent(event)
    (item,) = convert(Inbound(body, 0, headers=header_map(headers), timestamp_ms=ARRIVED_MS))
    assert isinstance(item, Inbound)
    made = orjson.loads(item.value)
    assert (made["event_id"], made["type"], made["anonymous_id"]) == (f"{SOURCE}|e-7", "page_view", "anon-2")
    # Without its headers the body is no CloudEvent: rejected, not guessed.
    (refused,) = convert(Inbound(body, 0, timestamp_ms=ARRIVED_MS))
    assert isinstance(refused, Rejection)


def test_a_record_without_a_timestamp_arrives_now() -> None:
    now = datetime(2026, 12, 1, 10, 0, 5, tzinfo=UTC)
    convert = input_format(Settings(input_format="segment"), now=lambda: now)
    assert convert is not None
    message = {
        "type": "page",
        "messageId": "m-9",
        "anonymousId": "anon-3",
        "timestamp": "2026-12-01T10:00:00.000Z",
        "sentAt": "2026-12-01T10:00:03.000Z",
        "properties": {"url": "https://shop.example/"},
    }
    (item,) = convert(Inbound(orjson.dumps(message), 0))
    assert isinstance(item, Inbound)
    # Skew corrected against the time it arrived: sent 3 s after it happened, arrived at now.
    assert orjson.loads(item.value)["occurred_at"] == "2026-12-01T10:00:02.000Z"
