"""Snowplow (POST tp2, GET /i) and GA4 Measurement Protocol at the collector: keys, answers, dead letters."""

from __future__ import annotations

import copy

import orjson
import pytest

from motwatch.adapters import check_payload
from motwatch.collector.endpoints import PIXEL
from tests.adapters.examples import (
    GA4_PURCHASE,
    SNOWPLOW_GET_QUERY,
    SNOWPLOW_PAGE_VIEW,
    snowplow_get,
)
from tests.collector.conftest import KEY, NOW, basic, collector_client, sample

TP2 = "/com.snowplowanalytics.snowplow/tp2"
SCHEMA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"


def snowplow_post(*events: dict) -> dict:
    return {"schema": SCHEMA, "data": list(events)}


def with_aid(event: dict, aid: str) -> dict:
    return {**event, "aid": aid}


def expected(vendor: str, payload) -> list[dict]:
    return [orjson.loads(a.raw) for a in check_payload(vendor, payload, NOW).accepted]


async def test_a_snowplow_post_with_the_key_as_app_id_produces_the_page_view(sink):
    payload = snowplow_post(with_aid(SNOWPLOW_PAGE_VIEW, KEY))
    async with collector_client(sink) as client:
        answer = await client.post(
            TP2, data=orjson.dumps(payload), headers={"Content-Type": "application/json"}
        )
        assert answer.status == 200
        assert await answer.text() == "ok"
    assert sink.touchpoints() == expected("snowplow", payload)
    assert sink.touchpoints()[0]["type"] == "page_view"


@pytest.mark.parametrize("aids", [["shop"], [KEY, "shop"], [None]])
async def test_a_snowplow_post_with_an_unknown_app_id_is_401(sink, aids):
    events = [{k: v for k, v in SNOWPLOW_PAGE_VIEW.items() if k != "aid"} for _ in aids]
    events = [with_aid(e, a) if a else e for e, a in zip(events, aids, strict=True)]
    async with collector_client(sink) as client:
        answer = await client.post(TP2, data=orjson.dumps(snowplow_post(*events)))
        assert answer.status == 401
    assert sink.writes == 0


async def test_a_snowplow_post_with_basic_auth_needs_no_app_id_key(sink):
    async with collector_client(sink) as client:
        answer = await client.post(
            TP2, data=orjson.dumps(snowplow_post(SNOWPLOW_PAGE_VIEW)), headers=basic(KEY)
        )
        assert answer.status == 200
    assert len(sink.touchpoints()) == 1


async def test_snowplow_events_are_dead_lettered_or_counted_and_the_answer_is_still_ok(sink):
    ping = with_aid({**SNOWPLOW_PAGE_VIEW, "e": "pp", "eid": "ping-1"}, KEY)
    no_id = with_aid({k: v for k, v in SNOWPLOW_PAGE_VIEW.items() if k != "eid"}, KEY)
    payload = snowplow_post(with_aid(SNOWPLOW_PAGE_VIEW, KEY), ping, no_id)
    async with collector_client(sink) as client:
        assert (await client.post(TP2, data=orjson.dumps(payload))).status == 200
        for reason in ("no_touchpoint", "missing_field"):
            labels = {"vendor": "snowplow", "reason": reason}
            assert sample(client, "motwatch_collector_events_rejected_total", labels) == 1
    assert len(sink.touchpoints()) == 1
    [letter] = sink.dead_letters()
    assert letter["reason"] == "missing_field" and letter["source"]["item"] == "data[2]"
    assert orjson.loads(letter["raw"]) == no_id


async def test_a_snowplow_body_that_is_not_json_is_dead_lettered_whole(sink):
    async with collector_client(sink) as client:
        answer = await client.post(TP2, data=b"e=pv&not json", headers=basic(KEY))
        assert answer.status == 200
    [letter] = sink.dead_letters()
    assert letter["reason"] == "invalid_json" and letter["raw"] == "e=pv&not json"


async def test_a_snowplow_get_answers_a_gif_and_produces_the_page_view(sink):
    assert "&aid=shop&" in SNOWPLOW_GET_QUERY
    query = SNOWPLOW_GET_QUERY.replace("&aid=shop&", f"&aid={KEY}&")
    async with collector_client(sink) as client:
        answer = await client.get(f"/i?{query}")
        assert answer.status == 200
        assert answer.content_type == "image/gif"
        assert await answer.read() == PIXEL
    assert sink.touchpoints() == expected("snowplow", snowplow_get() | {"aid": KEY})


async def test_a_snowplow_get_without_a_known_app_id_is_401(sink):
    async with collector_client(sink) as client:
        assert (await client.get(f"/i?{SNOWPLOW_GET_QUERY}")).status == 401  # aid=shop
    assert sink.writes == 0


async def test_a_rejected_snowplow_get_keeps_its_query_string(sink):
    query = f"e=zz&eid=x1&duid=d1&aid={KEY}"
    async with collector_client(sink) as client:
        assert (await client.get(f"/i?{query}")).status == 200
    [letter] = sink.dead_letters()
    assert letter["reason"] == "unmapped_event" and letter["raw"] == query


def test_the_pixel_is_a_one_by_one_gif():
    assert PIXEL.startswith(b"GIF89a")
    assert int.from_bytes(PIXEL[6:8], "little") == 1 and int.from_bytes(PIXEL[8:10], "little") == 1


# -- GA4 ----------------------------------------------------------------------------

GA4 = f"/mp/collect?measurement_id=G-TEST1234&api_secret={KEY}"


async def test_a_ga4_purchase_is_204_and_an_order(sink):
    async with collector_client(sink) as client:
        answer = await client.post(GA4, json=GA4_PURCHASE)
        assert answer.status == 204
    assert sink.touchpoints() == expected("ga4", GA4_PURCHASE)
    assert sink.touchpoints()[0]["type"] == "order_completed"


@pytest.mark.parametrize("query", ["?measurement_id=G-1&api_secret=wrong-secret", "?measurement_id=G-1", ""])
async def test_ga4_without_a_known_api_secret_is_401(sink, query):
    async with collector_client(sink) as client:
        assert (await client.post(f"/mp/collect{query}", json=GA4_PURCHASE)).status == 401
    assert sink.writes == 0


async def test_ga4_answers_204_for_bad_events_and_dead_letters_them(sink):
    request = copy.deepcopy(GA4_PURCHASE)
    request["events"].append({"name": "level_up", "params": {"level": 3}})
    async with collector_client(sink) as client:
        assert (await client.post(GA4, json=request)).status == 204
        assert (await client.post(GA4, data=b"{nope")).status == 204
    assert len(sink.touchpoints()) == 1
    letters = sink.dead_letters()
    assert [(d["reason"], d["source"].get("item")) for d in letters] == [
        ("unmapped_event", "events[1]"),
        ("invalid_json", None),
    ]
    assert orjson.loads(letters[0]["raw"]) == request["events"][1]
    assert letters[1]["raw"] == "{nope"
    # The api secret is in the query string, never in a dead letter.
    assert all(KEY not in orjson.dumps(d).decode() for d in letters)


async def test_a_ga4_body_over_130_kb_is_413(sink):
    request = {"client_id": "c1", "events": [{"name": "page_view", "params": {"x": "y" * 140_000}}]}
    async with collector_client(sink) as client:
        assert (await client.post(GA4, json=request)).status == 413
    assert sink.writes == 0
