"""CloudEvents 1.0 as touchpoints: structured, batch and Kafka binary mode, type names, bad input."""

from __future__ import annotations

import base64
import copy

import orjson
import pytest

from motwatch.adapters import check_message, cloudevents
from motwatch.adapters.mapping import Mappings, rule
from tests.adapters.examples import (
    CLOUDEVENT_CHECKOUT,
    CLOUDEVENT_KAFKA_AVRO_HEADERS,
    CLOUDEVENT_SPEC_EXAMPLE,
    at,
    reasons,
    valid,
)

NOW = at("2026-11-22T10:16:00Z")


def one(payload, **kw):
    """The single touchpoint a structured event converts to (the test fails on a rejection)."""
    out = cloudevents.convert(payload, NOW, **kw)
    assert out.rejections == []
    [made] = valid(out)
    return made


def test_the_spec_example_is_unmapped():
    out = cloudevents.convert(CLOUDEVENT_SPEC_EXAMPLE, NOW)
    assert out.events == [] and reasons(out) == [("", "unmapped_event")]
    assert "com.example.someevent" in out.rejections[0].error


def test_a_motwatch_type_carries_the_touchpoint_fields_in_its_data():
    made = one(CLOUDEVENT_CHECKOUT)
    assert made == {
        "event_id": "/shop/checkout|c-1001",
        "occurred_at": "2026-11-22T10:15:03.120Z",
        "customer_id": "cust-7",
        "session_id": "s-9",
        "channel": "checkout",
        "type": "checkout_started",
        "properties": {"cart_id": "cart-77", "value": 129.5, "currency": "EUR"},
    }


def test_the_same_id_from_two_sources_is_two_events():
    other = CLOUDEVENT_CHECKOUT | {"source": "/shop/other"}
    assert one(CLOUDEVENT_CHECKOUT)["event_id"] != one(other)["event_id"]


def test_a_reverse_dns_type_ending_in_a_motwatch_type():
    made = one(CLOUDEVENT_CHECKOUT | {"type": "com.example.touchpoint.checkout_started"})
    assert made["type"] == "checkout_started"


def test_a_shop_type_through_the_mapping():
    event = CLOUDEVENT_CHECKOUT | {
        "type": "com.example.checkout.started",
        "data": {"anonymous_id": "v-1", "cart": {"id": "cart-5", "total": 10}},
    }
    assert reasons(cloudevents.convert(event, NOW)) == [("", "unmapped_event")]
    table = {"com.example.checkout.started": rule("checkout_started", cart_id="cart.id", value="cart.total")}
    made = one(event, mappings=Mappings({"cloudevents": table}))
    assert made["properties"] == {"cart_id": "cart-5", "value": 10}


def test_the_data_may_name_the_channel_and_the_time():
    event = CLOUDEVENT_CHECKOUT | {
        "type": "chat_started",
        "data": {"anonymous_id": "v", "channel": "support", "occurred_at": "2026-11-22T10:00:00+01:00"},
    }
    del event["time"]
    event["data"]["properties"] = {"chat_id": "ch-1"}
    made = one(event)
    assert made["channel"] == "support" and made["occurred_at"] == "2026-11-22T09:00:00.000Z"


def test_without_a_time_the_arrival():
    event = {k: v for k, v in CLOUDEVENT_CHECKOUT.items() if k != "time"}
    assert one(event)["occurred_at"] == "2026-11-22T10:16:00.000Z"


def test_data_base64_in_structured_mode():
    event = {k: v for k, v in CLOUDEVENT_CHECKOUT.items() if k != "data"}
    event["data_base64"] = base64.b64encode(orjson.dumps(CLOUDEVENT_CHECKOUT["data"])).decode()
    assert one(event) == one(CLOUDEVENT_CHECKOUT)


def test_a_batch_accounts_for_every_event():
    batch = [CLOUDEVENT_CHECKOUT, CLOUDEVENT_SPEC_EXAMPLE, 7, CLOUDEVENT_CHECKOUT | {"id": "c-1002"}]
    out = cloudevents.convert(batch, NOW)
    assert [e["event_id"] for e in valid(out)] == ["/shop/checkout|c-1001", "/shop/checkout|c-1002"]
    assert out.items == ["[0]", "[3]"]
    assert reasons(out) == [("[1]", "unmapped_event"), ("[2]", "bad_payload")]


def binary_headers(event):
    """Kafka headers of a structured event's attributes, as the Kafka binding writes binary mode."""
    headers = [(f"ce_{k}", str(v).encode()) for k, v in event.items() if k not in ("data", "datacontenttype")]
    return [*headers, ("content-type", event["datacontenttype"].encode())]


def test_binary_mode_is_the_same_touchpoint_as_structured_mode():
    headers = binary_headers(CLOUDEVENT_CHECKOUT)
    assert cloudevents.is_binary(headers) and not cloudevents.is_binary([("content-type", b"x")])
    body = orjson.dumps(CLOUDEVENT_CHECKOUT["data"])
    [made] = valid(cloudevents.convert_binary(headers, body, NOW))
    assert made == one(CLOUDEVENT_CHECKOUT)
    # Through the one intake path, as the worker's Kafka input will call it; HTTP's ce- headers too.
    checked = check_message("cloudevents", body, NOW, headers=dict(headers))
    assert [a.event.event_id for a in checked.accepted] == ["/shop/checkout|c-1001"]
    http = {k.replace("ce_", "Ce-"): v.decode() for k, v in headers}
    assert check_message("cloudevents", body, NOW, headers=http).accepted[0].raw == checked.accepted[0].raw


def test_the_kafka_binding_example_has_avro_data():
    out = cloudevents.convert_binary(CLOUDEVENT_KAFKA_AVRO_HEADERS, b"\x00\x02avro", NOW)
    assert reasons(out) == [("", "bad_payload")]
    assert "application/avro" in out.rejections[0].error


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ([("ce_specversion", b"1.0"), ("ce_type", b"page_view")], b"{}", "missing_field"),
        ([*CLOUDEVENT_KAFKA_AVRO_HEADERS[:5], ("ce_subject", b"\xff")], b"{}", "bad_payload"),
        (CLOUDEVENT_KAFKA_AVRO_HEADERS[:5], b"{not json", "bad_payload"),
        (CLOUDEVENT_KAFKA_AVRO_HEADERS[:5], b"", "unmapped_event"),
    ],
)
def test_bad_binary_events(headers, body, reason):
    assert reasons(cloudevents.convert_binary(headers, body, NOW)) == [("", reason)]


def without(name):
    return {k: v for k, v in CLOUDEVENT_CHECKOUT.items() if k != name}


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("an event", "bad_payload"),
        (CLOUDEVENT_CHECKOUT | {"specversion": "0.3"}, "bad_payload"),
        (without("specversion"), "missing_field"),
        (without("id"), "missing_field"),
        (without("source"), "missing_field"),
        (without("type"), "missing_field"),
        (CLOUDEVENT_CHECKOUT | {"id": 1001}, "bad_payload"),
        (CLOUDEVENT_CHECKOUT | {"time": "2026-11-22 10:15"}, "bad_timestamp"),
        (CLOUDEVENT_CHECKOUT | {"time": "2026-11-22T10:15:03"}, "bad_timestamp"),
        (CLOUDEVENT_CHECKOUT | {"time": 1763806500}, "bad_timestamp"),
        (CLOUDEVENT_CHECKOUT | {"data": ["cust-7"]}, "bad_payload"),
        (CLOUDEVENT_CHECKOUT | {"data": {"properties": {"cart_id": "c"}}}, "missing_field"),
        (CLOUDEVENT_CHECKOUT | {"data": {"customer_id": "c", "channel": 5}}, "bad_payload"),
        (CLOUDEVENT_CHECKOUT | {"data": {"customer_id": "c", "properties": "x"}}, "bad_payload"),
        (CLOUDEVENT_CHECKOUT | {"datacontenttype": "text/xml", "data": "<cart/>"}, "bad_payload"),
        (without("data") | {"data_base64": "%%%"}, "bad_payload"),
        (without("data") | {"data_base64": 5}, "bad_payload"),
    ],
)
def test_bad_structured_events(event, reason):
    out = cloudevents.convert(event, NOW)
    assert out.events == [] and reasons(out) == [("", reason)]


def test_a_long_source_and_id_make_a_short_stable_event_id():
    event = CLOUDEVENT_CHECKOUT | {"source": "https://shop.example/" + "s" * 200}
    first = one(event)["event_id"]
    assert len(first) <= 128 and first.startswith("ce-") and one(copy.deepcopy(event))["event_id"] == first
