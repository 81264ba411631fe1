"""GA4 Measurement Protocol requests as touchpoints: the recommended events, times, derived ids, bad input."""

from __future__ import annotations

import copy

import pytest

from motwatch.adapters import ga4
from tests.adapters.examples import GA4_PURCHASE, GA4_TUTORIAL, at, reasons, valid

NOW = at("2025-11-22T10:20:00Z")
PAGE = "https://shop.example/p/tee"


def request(*events, **fields):
    """A request made for a test: a client id and the given events (name, params)."""
    body = {"client_id": "555.777", "timestamp_micros": 1763806500000000}
    return body | {"events": [{"name": n, "params": p} for n, p in events]} | fields


def test_the_tutorial_example_is_unmapped():
    out = ga4.convert(GA4_TUTORIAL, NOW)
    assert out.events == []
    assert reasons(out) == [("events[0]", "unmapped_event")]
    assert "tutorial_begin" in out.rejections[0].error


def test_the_purchase_example_is_an_order_of_the_customer():
    [made] = valid(ga4.convert(GA4_PURCHASE, NOW))
    assert made["type"] == "order_completed" and made["channel"] == "checkout"
    assert (made["customer_id"], made["anonymous_id"]) == ("customer-42", "123456.7654321")
    assert made["properties"] == {"order_id": "T_12345", "value": 30.03, "currency": "USD"}
    assert made["occurred_at"] == "2025-11-22T10:15:00.123Z"
    assert made["event_id"].startswith("ga4-")


def test_the_recommended_events_of_a_visit():
    body = request(
        (
            "page_view",
            {"page_location": PAGE, "page_referrer": "https://search.example/", "session_id": 1763},
        ),
        ("view_item", {"page_location": PAGE, "items": [{"item_id": "SKU_1"}], "session_id": 1763}),
        ("add_to_cart", {"currency": "USD", "value": 7.77, "items": [{"item_id": "SKU_1"}]}),
        ("begin_checkout", {"session_id": 1763, "value": 7.77, "currency": "USD"}),
        ("add_shipping_info", {"session_id": 1763, "shipping_tier": "Ground"}),
        ("add_payment_info", {"session_id": 1763, "payment_type": "Credit Card"}),
        ("search", {"search_term": "t-shirts"}),
        ("login", {"method": "Google"}),
        user_id="cust-5",
    )
    made = valid(ga4.convert(body, NOW))
    assert [(e["type"], e["channel"]) for e in made] == [
        ("page_view", "web"),
        ("page_view", "web"),
        ("cart_add", "web"),
        ("checkout_started", "checkout"),
        ("checkout_step", "checkout"),
        ("checkout_step", "checkout"),
        ("search", "web"),
        ("identify", "web"),
    ]
    assert made[0]["properties"] == {"url": PAGE, "referrer": "https://search.example/"}
    assert made[0]["session_id"] == "1763"
    assert made[1]["properties"] == {"url": PAGE, "page_category": "product", "product_id": "SKU_1"}
    assert made[2]["properties"] == {"product_id": "SKU_1", "value": 7.77, "currency": "USD"}
    # GA4 names no cart: its session stands in, so the steps and the checkout share one.
    assert made[3]["properties"] == {"cart_id": "1763", "value": 7.77, "currency": "USD"}
    assert made[4]["properties"] == {"cart_id": "1763", "step": "shipping"}
    assert made[5]["properties"] == {"cart_id": "1763", "step": "payment"}
    assert made[6]["properties"] == {"query": "t-shirts"}
    assert (made[7]["customer_id"], made[7]["anonymous_id"]) == ("cust-5", "555.777")
    assert len({e["event_id"] for e in made}) == len(made)


def test_an_event_time_overrides_the_request_time():
    body = request(("page_view", {"page_location": PAGE}), ("page_view", {"page_location": PAGE}))
    body["events"][0]["timestamp_micros"] = 1763806400000000
    body["events"][1]["params"]["timestamp_micros"] = "1763806450000000"
    first, second = valid(ga4.convert(body, NOW))
    assert first["occurred_at"] == "2025-11-22T10:13:20.000Z"
    assert second["occurred_at"] == "2025-11-22T10:14:10.000Z"
    without = valid(ga4.convert(request(("page_view", {"page_location": PAGE}), timestamp_micros=None), NOW))
    assert without[0]["occurred_at"] == "2025-11-22T10:20:00.000Z"


def test_event_ids_repeat_for_a_resent_request_and_differ_otherwise():
    body = request(("page_view", {"page_location": PAGE}), ("page_view", {"page_location": PAGE}))
    ids = [e["event_id"] for e in ga4.convert(body, NOW).events]
    assert ids == [e["event_id"] for e in ga4.convert(copy.deepcopy(body), at("2025-11-22T11:00:00Z")).events]
    assert ids[0] != ids[1]  # the same event twice in one request: two events
    other_client = [e["event_id"] for e in ga4.convert(body | {"client_id": "1.2"}, NOW).events]
    assert set(ids).isdisjoint(other_client)
    # Without a timestamp the arrival is the time, and a resend is new.
    untimed = request(("page_view", {"page_location": PAGE}), timestamp_micros=None)
    assert (
        ga4.convert(untimed, NOW).events[0]["event_id"]
        != ga4.convert(untimed, at("2025-11-22T10:20:01Z")).events[0]["event_id"]
    )


def test_an_app_instance_id_is_the_anonymous_id():
    body = request(("purchase", {"transaction_id": "T1"}), client_id=None, app_instance_id="a1b2c3")
    [made] = valid(ga4.convert(body, NOW))
    assert made["anonymous_id"] == "a1b2c3"


def test_one_bad_event_does_not_sink_the_request():
    body = request(
        ("purchase", {"transaction_id": "T1"}),
        ("purchase", "not params"),
        ("mystery", {}),
        ("purchase", {"transaction_id": "T2"}),
    )
    body["events"].insert(2, {"params": {}})
    out = ga4.convert(body, NOW)
    assert [e["properties"]["order_id"] for e in valid(out)] == ["T1", "T2"]
    assert out.items == ["events[0]", "events[4]"]
    assert reasons(out) == [
        ("events[1]", "bad_payload"),
        ("events[2]", "missing_field"),
        ("events[3]", "unmapped_event"),
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "bad_payload"),
        ({"events": [{"name": "purchase"}]}, "missing_field"),
        ({"client_id": ["x"], "events": []}, "bad_payload"),
        ({"client_id": "x"}, "missing_field"),
        ({"client_id": "x", "events": {"name": "purchase"}}, "bad_payload"),
        ({"client_id": "x", "timestamp_micros": "soon", "events": []}, "bad_timestamp"),
        ({"client_id": "x", "timestamp_micros": 10**30, "events": []}, "bad_timestamp"),
    ],
)
def test_a_request_that_cannot_be_read_is_one_rejection(body, reason):
    out = ga4.convert(body, NOW)
    assert out.events == [] and reasons(out) == [("", reason)]


def test_a_bad_event_time_rejects_that_event():
    body = request(("purchase", {"transaction_id": "T1", "timestamp_micros": True}))
    assert reasons(ga4.convert(body, NOW)) == [("events[0]", "bad_timestamp")]
