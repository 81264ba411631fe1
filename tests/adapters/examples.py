"""Vendor payloads as each vendor documents them (written out here), and helpers to check what adapters make.

Segment's spec and HTTP API examples, a Snowplow tracker-protocol page view
(GET query and POST payload_data), a link click and a mobile client
session, GA4 Measurement Protocol requests, and the CloudEvents spec's JSON
and Kafka binary examples.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson

from motwatch.adapters.base import Converted
from motwatch.core.events import Touchpoint
from motwatch.core.validation import Rejection, validate_touchpoint


def at(text: str) -> datetime:
    """An aware datetime from RFC 3339 text."""
    return datetime.fromisoformat(text).astimezone(UTC)


def valid(converted: Converted) -> list[dict[str, Any]]:
    """The converted events, each checked to pass motwatch's validator (the test fails if one does not)."""
    for event in converted.events:
        result = validate_touchpoint(orjson.dumps(event))
        assert isinstance(result, Touchpoint), (event, result)
        assert not isinstance(result, Rejection)
    assert len(converted.items) == len(converted.events)
    return converted.events


def reasons(converted: Converted) -> list[tuple[str, str]]:
    """(item, reason) of every rejection, in order."""
    return [(r.item, r.reason) for r in converted.rejections]


def b64url(value: Any) -> str:
    """JSON as Snowplow trackers encode ``ue_px``/``cx``: URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


# -- Segment -------------------------------------------------------------------------

SEGMENT_PAGE = {
    "anonymousId": "507f191e810c19729de860ea",
    "channel": "browser",
    "context": {"ip": "8.8.8.8", "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_2)"},
    "integrations": {"All": True, "Mixpanel": False, "Salesforce": False},
    "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
    "name": "Home",
    "properties": {"title": "Welcome | Initech", "url": "http://www.initech.com"},
    "receivedAt": "2015-02-23T22:28:55.387Z",
    "sentAt": "2015-02-23T22:28:55.111Z",
    "timestamp": "2015-02-23T22:28:55.111Z",
    "type": "page",
    "userId": "97980cfea0067",
    "version": "1.1",
}

SEGMENT_IDENTIFY = {
    "anonymousId": "507f191e810c19729de860ea",
    "channel": "browser",
    "context": {"ip": "8.8.8.8", "userAgent": "Mozilla/5.0"},
    "integrations": {"All": False, "Mixpanel": True, "Salesforce": True},
    "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
    "receivedAt": "2015-02-23T22:28:55.387Z",
    "sentAt": "2015-02-23T22:28:55.111Z",
    "timestamp": "2015-02-23T22:28:55.111Z",
    "traits": {"name": "Peter Gibbons", "email": "peter@example.com", "plan": "premium", "logins": 5},
    "type": "identify",
    "userId": "97980cfea0067",
    "version": "1.1",
}

SEGMENT_ALIAS = {
    "anonymousId": "507f191e810c19729de860ea",
    "channel": "browser",
    "context": {"ip": "8.8.8.8", "userAgent": "Mozilla/5.0"},
    "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
    "previousId": "39239-239239-239239-23923",
    "receivedAt": "2015-02-23T22:28:55.387Z",
    "sentAt": "2015-02-23T22:28:55.111Z",
    "timestamp": "2015-02-23T22:28:55.111Z",
    "type": "alias",
    "userId": "507f191e81",
    "version": "1.1",
}

# The HTTP API's /v1/track example: no type (the endpoint says it), no messageId.
SEGMENT_HTTP_TRACK = {
    "userId": "019mr8mf4r",
    "event": "Item Purchased",
    "properties": {"name": "Leap to Conclusions Mat", "revenue": 14.99},
    "context": {"ip": "24.5.68.47"},
    "timestamp": "2012-12-02T00:30:12.984Z",
}

# The HTTP API's /v1/batch example.
SEGMENT_HTTP_BATCH = {
    "batch": [
        {
            "type": "identify",
            "userId": "019mr8mf4r",
            "traits": {"email": "jake@yahoo.com", "name": "Jake Peterson", "age": 26},
            "timestamp": "2012-12-02T00:30:08.276Z",
        },
        {
            "type": "track",
            "userId": "019mr8mf4r",
            "event": "Song Played",
            "properties": {"name": "Fallin for You", "artist": "Dierks Bentley"},
            "timestamp": "2012-12-02T00:30:12.984Z",
        },
        {
            "type": "identify",
            "userId": "971mj8mk7p",
            "traits": {"email": "cindy@example.com", "name": "Cindy Gonzalez", "age": 23},
            "timestamp": "2012-12-02T00:30:08.276Z",
        },
        {
            "type": "track",
            "userId": "971mj8mk7p",
            "event": "Song Played",
            "properties": {"name": "Get Right", "artist": "Jennifer Lopez"},
            "timestamp": "2012-12-02T00:30:12.984Z",
        },
    ],
    "context": {"device": {"type": "phone", "name": "Apple iPhone 6"}},
}

# The e-commerce spec's Order Completed example.
SEGMENT_ORDER_COMPLETED = {
    "type": "track",
    "userId": "userId123",
    "messageId": "order-completed-1",
    "event": "Order Completed",
    "timestamp": "2026-11-22T10:20:00.000Z",
    "properties": {
        "checkout_id": "fksdjfsdjfisjf9sdfjsd9f",
        "order_id": "50314b8e9bcf000000000000",
        "affiliation": "Google Store",
        "total": 27.50,
        "subtotal": 22.50,
        "revenue": 25.00,
        "shipping": 3,
        "tax": 2,
        "discount": 2.5,
        "coupon": "hasbros",
        "currency": "USD",
        "products": [
            {
                "product_id": "507f1f77bcf86cd799439011",
                "sku": "45790-32",
                "name": "Monopoly: 3rd Edition",
                "price": 19,
                "quantity": 1,
                "category": "Games",
            }
        ],
    },
}

# -- Snowplow ------------------------------------------------------------------------

SNOWPLOW_PAGE_VIEW = {
    "e": "pv",
    "url": "https://www.example.com/products/cosy-sweater",
    "page": "Cosy sweater",
    "refr": "https://www.google.com/",
    "tv": "js-3.6.0",
    "tna": "sp1",
    "aid": "shop",
    "p": "web",
    "cookie": "1",
    "cs": "UTF-8",
    "lang": "en-GB",
    "res": "1920x1080",
    "cd": "24",
    "tz": "Europe/London",
    "eid": "4f8e1d64-0a0f-4a0d-9a7e-2d1e0f9f7b11",
    "dtm": "1763806500000",
    "stm": "1763806502000",
    "vp": "1920x969",
    "ds": "1905x3546",
    "vid": "3",
    "sid": "0e2f0e87-4c0a-4b55-a5a6-4b2f9fa1c5a3",
    "duid": "8b0c1d7e-5b0f-4b9c-8a25-4b8e50f6a2d4",
}

SNOWPLOW_POST = {
    "schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
    "data": [SNOWPLOW_PAGE_VIEW],
}

# The same page view as a GET /i request's query string.
SNOWPLOW_GET_QUERY = (
    "e=pv&url=https%3A%2F%2Fwww.example.com%2Fproducts%2Fcosy-sweater&page=Cosy%20sweater"
    "&refr=https%3A%2F%2Fwww.google.com%2F&tv=js-3.6.0&tna=sp1&aid=shop&p=web"
    "&eid=4f8e1d64-0a0f-4a0d-9a7e-2d1e0f9f7b11&dtm=1763806500000&vid=3"
    "&sid=0e2f0e87-4c0a-4b55-a5a6-4b2f9fa1c5a3&duid=8b0c1d7e-5b0f-4b9c-8a25-4b8e50f6a2d4"
)


def snowplow_get() -> dict[str, str]:
    """The GET example's query parameters, as a web framework hands them over."""
    return dict(parse_qsl(SNOWPLOW_GET_QUERY))


LINK_CLICK = {
    "schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
    "data": {
        "schema": "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
        "data": {
            "targetUrl": "https://www.example.com/returns",
            "elementId": "returns-link",
            "elementClasses": ["footer", "link"],
            "elementTarget": "_self",
        },
    },
}

CLIENT_SESSION_CONTEXTS = {
    "schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
    "data": [
        {
            "schema": "iglu:com.snowplowanalytics.mobile/application/jsonschema/1-0-0",
            "data": {"version": "5.4.1", "build": "312"},
        },
        {
            "schema": "iglu:com.snowplowanalytics.snowplow/client_session/jsonschema/1-0-2",
            "data": {
                "userId": "a5b2c6de-1f9c-4e2b-9b0e-2f3f6d0c7e11",
                "sessionId": "c1f0b8aa-3c5d-4d7e-8e91-0f0a6b7d2c33",
                "sessionIndex": 4,
                "previousSessionId": "77f1c2d3-0000-4000-8000-000000000001",
                "storageMechanism": "SQLITE",
                "firstEventId": "e0a1b2c3-0000-4000-8000-000000000002",
            },
        },
    ],
}

# -- GA4 Measurement Protocol -------------------------------------------------------

GA4_TUTORIAL = {"client_id": "123456.7654321", "events": [{"name": "tutorial_begin", "params": {}}]}

GA4_PURCHASE = {
    "client_id": "123456.7654321",
    "user_id": "customer-42",
    "timestamp_micros": 1763806500123456,
    "events": [
        {
            "name": "purchase",
            "params": {
                "currency": "USD",
                "value": 30.03,
                "transaction_id": "T_12345",
                "shipping": 3.33,
                "tax": 1.11,
                "items": [{"item_id": "SKU_12345", "item_name": "Stan and Friends Tee", "price": 10.01}],
            },
        }
    ],
}

# -- CloudEvents ----------------------------------------------------------------------

CLOUDEVENT_SPEC_EXAMPLE = {
    "specversion": "1.0",
    "type": "com.example.someevent",
    "source": "/mycontext",
    "id": "A234-1234-1234",
    "time": "2018-04-05T17:31:00Z",
    "comexampleextension1": "value",
    "comexampleothervalue": 5,
    "datacontenttype": "application/json",
    "data": {"appinfoA": "abc", "appinfoB": 123, "appinfoC": True},
}

CLOUDEVENT_CHECKOUT = {
    "specversion": "1.0",
    "type": "checkout_started",
    "source": "/shop/checkout",
    "id": "c-1001",
    "time": "2026-11-22T10:15:03.120Z",
    "datacontenttype": "application/json",
    "data": {
        "customer_id": "cust-7",
        "session_id": "s-9",
        "properties": {"cart_id": "cart-77", "value": 129.5, "currency": "EUR"},
    },
}

# The Kafka binding's binary-mode example: attributes in ce_ headers, Avro data.
CLOUDEVENT_KAFKA_AVRO_HEADERS = [
    ("ce_specversion", b"1.0"),
    ("ce_type", b"com.example.someevent"),
    ("ce_source", b"/mycontext/subcontext"),
    ("ce_id", b"1234-1234-1234"),
    ("ce_time", b"2018-04-05T03:56:24Z"),
    ("content-type", b"application/avro"),
]
