"""Properties of every adapter: any input gives events or rejections, never an exception; every vendor
event is accounted for exactly once; the same input gives the same output."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motwatch.adapters import VENDORS, check, check_message, cloudevents
from motwatch.adapters.base import Converted
from motwatch.adapters.intake import CONVERTERS
from motwatch.adapters.mapping import DEFAULT_MAPPINGS as DEFAULT
from tests.adapters.examples import (
    CLIENT_SESSION_CONTEXTS,
    CLOUDEVENT_CHECKOUT,
    CLOUDEVENT_SPEC_EXAMPLE,
    GA4_PURCHASE,
    LINK_CLICK,
    SEGMENT_ALIAS,
    SEGMENT_HTTP_BATCH,
    SEGMENT_IDENTIFY,
    SEGMENT_ORDER_COMPLETED,
    SEGMENT_PAGE,
    SNOWPLOW_POST,
    at,
    b64url,
)

NOW = at("2026-11-22T10:16:00Z")
EXAMPLES: dict[str, list[Any]] = {
    "segment": [SEGMENT_PAGE, SEGMENT_IDENTIFY, SEGMENT_ALIAS, SEGMENT_ORDER_COMPLETED, SEGMENT_HTTP_BATCH],
    "snowplow": [
        SNOWPLOW_POST,
        {"e": "ue", "eid": "1", "duid": "d", "url": "https://a/", "ue_px": b64url(LINK_CLICK)},
        {
            "e": "pv",
            "eid": "2",
            "url": "https://a/",
            "cx": b64url(CLIENT_SESSION_CONTEXTS),
            "dtm": "5",
            "stm": "9",
        },
        {"e": "se", "eid": "3", "uid": "u", "se_ca": "c", "se_ac": "cart_add", "se_va": "2"},
    ],
    "ga4": [GA4_PURCHASE],
    "cloudevents": [
        CLOUDEVENT_CHECKOUT,
        CLOUDEVENT_SPEC_EXAMPLE,
        [CLOUDEVENT_CHECKOUT, CLOUDEVENT_SPEC_EXAMPLE],
    ],
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "1.0", "2026-11-22T10:00:00Z", "pv", "ue", "se", "track", "page", "1763806500000"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)


def dicts_in(value: Any) -> list[dict[str, Any]]:
    """Every object in a JSON value, the value itself first when it is one."""
    found, stack = [], [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


@st.composite
def mutated(draw: st.DrawFn, vendor: str) -> Any:
    """A vendor example with one member of one of its objects replaced by any JSON value, or removed."""
    example = copy.deepcopy(draw(st.sampled_from(EXAMPLES[vendor])))
    target = draw(st.sampled_from(dicts_in(example)))
    key = draw(st.sampled_from(sorted(target)) if target and draw(st.booleans()) else st.text(max_size=10))
    if draw(st.booleans()):
        target.pop(key, None)
    else:
        target[key] = draw(json_values)
    return example


def accounted(vendor: str, payload: Any, out: Converted) -> int:
    """How many outcomes (events and rejections) the payload must have: one per vendor event in it."""
    if any(r.item == "" for r in out.rejections) and vendor != "cloudevents":
        return 1
    if vendor == "segment" and isinstance(payload, dict) and "batch" in payload:
        return len(payload["batch"])
    if vendor == "snowplow" and isinstance(payload, Mapping) and "schema" in payload and "e" not in payload:
        return len(payload["data"])
    if vendor == "ga4":
        return len(payload["events"])
    if vendor in ("segment", "cloudevents") and isinstance(payload, list):
        return len(payload)
    return 1


def assert_well_behaved(vendor: str, payload: Any) -> None:
    before = copy.deepcopy(payload)
    out = CONVERTERS[vendor](payload, NOW, DEFAULT)
    assert [r for r in out.rejections if r.reason == "internal_error"] == []
    assert len(out.events) + len(out.rejections) == accounted(vendor, payload, out)
    assert CONVERTERS[vendor](payload, NOW, DEFAULT) == out
    assert payload == before
    checked = check(out, NOW, max_future_skew_s=300)
    assert len(checked.accepted) + len(checked.rejected) == len(out.events) + len(out.rejections)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(vendor=st.sampled_from(VENDORS), payload=json_values)
def test_any_json_value_gives_events_or_rejections(vendor, payload):
    assert_well_behaved(vendor, payload)


@SETTINGS
@given(data=st.data(), vendor=st.sampled_from(VENDORS))
def test_an_example_with_any_member_changed_gives_events_or_rejections(data, vendor):
    assert_well_behaved(vendor, data.draw(mutated(vendor)))


TP2_FIELDS = [
    "e",
    "eid",
    "uid",
    "duid",
    "sid",
    "url",
    "refr",
    "dtm",
    "stm",
    "ttm",
    "ue_pr",
    "ue_px",
    "cx",
    "co",
]
TP2_FIELDS += ["se_ca", "se_ac", "se_la", "se_pr", "se_va", "tr_id", "tr_tt", "tr_cu"]


@SETTINGS
@given(st.dictionaries(st.sampled_from(TP2_FIELDS) | st.text(max_size=5), st.text(max_size=30), max_size=12))
def test_any_query_string_gives_an_event_or_a_rejection(params):
    assert_well_behaved("snowplow", params)


CE_HEADERS = [
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "content-type",
    "ce-type",
    "other",
]


@SETTINGS
@given(
    headers=st.lists(
        st.tuples(st.sampled_from(CE_HEADERS) | st.text(max_size=8), st.none() | st.binary(max_size=20)),
        max_size=8,
    ),
    body=st.binary(max_size=60),
)
def test_any_binary_mode_message_gives_an_event_or_a_rejection(headers, body):
    headers = [("ce_specversion", b"1.0"), *headers]
    out = cloudevents.convert_binary(headers, body, NOW)
    assert len(out.events) + len(out.rejections) == 1
    assert [r for r in out.rejections if r.reason == "internal_error"] == []
    assert cloudevents.convert_binary(headers, body, NOW) == out


@SETTINGS
@given(vendor=st.sampled_from(VENDORS), body=st.binary(max_size=80))
def test_any_bytes_give_touchpoints_or_rejections(vendor, body):
    checked = check_message(vendor, body, NOW)
    assert [r for r in checked.rejected if r.reason == "internal_error"] == []
