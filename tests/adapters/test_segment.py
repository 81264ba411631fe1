"""Segment/RudderStack messages as touchpoints: spec examples, e-commerce, chat, skew, batches, bad input."""

from __future__ import annotations

import copy

import pytest

from motwatch.adapters import segment
from motwatch.adapters.mapping import Mappings, rule
from tests.adapters.examples import (
    SEGMENT_ALIAS,
    SEGMENT_HTTP_BATCH,
    SEGMENT_HTTP_TRACK,
    SEGMENT_IDENTIFY,
    SEGMENT_ORDER_COMPLETED,
    SEGMENT_PAGE,
    at,
    reasons,
    valid,
)

NOW = at("2026-11-22T10:30:00Z")


def one(payload, received=NOW, **kw):
    """The single touchpoint a message converts to (the test fails on a rejection)."""
    out = segment.convert(payload, received, **kw)
    assert out.rejections == []
    [event] = valid(out)
    return event


def track(event, properties=None, **fields):
    """A track message made for a test, with an id and a visitor."""
    message = {"type": "track", "event": event, "messageId": f"m-{event}", "anonymousId": "anon-1"}
    return message | {"properties": properties or {}} | fields


def test_the_spec_page_example_is_a_page_view_at_its_corrected_time():
    event = one(SEGMENT_PAGE)
    assert event["type"] == "page_view" and event["channel"] == "web"
    assert event["event_id"] == "022bb90c-bbac-11e4-8dfc-aa07a5b093db"
    assert event["customer_id"] == "97980cfea0067"
    assert event["anonymous_id"] == "507f191e810c19729de860ea"
    assert event["properties"] == {"url": "http://www.initech.com"}
    # Relayed with its receivedAt: receivedAt - (sentAt - timestamp), sent at once.
    assert event["occurred_at"] == "2015-02-23T22:28:55.387Z"


def test_the_spec_identify_example_joins_both_ids():
    event = one(SEGMENT_IDENTIFY)
    assert event["type"] == "identify"
    assert (event["customer_id"], event["anonymous_id"]) == ("97980cfea0067", "507f191e810c19729de860ea")
    assert event["properties"] == {}


def test_the_spec_alias_example_joins_the_previous_id_to_the_user():
    event = one(SEGMENT_ALIAS)
    assert event["type"] == "identify"
    assert event["customer_id"] == "507f191e81"
    assert event["anonymous_id"] == "39239-239239-239239-23923"


def test_an_identify_with_one_id_carries_no_touchpoint():
    message = {k: v for k, v in SEGMENT_IDENTIFY.items() if k != "anonymousId"}
    out = segment.convert(message, NOW)
    assert out.events == [] and reasons(out) == [("", "no_touchpoint")]


def test_an_alias_without_its_previous_id_is_missing_a_field():
    message = {k: v for k, v in SEGMENT_ALIAS.items() if k != "previousId"}
    out = segment.convert(message, NOW)
    assert reasons(out) == [("", "missing_field")]
    assert "previousId" in out.rejections[0].error


def test_the_http_track_example_is_unmapped_until_the_shop_maps_it():
    out = segment.convert(SEGMENT_HTTP_TRACK, NOW, kind="track")
    assert reasons(out) == [("", "unmapped_event")]
    assert "Item Purchased" in out.rejections[0].error
    mappings = Mappings({"segment": {"Item Purchased": rule("cart_add", value="revenue")}})
    event = one(SEGMENT_HTTP_TRACK, mappings=mappings, kind="track")
    assert event["type"] == "cart_add" and event["customer_id"] == "019mr8mf4r"
    assert event["properties"] == {"value": 14.99}
    assert event["occurred_at"] == "2012-12-02T00:30:12.984Z"  # no sentAt: the timestamp as given
    # No messageId: one derived from the message, the same every time.
    assert event["event_id"].startswith("segment-")
    assert one(SEGMENT_HTTP_TRACK, mappings=mappings, kind="track")["event_id"] == event["event_id"]


def test_the_http_batch_example_accounts_for_every_message():
    out = segment.convert(SEGMENT_HTTP_BATCH, NOW)
    assert out.events == []
    assert reasons(out) == [
        ("batch[0]", "no_touchpoint"),
        ("batch[1]", "unmapped_event"),
        ("batch[2]", "no_touchpoint"),
        ("batch[3]", "unmapped_event"),
    ]


def test_a_journey_through_the_ecommerce_and_chat_specs():
    batch = {
        "sentAt": "2026-11-22T10:00:10.000Z",
        "context": {"page": {"url": "https://shop.example/p/sweater"}, "sessionId": 1763806000000},
        "batch": [
            track("Product Viewed", {"product_id": "p-1", "sku": "45790-32"}),
            track(
                "Product Added", {"cart_id": "cart-1", "product_id": "p-1", "price": 19, "currency": "USD"}
            ),
            track("Checkout Started", {"order_id": "o-1", "revenue": 25.0, "currency": "USD"}),
            track("Checkout Step Viewed", {"checkout_id": "co-1", "step": 2}),
            track("Payment Info Entered", {"checkout_id": "co-1", "step": 3, "payment_method": "Visa"}),
            track("Product Reviewed", {"product_id": "p-1", "review_body": "Itchy.", "rating": 2}),
            track("Live Chat Conversation Started", {"conversation_id": "chat-1", "agent_id": "a-1"}),
            track("Live Chat Message Sent", {"conversation_id": "chat-1", "message_body": "Hello?"}),
            track("Live Chat Message Received", {"conversation_id": "chat-1", "message_body": "Hi!"}),
            track("Live Chat Conversation Ended", {"conversation_id": "chat-1"}),
            track("page_exit", {"url": "https://shop.example/p/sweater", "dwell_ms": 3500}),
        ],
    }
    events = valid(segment.convert(batch, NOW))
    assert [(e["type"], e["channel"]) for e in events] == [
        ("page_view", "web"),
        ("cart_add", "web"),
        ("checkout_started", "checkout"),
        ("checkout_step", "checkout"),
        ("checkout_step", "checkout"),
        ("review_posted", "review"),
        ("chat_started", "chat"),
        ("chat_message", "chat"),
        ("chat_message", "chat"),
        ("chat_ended", "chat"),
        ("page_exit", "web"),
    ]
    props = [e["properties"] for e in events]
    # The page URL from the batch's context; the product page category from the table.
    assert props[0] == {
        "url": "https://shop.example/p/sweater",
        "page_category": "product",
        "product_id": "p-1",
    }
    assert props[1] == {"product_id": "p-1", "value": 19, "currency": "USD"}
    assert props[2] == {"cart_id": "o-1", "value": 25.0, "currency": "USD"}
    assert props[3] == {"cart_id": "co-1", "step": "2"}  # Segment's step number, as the contract's string
    assert props[4] == {"cart_id": "co-1", "step": "payment"}
    assert props[5] == {"rating": 2, "text": "Itchy.", "url": "https://shop.example/p/sweater"}
    assert props[6] == {"chat_id": "chat-1"}
    assert props[7] == {"chat_id": "chat-1", "sender": "customer", "text": "Hello?"}
    assert props[8] == {"chat_id": "chat-1", "sender": "agent", "text": "Hi!"}
    assert props[10] == {"url": "https://shop.example/p/sweater", "dwell_ms": 3500}
    assert {e["session_id"] for e in events} == {"1763806000000"}
    # No device time in the messages: the arrival.
    assert {e["occurred_at"] for e in events} == {"2026-11-22T10:30:00.000Z"}


def test_the_order_completed_example_names_order_and_checkout():
    event = one(SEGMENT_ORDER_COMPLETED)
    assert event["type"] == "order_completed"
    assert event["properties"] == {
        "order_id": "50314b8e9bcf000000000000",
        "cart_id": "fksdjfsdjfisjf9sdfjsd9f",
        "value": 27.5,
        "currency": "USD",
    }


def test_skew_correction_takes_the_device_clock_error_out():
    # The device's clock is 30 minutes fast: it stamped 10:00:00 and sent 5 s later at 10:00:05;
    # the message arrived at 09:30:02.500 by the server's clock.
    message = track("Product Added", timestamp="2026-11-22T10:00:00.000Z", sentAt="2026-11-22T10:00:05.000Z")
    event = one(message, received=at("2026-11-22T09:30:02.500Z"))
    assert event["occurred_at"] == "2026-11-22T09:29:57.500Z"


def test_original_timestamp_is_the_device_time_when_both_are_given():
    # A message relayed by Segment: timestamp already corrected, originalTimestamp the device's.
    message = track(
        "Product Added",
        originalTimestamp="2026-11-22T10:00:00.000Z",
        timestamp="2026-11-22T09:29:57.500Z",
        sentAt="2026-11-22T10:00:05.000Z",
        receivedAt="2026-11-22T09:30:02.500Z",
    )
    assert one(message)["occurred_at"] == "2026-11-22T09:29:57.500Z"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"timestamp": "2026-11-22T08:00:00Z"}, "2026-11-22T08:00:00.000Z"),
        ({"originalTimestamp": "2026-11-22T08:00:01+01:00"}, "2026-11-22T07:00:01.000Z"),
        ({"timestamp": "2026-11-22T08:00:00"}, "2026-11-22T08:00:00.000Z"),  # no offset: UTC
        ({}, "2026-11-22T10:30:00.000Z"),
        ({"sentAt": "2026-11-22T08:00:00Z"}, "2026-11-22T10:30:00.000Z"),  # nothing to correct
    ],
)
def test_without_a_sent_time_the_device_time_is_taken_as_given(fields, expected):
    assert one(track("Product Added", **fields))["occurred_at"] == expected


def test_the_batch_sent_at_applies_unless_a_message_has_its_own():
    batch = {
        "sentAt": "2026-11-22T10:00:10.000Z",
        "batch": [
            track("Product Added", timestamp="2026-11-22T10:00:00.000Z", messageId="a"),
            track(
                "Product Added",
                timestamp="2026-11-22T10:00:00.000Z",
                sentAt="2026-11-22T10:00:01.000Z",
                messageId="b",
            ),
        ],
    }
    first, second = valid(segment.convert(batch, at("2026-11-22T10:00:20.000Z")))
    assert first["occurred_at"] == "2026-11-22T10:00:10.000Z"
    assert second["occurred_at"] == "2026-11-22T10:00:19.000Z"


def test_a_message_context_wins_over_the_batch_context_member_by_member():
    batch = {
        "context": {"page": {"url": "https://shop.example/a", "referrer": "https://search.example/"}},
        "batch": [
            {
                "type": "page",
                "messageId": "p1",
                "anonymousId": "v",
                "context": {"page": {"url": "https://b/"}},
            },
        ],
    }
    [event] = valid(segment.convert(batch, NOW))
    assert event["properties"] == {"url": "https://b/", "referrer": "https://search.example/"}


def test_one_bad_message_does_not_sink_its_batch():
    batch = {
        "batch": [
            track("Product Added", messageId="ok-1"),
            {"type": "track", "event": "Product Added", "messageId": "no-ids"},
            track("Product Added", messageId="ok-2", timestamp="last tuesday"),
            "not a message",
            track("Product Added", messageId="ok-3"),
        ]
    }
    out = segment.convert(batch, NOW)
    assert [e["event_id"] for e in valid(out)] == ["ok-1", "ok-3"]
    assert out.items == ["batch[0]", "batch[4]"]
    assert reasons(out) == [
        ("batch[1]", "missing_field"),
        ("batch[2]", "bad_timestamp"),
        ("batch[3]", "bad_payload"),
    ]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("a string", "bad_payload"),
        ({"batch": {"type": "track"}}, "bad_payload"),
        ({"batch": [], "context": "x"}, "bad_payload"),
        ({"event": "Product Added", "anonymousId": "v"}, "missing_field"),  # no type, no endpoint
        (track("Product Added", anonymousId=None), "missing_field"),
        (track("Product Added", userId={"id": 1}), "bad_payload"),
        (track("Product Added", properties=["x"]), "bad_payload"),
        (track(None), "missing_field"),
        (track(42), "bad_payload"),
        (track("Product Teleported"), "unmapped_event"),
        (track("Product Added", timestamp=1700000000), "bad_timestamp"),
        (track("Product Added", timestamp="2026-13-40T00:00:00Z"), "bad_timestamp"),
        (track("Product Added", timestamp="2026-11-22T10:00:00Z", sentAt="never"), "bad_timestamp"),
        (
            track("Product Added", timestamp="0001-01-01T00:00:00Z", sentAt="9999-12-31T00:00:00Z"),
            "bad_timestamp",
        ),
        (track("Product Added", {"value": {"amount": 3}}), "bad_property"),
        ({"type": "screen", "name": "Home", "anonymousId": "v", "messageId": "s"}, "unmapped_event"),
        ({"type": "group", "groupId": "g", "userId": "u", "messageId": "g"}, "no_touchpoint"),
        ({"type": "teleport", "userId": "u", "messageId": "t"}, "unmapped_event"),
    ],
)
def test_bad_messages_are_rejected_with_their_reason(payload, reason):
    out = segment.convert(payload, NOW)
    assert out.events == []
    assert reasons(out) == [("", reason)]
    assert out.rejections[0].error


def test_a_derived_event_id_ignores_how_the_message_travelled():
    message = track("Product Added", {"price": 3}, messageId=None, timestamp="2026-11-22T10:00:00Z")
    first = one(message | {"sentAt": "2026-11-22T10:00:01Z"})["event_id"]
    again = one(message | {"sentAt": "2026-11-22T10:00:09Z"})["event_id"]
    other = one(message | {"properties": {"price": 4}})["event_id"]
    assert first == again != other


def test_the_endpoint_kind_stands_in_for_a_missing_type_only():
    event = one({"event": "Product Added", "anonymousId": "v", "messageId": "x"}, kind="track")
    assert event["type"] == "cart_add"
    page = one(SEGMENT_PAGE, kind="track")  # the message's own type wins
    assert page["type"] == "page_view"


def test_numbers_as_ids_become_strings():
    event = one(track("Product Added", userId=12345, anonymousId=None))
    assert event["customer_id"] == "12345"


def test_conversion_is_deterministic_and_leaves_the_payload_alone():
    payload = copy.deepcopy(SEGMENT_HTTP_BATCH) | {"batch": [SEGMENT_PAGE, SEGMENT_ORDER_COMPLETED]}
    before = copy.deepcopy(payload)
    first, second = segment.convert(payload, NOW), segment.convert(payload, NOW)
    assert first == second
    assert payload == before
