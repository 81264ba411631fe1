"""Hostile input through the ingest path the worker and ``motwatch detect`` share.

More than 10,000 generated messages (``tests/hostile.py``: random bytes,
extreme JSON, odd numbers and strings, edge timestamps, every field of a
valid event of the wrong type) go through ``JourneyDispatch.touchpoint``,
as the worker hands it a record of the input topic, and on into the engine.
Nothing may raise; every message is either a touchpoint that keeps the
limits and validates again from its stored form, or a dead letter with a
documented reason. The journeys they make must pack and unpack, fire their
timeouts and keep within ``limits.max_state_items``. Each limit is then
checked at its edge, one by one.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motwatch.core.clock import PartitionClock
from motwatch.core.deadletter import encode_dead_letter
from motwatch.core.dispatch import Inbound, JourneyDispatch, Outcome
from motwatch.core.engine import JourneyEngine
from motwatch.core.events import TOUCHPOINT_ADAPTER, Touchpoint, touchpoint_from_stored
from motwatch.core.journey import JourneyState
from motwatch.core.moments import iso_ms
from motwatch.core.records import source_name
from motwatch.core.validation import REASONS, Rejection, validate_touchpoint
from motwatch.settings import Limits, Settings
from motwatch.simulation import SimulationConfig, simulate
from tests.hostile import FAMILIES, TEMPLATES, within_limits
from tests.journeys import T0_MS, Feed, touch

README = Path(__file__).resolve().parents[2] / "README.md"
TOPIC = "motwatch.touchpoints"
# When the messages arrive (their record's timestamp): a day after the examples happened.
ARRIVAL_MS = T0_MS + 86_400_000
LIMIT_REASONS = {"too_large", "too_deep", "too_many_properties", "string_too_long"}
# Reasons of a failure in motwatch itself: never the answer to a message, however hostile.
BUG_REASONS = {"internal_error", "processing_error"}

MESSAGES = 10_000
# Families of messages per example (tests/hostile.py: some 20 messages a family on average).
FAMILIES_PER_EXAMPLE = 5


class Ingest:
    """Partition 0 of the input topic as ``motwatch detect`` drives it; what it sends is looped back."""

    def __init__(self, settings_: Settings) -> None:
        self.settings = settings_
        clock = PartitionClock(
            lateness_ms=round(settings_.allowed_lateness_s * 1000),
            self_timed=False,
            idle_advance_ms=round(settings_.idle_advance_s * 1000),
        )
        clock.learn_inputs([source_name(TOPIC, 0)])
        self.engine = JourneyEngine(settings_, clock=clock)
        self.dispatch = JourneyDispatch(settings_, lambda _: self.engine, partitions=1, direct=True)
        self.offset = 0
        self.moments = 0

    def message(self, raw: bytes, key: bytes | None) -> Outcome:
        self.offset += 1
        record = Inbound(raw, 0, key=key, timestamp_ms=ARRIVAL_MS, topic=TOPIC, offset=self.offset)
        outcome = self.dispatch.touchpoint(record)
        self._carry_out(outcome)
        return outcome

    def flush(self) -> None:
        """Move event time past every deadline: every open timeout fires."""
        self._carry_out(self.dispatch.advance(0, 2**62))

    def _carry_out(self, outcome: Outcome) -> None:
        for each in self.dispatch.loop_back(outcome):
            # A record the dispatch sends on (a touchpoint re-keyed, a merge) is never rejected.
            assert each is outcome or each.rejection is None, each.rejection
            for moment in each.moments():
                orjson.loads(moment.to_json())
                self.moments += 1


def _raw_of(letter: dict[str, Any]) -> bytes:
    if letter["raw_encoding"] == "base64":
        return base64.b64decode(letter["raw"])
    return letter["raw"].encode("utf-8")


def check(raw: bytes, outcome: Outcome, limits: Limits) -> None:
    """A touchpoint that keeps the limits and validates again, or a dead letter with a documented reason."""
    assert (outcome.event is None) != (outcome.rejection is None), outcome
    if outcome.rejection is not None:
        rejection = outcome.rejection
        assert rejection.reason in REASONS and rejection.reason not in BUG_REASONS, rejection
        assert rejection.error and "\n" not in rejection.error, rejection
        letter = outcome.dead_letter
        assert letter is not None and letter["reason"] == rejection.reason
        kept = raw[: limits.max_message_bytes] if rejection.reason == "too_large" else raw
        assert _raw_of(orjson.loads(encode_dead_letter(letter))) == kept
        return
    event = outcome.event
    assert event is not None
    assert within_limits(raw, limits), raw[:200]
    stored = orjson.dumps(event.stored)
    assert TOUCHPOINT_ADAPTER.validate_json(stored) == event
    assert touchpoint_from_stored(orjson.loads(stored)) == event
    assert iso_ms(event.occurred_ms).endswith("Z")


def check_journeys(ingest: Ingest) -> None:
    limit = ingest.settings.limits.max_state_items
    for state in list(ingest.engine.store.values()):
        assert JourneyState.unpack(state.pack()).to_dict() == state.to_dict()
        for items in (state.checkouts, state.chats, state.onboardings, state.reported):
            assert len(items) <= limit


def _key(raw: bytes, index: int) -> bytes | None:
    """Keyed by journey, by anything, or not at all, as producers do."""
    return (None, b"cust-42", raw[:8])[index % 3]


def test_ten_thousand_hostile_messages_each_get_an_answer():
    limits = Limits()
    answers: dict[str, int] = {}

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(st.lists(FAMILIES, min_size=FAMILIES_PER_EXAMPLE, max_size=FAMILIES_PER_EXAMPLE))
    def run(families: list[list[bytes]]) -> None:
        ingest = Ingest(Settings())
        for index, raw in enumerate(raw for family in families for raw in family):
            outcome = ingest.message(raw, _key(raw, index))
            check(raw, outcome, limits)
            reason = outcome.rejection.reason if outcome.rejection else "accepted"
            answers[reason] = answers.get(reason, 0) + 1
        ingest.flush()
        check_journeys(ingest)

    while sum(answers.values()) < MESSAGES:
        run()
    # The families reach every limit, and enough valid messages to drive the engine.
    assert set(answers) >= LIMIT_REASONS, answers
    assert answers["accepted"] > 500, answers


def test_every_reason_is_documented_in_the_readme():
    readme = README.read_text(encoding="utf-8")
    assert [r for r in REASONS if f"`{r}`" not in readme] == []


def test_what_the_simulation_makes_keeps_the_limits():
    lines = simulate(SimulationConfig(journeys=200, seed=9, invalid_share=0.05)).lines
    lines += [orjson.dumps(t) for t in TEMPLATES]
    reasons = {r.reason for r in map(validate_touchpoint, lines) if isinstance(r, Rejection)}
    assert not reasons & LIMIT_REASONS
    accepted = [line for line in lines if isinstance(validate_touchpoint(line), Touchpoint)]
    assert all(within_limits(line, Limits()) for line in accepted)


# -- each limit at its edge ------------------------------------------------------------------


def _event(**fields: Any) -> dict[str, Any]:
    return {**TEMPLATES[0], **fields}


def _verdict(body: dict[str, Any] | bytes, **limits: int) -> str:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    result = validate_touchpoint(raw, Limits(**limits))
    return "accepted" if isinstance(result, Touchpoint) else result.reason


def test_the_size_is_checked_in_bytes_before_anything_is_parsed():
    raw = orjson.dumps(_event())
    assert _verdict(raw, max_message_bytes=len(raw)) == "accepted"
    assert _verdict(raw, max_message_bytes=len(raw) - 1) == "too_large"
    # Not even JSON: the size is all that is looked at.
    result = validate_touchpoint(b"\xff" * 70_000)
    assert isinstance(result, Rejection) and result.reason == "too_large"
    assert "70,000 bytes" in result.error and "65,536" in result.error


def _nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_nesting_counts_the_message_itself_as_one():
    # The message (1), properties (2), then the arrays.
    body = _event(properties={"url": "u", "deep": _nested(14)})
    assert _verdict(body, max_depth=16) == "accepted"
    assert _verdict(body, max_depth=15) == "too_deep"
    # A field of its own: the message (1), it (2), a (3), b (4).
    assert _verdict(_event(deep={"a": {"b": {}}}), max_depth=4) == "accepted"
    assert _verdict(_event(deep={"a": {"b": {}}}), max_depth=3) == "too_deep"


@pytest.mark.parametrize("levels", [199, 200, 1000, 100_000])
def test_nesting_deeper_than_any_parser_goes_is_too_deep_not_a_recursion_error(levels):
    raw = orjson.dumps(_event(deep="@")).replace(b'"@"', b"[" * levels + b"]" * levels)
    assert _verdict(raw, max_message_bytes=10**6) == "too_deep"
    if levels >= 1000:
        # Past the parser's own limit (200 levels), whatever limits.max_depth allows.
        assert _verdict(raw, max_message_bytes=10**6, max_depth=10**6) == "too_deep"


def test_properties_are_counted_in_members_of_the_properties_object():
    props = {"url": "u", **{f"p{i}": i for i in range(63)}}
    assert _verdict(_event(properties=props)) == "accepted"
    assert _verdict(_event(properties={**props, "one_more": 1})) == "too_many_properties"
    # Members elsewhere are bounded by the size alone.
    assert _verdict(_event(**{f"top{i}": i for i in range(200)})) == "accepted"


@pytest.mark.parametrize(
    "place",
    ["event_id", "session_id", "url", "unknown property", "unknown field", "member name", "list item"],
)
def test_strings_are_counted_in_characters_wherever_they_are(place):
    def body(length: int) -> dict[str, Any]:
        text = "ř" * length
        props = dict(TEMPLATES[0]["properties"])
        if place == "event_id":
            return _event(event_id=text)
        if place == "session_id":
            return _event(session_id=text)
        if place == "url":
            return _event(properties={**props, "url": text})
        if place == "unknown property":
            return _event(properties={**props, "note": text})
        if place == "member name":
            return _event(properties={**props, text: 1})
        if place == "list item":
            return _event(properties={**props, "tags": ["a", text]})
        return _event(note=text)

    assert _verdict(body(100), max_string_length=100) == "accepted"
    assert _verdict(body(101), max_string_length=100) == "string_too_long"


def test_an_escape_is_one_character():
    raw = orjson.dumps(_event(session_id="@")).replace(b'"@"', b'"' + b"\\u0041" * 100 + b'"')
    assert _verdict(raw, max_string_length=100) == "accepted"
    assert _verdict(raw, max_string_length=99) == "string_too_long"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (b"NaN", "invalid_json"),
        (b"Infinity", "invalid_json"),
        (b"-Infinity", "invalid_json"),
        (b"1e400", "bad_property"),  # a finite-looking JSON number Python can only read as infinity
        (b"-1e400", "bad_property"),
        (b"-0", "accepted"),
        (b"2e21", "accepted"),
        (str(2**70).encode(), "accepted"),
        (b"9" * 5000, "invalid_json"),
    ],
)
def test_numbers_are_finite(token, reason):
    raw = orjson.dumps(_event(properties={"url": "u", "load_ms": "@"}))
    assert _verdict(raw.replace(b'"@"', token)) == reason


def test_a_number_infinity_in_an_unknown_property_is_ignored_like_the_property():
    raw = orjson.dumps(_event(properties={"url": "u", "odd": "@"})).replace(b'"@"', b"1e400")
    assert _verdict(raw) == "accepted"


@pytest.mark.parametrize(
    ("occurred_at", "reason"),
    [
        ("0001-01-01T00:00:00Z", "accepted"),
        ("0001-01-01T00:00:00-01:00", "accepted"),
        ("0001-01-01T00:00:00+01:00", "bad_timestamp"),  # year 0 in UTC
        ("9999-12-31T23:59:59.999Z", "accepted"),
        ("9999-12-31T23:59:59.999999Z", "bad_timestamp"),  # year 10000 to the millisecond
        ("9999-12-31T23:00:00-01:00", "bad_timestamp"),
        ("10000-01-01T00:00:00Z", "bad_timestamp"),
        (-1, "bad_timestamp"),
        (253402300800000, "bad_timestamp"),
    ],
)
def test_event_times_stay_within_the_calendar_in_utc(occurred_at, reason):
    assert _verdict(_event(occurred_at=occurred_at)) == reason


def test_a_message_too_large_keeps_only_what_the_limit_allows_in_its_dead_letter():
    ingest = Ingest(Settings(limits=Limits(max_message_bytes=1000)))
    raw = orjson.dumps(_event(properties={"url": "u", "pad": "\x01" * 5000}))
    outcome = ingest.message(raw, None)
    assert outcome.rejection is not None and outcome.rejection.reason == "too_large"
    assert outcome.dead_letter is not None
    assert _raw_of(outcome.dead_letter) == raw[:1000]
    assert re.search(r"is [\d,]+ bytes; at most 1,000", outcome.dead_letter["error"])


def test_a_journey_fed_endless_items_keeps_the_newest_within_the_limit():
    feed = Feed(limits={"max_state_items": 8})
    events = []
    for i in range(30):
        events.append(touch("checkout_started", i, cart_id=f"cart-{i}"))
        events.append(touch("chat_message", i, chat_id=f"chat-{i}", sender="agent"))
        events.append(touch("onboarding_completed", i, plan=f"plan-{i}"))
        events.append(touch("page_view", i, url=f"/gone/{i}", http_status=404, session="s"))
    feed(*events)
    feed.advance(600)  # past the lateness: everything applied
    state = feed.engine.store["cust-1"]
    assert sorted(state.checkouts) == sorted(f"cart-{i}" for i in range(22, 30))
    assert sorted(state.chats) == sorted(f"chat-{i}" for i in range(22, 30))
    assert sorted(state.onboardings) == sorted(f"plan-{i}" for i in range(22, 30))
    assert len(state.reported) == 8
    assert all("/gone/2" in token for token in state.reported)
    # The broken links were reported all the same, each once.
    assert [m.kind for m in feed.moments].count("broken_link") == 30
    # The checkouts kept still time out.
    feed.advance(3600)
    assert [m.kind for m in feed.moments].count("abandoned_checkout") == 8


def test_within_the_limit_a_journey_forgets_nothing():
    feed = Feed()
    feed(*(touch("checkout_started", i, cart_id=f"cart-{i}") for i in range(100)))
    feed.advance(3600)
    assert [m.kind for m in feed.moments].count("abandoned_checkout") == 100
