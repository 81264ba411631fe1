"""Snowplow tracker-protocol events as touchpoints: GET and POST page views, link clicks, structured
events, mobile sessions, the derived timestamp and bad input."""

from __future__ import annotations

import copy

import orjson
import pytest

from motwatch.adapters import check_payload, snowplow
from motwatch.adapters.mapping import Mappings, rule
from tests.adapters.examples import (
    CLIENT_SESSION_CONTEXTS,
    LINK_CLICK,
    SNOWPLOW_POST,
    at,
    b64url,
    reasons,
    snowplow_get,
    valid,
)

# The collector's time: 1763806503000 ms.
NOW = at("2025-11-22T10:15:03Z")
PAGE = "https://www.example.com/products/cosy-sweater"


def event(**params):
    """An event's parameters made for a test: ids, a page, and what is given."""
    base = {"eid": "e-1", "duid": "visitor-1", "url": PAGE, "p": "web"}
    return {k: v for k, v in (base | params).items() if v is not None}


def one(payload, received=NOW, **kw):
    """The single touchpoint a request converts to (the test fails on a rejection)."""
    out = snowplow.convert(payload, received, **kw)
    assert out.rejections == []
    [made] = valid(out)
    return made


def test_the_post_page_view_example_at_the_derived_time():
    made = one(SNOWPLOW_POST)
    assert made["type"] == "page_view" and made["channel"] == "web"
    assert made["event_id"] == "4f8e1d64-0a0f-4a0d-9a7e-2d1e0f9f7b11"
    assert made["anonymous_id"] == "8b0c1d7e-5b0f-4b9c-8a25-4b8e50f6a2d4"
    assert made["session_id"] == "0e2f0e87-4c0a-4b55-a5a6-4b2f9fa1c5a3"
    assert "customer_id" not in made
    assert made["properties"] == {"url": PAGE, "referrer": "https://www.google.com/"}
    # collector 10:15:03.000 - (stm 10:15:02.000 - dtm 10:15:00.000)
    assert made["occurred_at"] == "2025-11-22T10:15:01.000Z"


def test_the_get_example_without_a_sent_time_is_at_the_collector_time():
    made = one(snowplow_get())
    assert made["type"] == "page_view"
    assert made["properties"]["url"] == PAGE
    assert made["occurred_at"] == "2025-11-22T10:15:03.000Z"


def test_the_true_timestamp_wins():
    made = one(event(e="pv", ttm="1763806400000", dtm="1763806500000", stm="1763806502000"))
    assert made["occurred_at"] == "2025-11-22T10:13:20.000Z"


def test_a_device_clock_an_hour_slow_is_corrected():
    hour = 3_600_000
    made = one(event(e="pv", dtm=str(1763806500000 - hour), stm=str(1763806502000 - hour)))
    assert made["occurred_at"] == "2025-11-22T10:15:01.000Z"


@pytest.mark.parametrize("field", ["ue_pr", "ue_px"])
def test_a_link_click_plain_or_base64(field):
    value = orjson.dumps(LINK_CLICK).decode() if field == "ue_pr" else b64url(LINK_CLICK)
    made = one(event(e="ue", **{field: value}))
    assert made["type"] == "link_click"
    assert made["properties"] == {"url": PAGE, "target_url": "https://www.example.com/returns"}


def test_a_link_click_in_standard_padded_base64_too():
    import base64

    value = base64.b64encode(orjson.dumps(LINK_CLICK)).decode()
    assert one(event(e="ue", ue_px=value))["type"] == "link_click"


def test_a_mobile_event_takes_its_ids_from_the_client_session_context():
    made = one(event(e="pv", duid=None, cx=b64url(CLIENT_SESSION_CONTEXTS), url="app://screens/home"))
    assert made["anonymous_id"] == "a5b2c6de-1f9c-4e2b-9b0e-2f3f6d0c7e11"
    assert made["session_id"] == "c1f0b8aa-3c5d-4d7e-8e91-0f0a6b7d2c33"
    assert made["properties"] == {"url": "app://screens/home"}


def test_a_logged_in_event_is_the_customers():
    made = one(event(e="pv", uid="cust-9"))
    assert (made["customer_id"], made["anonymous_id"]) == ("cust-9", "visitor-1")


def test_a_transaction_is_an_order():
    made = one(event(e="tr", tr_id="order-5", tr_tt="49.90", tr_cu="EUR", tr_af="web"))
    assert made["type"] == "order_completed" and made["channel"] == "checkout"
    assert made["properties"] == {"order_id": "order-5", "value": 49.9, "currency": "EUR"}


def test_structured_events_by_category_and_action_through_the_shop_mapping():
    payment = event(e="se", se_ca="checkout", se_ac="payment_failed", se_la="cart-3", se_pr="card_declined")
    # Its action is a motwatch type, but nothing says where the cart id is: the validator refuses it.
    checked = check_payload("snowplow", payment, NOW)
    assert checked.accepted == []
    assert [(r.reason, r.error) for r in checked.rejected] == [
        ("missing_field", "properties.cart_id is required")
    ]
    mappings = Mappings(
        {"snowplow": {"checkout/payment_failed": rule("payment_failed", cart_id="label", reason="property")}}
    )
    made = one(payment, mappings=mappings)
    assert made["properties"] == {"cart_id": "cart-3", "reason": "card_declined"}


def test_a_structured_identify_with_both_ids():
    made = one(event(e="se", se_ca="auth", se_ac="identify", uid="cust-1"))
    assert made["type"] == "identify"
    assert (made["customer_id"], made["anonymous_id"]) == ("cust-1", "visitor-1")


@pytest.mark.parametrize(("kind", "reason"), [("pp", "no_touchpoint"), ("ti", "no_touchpoint")])
def test_pings_and_items_carry_no_touchpoint(kind, reason):
    out = snowplow.convert(event(e=kind, pp_mix="0", pp_max="120"), NOW)
    assert out.events == [] and reasons(out) == [("", reason)]


def test_one_bad_event_does_not_sink_the_others_of_a_post():
    payload = copy.deepcopy(SNOWPLOW_POST)
    payload["data"] = [
        event(e="pv", eid="a"),
        event(e="pv", eid=None),
        event(e="pp", eid="c"),
        ["not", "parameters"],
        event(e="pv", eid="e"),
    ]
    out = snowplow.convert(payload, NOW)
    assert [e["event_id"] for e in valid(out)] == ["a", "e"]
    assert out.items == ["data[0]", "data[4]"]
    assert reasons(out) == [
        ("data[1]", "missing_field"),
        ("data[2]", "no_touchpoint"),
        ("data[3]", "bad_payload"),
    ]


OTHER_SCHEMA = {
    "schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
    "data": {"schema": "iglu:com.acme/wishlist_add/jsonschema/1-0-0", "data": {"sku": "x"}},
}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("e=pv&eid=1", "bad_payload"),
        (
            {"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4", "data": {}},
            "bad_payload",
        ),
        (event(e=None), "missing_field"),
        (event(e="pv", eid=None), "missing_field"),
        (event(e="pv", duid=None), "missing_field"),
        (event(e="pv", uid=["u"]), "bad_payload"),
        (event(e="pv", dtm="yesterday", stm="1763806502000"), "bad_timestamp"),
        (event(e="pv", ttm="99999999999999999"), "bad_timestamp"),
        (event(e="ue"), "missing_field"),
        (event(e="ue", ue_px="***"), "bad_payload"),
        (event(e="ue", ue_px=b64url(LINK_CLICK)[:-3] + "A"), "bad_payload"),
        (event(e="ue", ue_pr="{not json"), "bad_payload"),
        (event(e="ue", ue_pr='{"schema": "iglu:x", "data": {}}'), "bad_payload"),
        (event(e="ue", ue_pr=orjson.dumps(OTHER_SCHEMA).decode()), "unmapped_event"),
        (event(e="pv", cx="@@@"), "bad_payload"),
        (event(e="pv", co='{"schema": "iglu:a/b/c/d", "data": "x"}'), "bad_payload"),
        (event(e="se", se_ca="video"), "missing_field"),
        (event(e="se", se_ca="video", se_ac="play"), "unmapped_event"),
        (event(e="ad"), "unmapped_event"),
    ],
)
def test_bad_events_are_rejected_with_their_reason(payload, reason):
    out = snowplow.convert(payload, NOW)
    assert out.events == []
    assert reasons(out) == [("", reason)]


def test_numbers_sent_as_strings_become_the_contract_types():
    made = one(event(e="se", se_ca="shop", se_ac="cart_add", se_va="12.50"))
    assert made["properties"] == {"value": 12.5}


def test_conversion_is_deterministic():
    before = copy.deepcopy(SNOWPLOW_POST)
    assert snowplow.convert(SNOWPLOW_POST, NOW) == snowplow.convert(before, NOW)
    assert before == SNOWPLOW_POST
