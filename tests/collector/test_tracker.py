"""What the browser tracker sends (tracker/README.md, Wire format) comes out as touchpoints, and the
collector serves the tracker and, with --shop, the demo shop."""

from __future__ import annotations

import orjson

from motwatch.collector.static import tracker_dir
from tests.collector.conftest import KEY, collector_client

SESSION = "9d1a0c3e-7b55-4f0e-9a41-0c7de2f1a001"
ANONYMOUS = "0f7e5a9b-2c4d-4e8f-a1b2-c3d4e5f60718"


def _message(type_: str, channel: str, **fields) -> dict:
    """A message as motwatch.js builds it (message() in tracker/motwatch.js)."""
    return {
        "type": type_,
        "messageId": f"msg-{type_}-{fields.get('event', 'page')}",
        "anonymousId": ANONYMOUS,
        "timestamp": "2026-11-22T10:15:03.120Z",
        "context": {
            "page": {"url": "https://shop.example/shop/product.html", "referrer": "", "title": "Blender"},
            "library": {"name": "motwatch.js", "version": "1.0.0"},
            "sessionId": SESSION,
            "channel": channel,
        },
        **fields,
    }


TRACKER_BATCH = {
    "batch": [
        _message(
            "page",
            "web",
            properties={
                "url": "https://shop.example/shop/product.html",
                "referrer": "",
                "page_category": "product",
                "product_id": "blender-300",
                "load_ms": 412,
            },
        ),
        _message(
            "track",
            "web",
            event="page_exit",
            properties={
                "url": "https://shop.example/shop/product.html",
                "dwell_ms": 3225,
                "page_category": "product",
                "product_id": "blender-300",
            },
        ),
        _message(
            "track",
            "checkout",
            event="checkout_started",
            userId="cust-42",
            properties={"cart_id": "c-1", "value": 89, "currency": "EUR"},
        ),
        _message("identify", "web", userId="cust-42"),
        _message("track", "survey", event="survey_response", properties={"metric": "csat", "score": 2}),
    ],
    "sentAt": "2026-11-22T10:15:04.002Z",
    "writeKey": KEY,
}


async def test_a_tracker_batch_becomes_touchpoints_of_its_session_and_channels(sink):
    async with collector_client(sink) as client:
        answer = await client.post(
            "/v1/batch",
            data=orjson.dumps(TRACKER_BATCH),
            headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://shop.example"},
        )
        assert answer.status == 200
    events = sink.touchpoints()
    assert sink.dead_letters() == []
    assert [e["type"] for e in events] == [
        "page_view",
        "page_exit",
        "checkout_started",
        "identify",
        "survey_response",
    ]
    assert {e["session_id"] for e in events} == {SESSION}
    sent = TRACKER_BATCH["batch"]
    assert [e["event_id"] for e in events] == [m["messageId"] for m in sent]
    assert [e["channel"] for e in events] == [m["context"]["channel"] for m in sent]
    assert events[0]["properties"]["product_id"] == "blender-300"
    assert events[1]["properties"]["dwell_ms"] == 3225
    assert events[2]["customer_id"] == "cust-42"
    assert events[3]["customer_id"] == "cust-42" and events[3]["anonymous_id"] == ANONYMOUS
    # The browser's clock was 882 ms behind sending: the time is the server's arrival less that.
    assert events[0]["occurred_at"] == "2026-11-22T10:15:59.118Z"


async def test_the_tracker_script_is_served_as_javascript(sink):
    folder = tracker_dir()
    assert folder is not None
    async with collector_client(sink) as client:
        answer = await client.get("/motwatch.js")
        assert answer.status == 200
        assert answer.content_type == "text/javascript"
        assert await answer.read() == (folder / "motwatch.js").read_bytes()


async def test_the_shop_is_served_only_when_asked_for(sink):
    folder = tracker_dir()
    assert folder is not None
    async with collector_client(sink) as client:
        assert (await client.get("/shop/")).status == 404
        assert (await client.get("/shop/index.html")).status == 404
    async with collector_client(sink, shop=True) as client:
        index = await client.get("/shop/")
        assert index.status == 200 and index.content_type == "text/html"
        assert await index.read() == (folder / "shop" / "index.html").read_bytes()
        style = await client.get("/shop/style.css")
        assert style.status == 200 and style.content_type == "text/css"
        root = await client.get("/", allow_redirects=False)
        assert root.status == 302 and root.headers["Location"] == "/shop/"


async def test_a_missing_shop_page_is_404_with_the_shops_404_page(sink):
    page = (tracker_dir() / "shop" / "404.html").read_bytes()
    async with collector_client(sink, shop=True) as client:
        for path in ("/shop/kettle-spring-offer.html", "/shop/../pyproject.toml", "/nowhere"):
            answer = await client.get(path)
            assert answer.status == 404, path
            assert await answer.read() == page
