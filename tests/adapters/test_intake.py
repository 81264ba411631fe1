"""The one intake path: a vendor message in, validated touchpoint bytes and every rejection out."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest

from motwatch.adapters import (
    REASONS,
    VENDORS,
    Mappings,
    check,
    check_message,
    check_payload,
    convert,
    convert_message,
)
from motwatch.adapters.base import Converted
from motwatch.adapters.intake import CONVERTERS
from motwatch.core.deadletter import dead_letter_record
from motwatch.core.validation import REASONS as VALIDATION_REASONS
from motwatch.core.validation import validate_touchpoint
from motwatch.settings import Limits
from tests.adapters.examples import (
    CLOUDEVENT_CHECKOUT,
    GA4_PURCHASE,
    SEGMENT_PAGE,
    SNOWPLOW_POST,
    at,
    snowplow_get,
)

NOW = at("2026-11-22T10:16:00Z")
EXAMPLES = {
    "segment": SEGMENT_PAGE,
    "snowplow": SNOWPLOW_POST,
    "ga4": GA4_PURCHASE,
    "cloudevents": CLOUDEVENT_CHECKOUT,
}


def test_every_vendor_has_a_converter():
    assert tuple(CONVERTERS) == VENDORS


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_vendor_example_comes_out_as_the_bytes_to_produce(vendor):
    checked = check_message(vendor, orjson.dumps(EXAMPLES[vendor]), NOW)
    assert checked.rejected == []
    [accepted] = checked.accepted
    again = validate_touchpoint(accepted.raw)
    assert again == accepted.event
    assert accepted.journey_key == (accepted.event.customer_id or accepted.event.anonymous_id)
    # Bytes or parsed, the same outcome.
    assert check_payload(vendor, EXAMPLES[vendor], NOW) == checked


def test_a_segment_endpoint_names_the_type_of_messages_without_one():
    message = {"event": "Product Added", "messageId": "m", "anonymousId": "v"}
    assert [r.reason for r in check_payload("segment", message, NOW).rejected] == ["missing_field"]
    checked = check_message("segment", orjson.dumps(message), NOW, kind="track")
    assert [a.event.type for a in checked.accepted] == ["cart_add"]


def test_the_snowplow_get_query_through_check_payload():
    [accepted] = check_payload("snowplow", snowplow_get(), NOW).accepted
    assert accepted.event.type == "page_view"


def test_rejections_of_the_adapter_and_of_the_validator_keep_their_place():
    batch = {
        "batch": [
            {"type": "page", "messageId": "p1", "anonymousId": "v", "properties": {"url": "https://a/"}},
            {
                "type": "track",
                "event": "Product Reviewed",
                "messageId": "r",
                "userId": "u",
                "properties": {"rating": 9},
            },
            {"type": "page", "messageId": "p2", "anonymousId": "v"},
            {"type": "track", "event": "Song Played", "messageId": "s", "userId": "u"},
        ]
    }
    checked = check_payload("segment", batch, NOW)
    assert [(a.item, a.event.event_id) for a in checked.accepted] == [("batch[0]", "p1")]
    assert [(r.item, r.reason) for r in checked.rejected] == [
        ("batch[3]", "unmapped_event"),
        ("batch[1]", "bad_property"),
        ("batch[2]", "missing_field"),
    ]
    assert checked.rejected[1].error.startswith("properties.rating")
    assert checked.rejected[2].describe() == "batch[2]: properties.url is required"
    letter = dead_letter_record(b"{}", checked.rejected[2].as_rejection(), {"http": "/v1/batch"})
    assert (letter["reason"], letter["error"]) == ("missing_field", "batch[2]: properties.url is required")


def test_the_future_skew_is_checked_against_the_arrival_when_given():
    message = {"type": "page", "messageId": "p", "anonymousId": "v", "properties": {"url": "https://a/"}}
    message["timestamp"] = "2026-11-22T11:16:00Z"  # an hour ahead of the arrival, no sentAt to correct it
    assert check_payload("segment", message, NOW).accepted
    checked = check_payload("segment", message, NOW, max_future_skew_s=300)
    assert [r.reason for r in checked.rejected] == ["future_timestamp"]


def test_the_limits_apply_to_what_the_adapter_made():
    message = {
        "type": "page",
        "messageId": "p",
        "anonymousId": "v",
        "properties": {"url": "https://a/" + "x" * 99},
    }
    checked = check_payload("segment", message, NOW, limits=Limits(max_string_length=64))
    assert [r.reason for r in checked.rejected] == ["string_too_long"]


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b""])
def test_a_body_that_is_not_json_is_one_rejection(vendor, body):
    out = convert_message(vendor, body, NOW)
    assert out.events == [] and [r.reason for r in out.rejections] == ["invalid_json"]


def test_a_number_json_cannot_hold_is_a_bad_property():
    converted = Converted()
    converted.add({"event_id": "e", "properties": {"value": 2**70}}, "x")
    assert [(r.item, r.reason) for r in check(converted, NOW).rejected] == [("x", "bad_property")]


def test_a_bug_in_an_adapter_rejects_the_message_and_says_where():
    class Broken(Mappings):
        def find(self, vendor, *names):
            raise KeyError("the table is gone")

    track = {"type": "track", "event": "Product Added", "messageId": "t", "anonymousId": "v"}
    checked = check_payload("segment", {"batch": [track, SEGMENT_PAGE]}, NOW, Broken())
    # The page needs no table: only the track fails, and its neighbour goes through.
    assert [(r.item, r.reason) for r in checked.rejected] == [("batch[0]", "internal_error")]
    assert "KeyError" in checked.rejected[0].error
    assert [a.item for a in checked.accepted] == ["batch[1]"]


def test_a_bug_outside_any_one_event_rejects_the_whole_message(monkeypatch):
    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setitem(CONVERTERS, "ga4", broken)
    checked = check_payload("ga4", GA4_PURCHASE, NOW)
    assert [(r.item, r.reason) for r in checked.rejected] == [("", "internal_error")]
    assert "RuntimeError: boom" in checked.rejected[0].error


def test_callers_mistakes_raise():
    with pytest.raises(ValueError, match="unknown vendor"):
        convert("mixpanel", {}, NOW)
    with pytest.raises(ValueError, match="unknown vendor"):
        convert_message("mixpanel", b"{", NOW)
    with pytest.raises(ValueError, match="aware"):
        convert("segment", SEGMENT_PAGE, datetime(2026, 11, 22, 10, 16))


def test_every_reason_is_documented():
    assert set(REASONS) >= {"invalid_json", "bad_payload", "missing_field", "bad_timestamp", "unmapped_event"}
    # The adapters' codes that the validator has too mean the same thing there.
    assert {"invalid_json", "missing_field", "bad_timestamp", "bad_property", "internal_error"} <= set(
        VALIDATION_REASONS
    )
