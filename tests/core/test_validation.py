"""Validation of raw messages against the input contract, and dead-letter records."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from motwatch.core.deadletter import dead_letter_record, encode_dead_letter, file_source, kafka_source
from motwatch.core.events import EVENT_TYPES, Touchpoint
from motwatch.core.validation import Rejection, journey_key_of, validate_touchpoint
from tests.journeys import record

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples.jsonl"


def _with(type_: str = "page_view", drop: tuple[str, ...] = (), **fields: Any) -> bytes:
    """A valid event of ``type_`` with top-level fields replaced or dropped."""
    props = {
        "page_view": {"url": "https://shop.example/p/1"},
        "review_posted": {"rating": 4},
        "survey_response": {"metric": "csat", "score": 4},
        "call_ended": {"call_id": "call-1"},
        "checkout_step": {"cart_id": "c1", "step": "payment"},
        "identify": {},
    }[type_]
    body = record(type_, 0, **props) | fields
    for name in drop:
        body.pop(name, None)
    return orjson.dumps(body)


def _props(type_: str, **properties: Any) -> bytes:
    return orjson.dumps(record(type_, 0, **properties))


def _rejected(raw: bytes) -> Rejection:
    result = validate_touchpoint(raw)
    assert isinstance(result, Rejection), f"accepted: {raw!r}"
    assert result.error and "\n" not in result.error
    return result


# -- the examples of the contract ------------------------------------------------


def _example_lines() -> list[bytes]:
    return [line for line in EXAMPLES.read_bytes().splitlines() if line.strip()]


def test_every_example_validates():
    events = [validate_touchpoint(line) for line in _example_lines()]
    assert all(isinstance(e, Touchpoint) for e in events), [e for e in events if isinstance(e, Rejection)]


def test_the_examples_cover_every_type():
    types = {orjson.loads(line)["type"] for line in _example_lines()}
    assert types == set(EVENT_TYPES)


# -- invalid_json ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"not json",
        b'{"event_id": "e1",}',
        b"\xff\xfe\x00garbage",
        b'{"event_id": "e\xe9"}',  # Latin-1, not UTF-8
        b"[]",
        b'[{"event_id": "e1"}]',
        b'"a string"',
        b"42",
        b"null",
        _with() + b" trailing",
    ],
)
def test_invalid_json(raw):
    assert _rejected(raw).reason == "invalid_json"


# -- missing_field -----------------------------------------------------------------


@pytest.mark.parametrize("field", ["event_id", "occurred_at", "channel", "type"])
def test_missing_required_field(field):
    rejection = _rejected(_with(drop=(field,)))
    assert rejection.reason == "missing_field"
    assert field in rejection.error


def test_neither_customer_nor_anonymous_id():
    rejection = _rejected(_with(drop=("customer_id", "anonymous_id")))
    assert rejection.reason == "missing_field"
    assert "customer_id" in rejection.error and "anonymous_id" in rejection.error


def test_null_ids_count_as_missing():
    rejection = _rejected(_with(customer_id=None, anonymous_id=None))
    assert rejection.reason == "missing_field"


@pytest.mark.parametrize("keep", ["customer_id", "anonymous_id"])
def test_identify_needs_both_ids(keep):
    ids = {"customer_id": "cust-1", "anonymous_id": "anon-1"}
    body = orjson.loads(_with("identify", drop=("customer_id",))) | {keep: ids[keep]}
    rejection = _rejected(orjson.dumps(body))
    assert rejection.reason == "missing_field"
    assert "identify" in rejection.error


def test_identify_with_both_ids_is_valid():
    event = validate_touchpoint(_with("identify", anonymous_id="anon-1"))
    assert isinstance(event, Touchpoint)
    assert event.journey_key == "cust-1"


def test_missing_required_property():
    rejection = _rejected(_props("checkout_started", value=10))
    assert rejection.reason == "missing_field"
    assert "cart_id" in rejection.error


# -- unknown_type / unknown_channel -------------------------------------------------


@pytest.mark.parametrize("value", ["teleport", "Page_View", "", 7])
def test_unknown_type(value):
    assert _rejected(_with(type=value)).reason == "unknown_type"


@pytest.mark.parametrize("value", ["fax", "WEB", "", 3])
def test_unknown_channel(value):
    rejection = _rejected(_with(channel=value))
    assert rejection.reason == "unknown_channel"
    assert "channel" in rejection.error


# -- bad_timestamp -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-02T14:00:00",  # no offset
        "2026-03-02T14:00:00.000",  # no offset
        "2026-03-02",  # a date, no time
        "14:00:00Z",
        "2026-03-02T14:00:00+0100",  # not RFC 3339 (no colon in the offset)
        "2026-02-30T14:00:00Z",  # no such day
        "2026-03-02T25:00:00Z",
        "yesterday",
        "1772460000",  # a Unix time as text
        1772460000,  # a number
        1772460000.5,
        True,
        None,
        "",
    ],
)
def test_bad_timestamp(value):
    rejection = _rejected(_with(occurred_at=value))
    assert rejection.reason == "bad_timestamp"
    assert "occurred_at" in rejection.error


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-02T14:00:00Z", datetime(2026, 3, 2, 14, 0, tzinfo=UTC)),
        ("2026-03-02T15:00:00+01:00", datetime(2026, 3, 2, 14, 0, tzinfo=UTC)),
        ("2026-03-02T08:30:00.250-05:30", datetime(2026, 3, 2, 14, 0, 0, 250000, tzinfo=UTC)),
        ("2026-03-02 14:00:00z", datetime(2026, 3, 2, 14, 0, tzinfo=UTC)),
    ],
)
def test_rfc3339_timestamps_with_an_offset_are_valid(value, expected):
    event = validate_touchpoint(_with(occurred_at=value))
    assert isinstance(event, Touchpoint)
    assert event.occurred_at == expected
    assert event.occurred_ms == round(expected.timestamp() * 1000)


# -- bad_property ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "properties", "field"),
    [
        ("page_view", {"url": "u", "http_status": "404"}, "http_status"),
        ("page_view", {"url": "u", "http_status": 404.5}, "http_status"),
        ("page_view", {"url": "u", "http_status": 99}, "http_status"),
        ("page_view", {"url": "u", "http_status": 600}, "http_status"),
        ("page_view", {"url": "u", "page_category": "basket"}, "page_category"),
        ("page_view", {"url": 17}, "url"),
        ("page_view", {"url": "u", "load_ms": -1}, "load_ms"),
        ("link_click", {"url": "u", "target_url": "t", "http_status": "500"}, "http_status"),
        ("page_exit", {"url": "u", "dwell_ms": "4000"}, "dwell_ms"),
        ("page_exit", {"url": "u", "dwell_ms": -1}, "dwell_ms"),
        ("checkout_started", {"cart_id": 12}, "cart_id"),
        ("checkout_started", {"cart_id": ""}, "cart_id"),
        ("checkout_started", {"cart_id": "c1", "value": "39.00"}, "value"),
        ("chat_message", {"chat_id": "c", "sender": "robot"}, "sender"),
        ("call_ended", {"call_id": "c", "answered": "false"}, "answered"),
        ("call_ended", {"call_id": "c", "answered": 0}, "answered"),
        ("call_ended", {"call_id": "c", "wait_s": "121"}, "wait_s"),
        ("review_posted", {"rating": "five"}, "rating"),
        ("review_posted", {"rating": 0}, "rating"),
        ("review_posted", {"rating": 6}, "rating"),
        ("review_posted", {"rating": True}, "rating"),
        ("survey_response", {"metric": "csat", "score": 0}, "csat"),
        ("survey_response", {"metric": "csat", "score": 6}, "csat"),
        ("survey_response", {"metric": "nps", "score": -1}, "nps"),
        ("survey_response", {"metric": "nps", "score": 11}, "nps"),
        ("survey_response", {"metric": "ces", "score": 0}, "ces"),
        ("survey_response", {"metric": "ces", "score": 8}, "ces"),
        ("survey_response", {"metric": "csat", "score": "3"}, "score"),
        ("survey_response", {"metric": "happiness", "score": 3}, "metric"),
    ],
)
def test_bad_property(type_, properties, field):
    rejection = _rejected(_props(type_, **properties))
    assert rejection.reason == "bad_property"
    assert field in rejection.error


@pytest.mark.parametrize("value", [[1, 2], "text", 5])
def test_properties_must_be_an_object(value):
    assert _rejected(_with(properties=value)).reason == "bad_property"


@pytest.mark.parametrize(
    ("metric", "score"), [("csat", 1), ("csat", 5), ("nps", 0), ("nps", 10), ("ces", 1), ("ces", 7)]
)
def test_scores_at_the_ends_of_their_scale_are_valid(metric, score):
    assert isinstance(validate_touchpoint(_props("survey_response", metric=metric, score=score)), Touchpoint)


# -- other fields ------------------------------------------------------------------


@pytest.mark.parametrize("value", [2, 0, "1", "2"])
def test_unsupported_schema_version(value):
    rejection = _rejected(_with(schema_version=value))
    assert rejection.reason == "unsupported_schema_version"
    assert "schema_version" in rejection.error


def test_schema_version_1_and_default():
    assert isinstance(validate_touchpoint(_with(schema_version=1)), Touchpoint)
    event = validate_touchpoint(_with())
    assert isinstance(event, Touchpoint) and event.schema_version == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"event_id": ""}, "event_id"),
        ({"event_id": "x" * 129}, "event_id"),
        ({"event_id": 5}, "event_id"),
        ({"customer_id": 42}, "customer_id"),
        ({"session_id": ["s"]}, "session_id"),
    ],
)
def test_a_wrong_common_field_is_rejected_naming_it(fields, field):
    rejection = _rejected(_with(**fields))
    assert field in rejection.error


def test_properties_default_to_empty():
    body = orjson.loads(_with("identify", anonymous_id="anon-1"))
    del body["properties"]
    assert isinstance(validate_touchpoint(orjson.dumps(body)), Touchpoint)


def test_unknown_fields_are_accepted():
    body = orjson.loads(_with()) | {"trace_id": "abc", "nested": {"x": [1, 2]}}
    body["properties"]["experiment"] = "B"
    event = validate_touchpoint(orjson.dumps(body))
    assert isinstance(event, Touchpoint)
    assert event.properties.url == "https://shop.example/p/1"


def test_the_most_telling_reason_wins():
    # Unknown type and a bad timestamp: the type says more.
    assert _rejected(_with(type="teleport", occurred_at="soon")).reason == "unknown_type"
    assert _rejected(_with(drop=("event_id",), channel="fax")).reason == "missing_field"


TEXTS = [
    "Kada stiže paket?",
    "Đèn đẹp, giao hàng nhanh.",
    "Stolní lampa — žluťoučký kůň",
    "خیلی بد بود",
    "🙂 ok",
    'tab\there "quoted" \\ back',
]


@pytest.mark.parametrize("text", TEXTS)
def test_unicode_text_survives(text):
    raw = _props("review_posted", rating=1, text=text, platform=text)
    event = validate_touchpoint(raw)
    assert isinstance(event, Touchpoint)
    assert event.properties.text == text
    # And it survives the journey state's serialisation (held events are stored).
    again = validate_touchpoint(orjson.dumps(event.model_dump(mode="json")))
    assert again == event


def test_journey_key_prefers_the_customer():
    assert journey_key_of(_with(anonymous_id="anon-1")) == "cust-1"
    assert journey_key_of(_with(drop=("customer_id",), anonymous_id="anon-1")) == "anon-1"
    assert journey_key_of(b"nope") is None


# -- dead-letter records --------------------------------------------------------------


WHEN = datetime(2026, 3, 2, 14, 0, 1, 500000, tzinfo=UTC)


def test_dead_letter_keeps_the_raw_text_unchanged():
    raw = '{"event_id": "e1", "type": "teleport", "text": "žluťoučký 🙂"}  '.encode()
    rejection = _rejected(raw)
    record_ = dead_letter_record(raw, rejection, kafka_source("motwatch.touchpoints", 3, 1234), WHEN)
    assert record_ == {
        "reason": "unknown_type",
        "error": rejection.error,
        "raw": raw.decode("utf-8"),
        "raw_encoding": "utf-8",
        "source": {"topic": "motwatch.touchpoints", "partition": 3, "offset": 1234},
        "received_at": "2026-03-02T14:00:01.500Z",
    }
    assert orjson.loads(encode_dead_letter(record_))["raw"].encode() == raw


def test_dead_letter_of_non_utf8_is_base64():
    raw = b'{"event_id": "\xe9\xff"}'
    rejection = _rejected(raw)
    record_ = dead_letter_record(raw, rejection, file_source("in.jsonl", 7), WHEN)
    assert record_["reason"] == "invalid_json"
    assert record_["raw_encoding"] == "base64"
    assert base64.b64decode(record_["raw"]) == raw
    assert record_["source"] == {"file": "in.jsonl", "line": 7}
    orjson.loads(encode_dead_letter(record_))  # the record itself is valid JSON


def test_dead_letter_received_at_defaults_to_now():
    before = datetime.now(UTC)
    record_ = dead_letter_record(b"{", Rejection("invalid_json", "x"), file_source("f", 1))
    received = datetime.fromisoformat(record_["received_at"].replace("Z", "+00:00"))
    assert received.tzinfo is not None
    assert before.replace(microsecond=0) <= received.replace(microsecond=0)
    assert received <= datetime.now(UTC)
