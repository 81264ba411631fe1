"""The collector's parts on their own: write keys and credentials, CORS, dead-letter records, settings."""

from __future__ import annotations

import base64
from collections import Counter

import orjson
import pytest

from motwatch.adapters import Checked, Rejected, check_payload
from motwatch.collector.access import Cors, WriteKeys, credentials, is_loopback
from motwatch.collector.records import Topics, located, outcome_of, raw_finder
from motwatch.settings import ConfigError, load_settings
from tests.adapters.examples import SEGMENT_HTTP_BATCH
from tests.collector.conftest import NOW

TOPICS = Topics("t.touchpoints", "t.deadletter")


def test_write_keys_allow_only_their_keys():
    keys = WriteKeys(["key-one-1", "key-two-2"])
    assert keys.allows("key-one-1") and keys.allows("key-two-2")
    assert not keys.allows("key-one-") and not keys.allows("") and not keys.allows(None)
    assert not keys.allows("KEY-ONE-1")
    assert WriteKeys([], open=True).allows(None)
    assert not WriteKeys([]) and WriteKeys([], open=True) and WriteKeys(["key-one-1"])


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Basic " + base64.b64encode(b"my-key-123:").decode(), "my-key-123"),
        ("basic " + base64.b64encode(b"my-key-123:pw").decode(), "my-key-123"),
        ("Basic " + base64.b64encode(b"my-key-123").decode(), "my-key-123"),
        ("Bearer tok-456", "tok-456"),
        ("Basic !!!notbase64", None),
        ("Basic " + base64.b64encode(b":only-password").decode(), None),
        ("Digest x", None),
        ("", None),
    ],
)
def test_credentials_are_the_basic_auth_user_or_a_bearer_token(header, key):
    assert credentials({"Authorization": header} if header else {}) == key


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_loopback_addresses(bind, loopback):
    assert is_loopback(bind) is loopback


def test_cors_allows_listed_origins_only_and_echoes_them():
    cors = Cors(["https://shop.example/", " https://b.example "])
    assert cors.allows("https://shop.example") and cors.allows("https://b.example")
    assert not cors.allows("https://shop.example.evil") and not cors.allows(None) and not cors.allows("null")
    assert cors.headers("https://b.example")["Access-Control-Allow-Origin"] == "https://b.example"
    assert cors.headers("https://c.example") == {}
    assert cors.preflight_headers("https://c.example", "content-type") is None
    assert Cors([]).headers("https://shop.example") == {}


@pytest.mark.parametrize(
    ("payload", "item", "found"),
    [
        ({"batch": [1, {"a": 2}]}, "batch[1]", {"a": 2}),
        ([{"x": 1}], "[0]", {"x": 1}),
        ({"data": [{"e": "pv"}]}, "data[0]", {"e": "pv"}),
        ({"events": []}, "events[0]", None),
        ({"batch": {"0": 1}}, "batch[0]", None),
        ([1], "batch[0]", None),
        ({"batch": [1]}, "", None),
    ],
)
def test_an_item_is_found_where_the_adapter_says_it_was(payload, item, found):
    assert located(payload, item) == found


def test_raw_is_the_located_event_else_the_whole_payload_else_the_body():
    raw_of = raw_finder({"batch": [{"a": 1}]}, b"ignored")
    assert orjson.loads(raw_of("batch[0]")) == {"a": 1}
    assert orjson.loads(raw_of("batch[5]")) == {"batch": [{"a": 1}]}
    assert raw_finder(None, b"not json")("") == b"not json"


def test_every_event_of_a_request_ends_produced_dead_lettered_or_counted():
    checked = check_payload("segment", SEGMENT_HTTP_BATCH, NOW)
    out = outcome_of(
        checked,
        TOPICS,
        route="segment_batch",
        vendor="segment",
        raw_of=raw_finder(SEGMENT_HTTP_BATCH, b""),
        received_at=NOW,
        raw_limit=65536,
    )
    reasons = Counter(r.reason for r in checked.rejected)
    assert out.accepted == len(checked.accepted) and out.rejected == reasons
    assert out.events == len(SEGMENT_HTTP_BATCH["batch"])
    produced = [r for r in out.records if r.topic == TOPICS.touchpoints]
    dead = [orjson.loads(r.value) for r in out.records if r.topic == TOPICS.deadletter]
    assert [r.value for r in produced] == [a.raw for a in checked.accepted]
    assert [r.key for r in produced] == [a.journey_key.encode() for a in checked.accepted]
    assert len(dead) == sum(n for reason, n in reasons.items() if reason != "no_touchpoint")
    # Touchpoints first, then the dead letters: a request's records go in that order.
    assert out.records[: len(produced)] == produced


def test_a_dead_letter_keeps_at_most_the_message_limit():
    checked = Checked(rejected=[Rejected("too_large", "too big", "")])
    out = outcome_of(
        checked,
        TOPICS,
        route="ga4_collect",
        vendor="ga4",
        raw_of=lambda _: b"x" * 5000,
        received_at=NOW,
        raw_limit=1000,
    )
    [record] = out.records
    letter = orjson.loads(record.value)
    assert len(letter["raw"]) == 1000 and letter["reason"] == "too_large"
    assert letter["source"] == {"http": "ga4_collect", "vendor": "ga4"}


def test_write_keys_and_origins_come_comma_separated_from_the_environment():
    env = {"MOTWATCH_WRITE_KEYS": "first-key-1, second-key-2", "MOTWATCH_CORS_ORIGINS": "https://a.example"}
    settings = load_settings(None, environ=env | {"MOTWATCH_CONFIG": "/dev/null"})
    assert [k.get_secret_value() for k in settings.write_keys] == ["first-key-1", "second-key-2"]
    assert settings.cors_origins == ["https://a.example"]
    assert "first-key-1" not in repr(settings)


def test_a_short_write_key_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="write_keys") as caught:
        load_settings(None, environ={"MOTWATCH_CONFIG": "/dev/null", "MOTWATCH_WRITE_KEYS": "abc"})
    assert "\n" not in str(caught.value)
