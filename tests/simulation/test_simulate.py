"""The journey simulator: repeatable, valid, and its ground truth is exactly what motwatch reports."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from motwatch.commands.detect import run_detect
from motwatch.core.events import EVENT_TYPES, Touchpoint
from motwatch.core.journey import MAX_ITEMS
from motwatch.core.moments import KINDS, Moment
from motwatch.core.validation import Rejection, validate_touchpoint
from motwatch.settings import Settings
from motwatch.simulation import FailureRates, SimulationConfig, Truth, iter_lines, simulate
from tests.journeys import Feed, touch

RECOVERABLE = {"abandoned_checkout", "chat_unanswered", "onboarding_stalled"}


def _detect(lines: list[bytes], flush: bool = False):
    moments: list[Moment] = []
    rejects: list[dict] = []
    summary = run_detect(lines, Settings(), moments.append, rejects.append, flush=flush)
    return moments, rejects, summary


def _triples(items: list[Moment] | list[Truth]) -> Counter[tuple[str, str, str]]:
    return Counter((m.journey_key, m.kind, m.status) for m in items)


def test_same_seed_same_bytes_and_streaming_gives_the_same_lines():
    config = SimulationConfig(journeys=200, seed=42, customers=120, invalid_share=0.03)
    first, second = simulate(config), simulate(config)
    assert first.lines == second.lines
    assert first.truth == second.truth
    assert first.invalid == second.invalid
    assert list(iter_lines(config)) == first.lines


def test_different_seeds_differ():
    a = simulate(SimulationConfig(journeys=100, seed=1))
    b = simulate(SimulationConfig(journeys=100, seed=2))
    assert a.lines != b.lines
    assert set(a.lines).isdisjoint(b.lines)


def test_malformed_lines_change_nothing_else():
    clean = simulate(SimulationConfig(journeys=150, seed=9))
    dirty = simulate(SimulationConfig(journeys=150, seed=9, invalid_share=0.1))
    assert [line for i, line in enumerate(dirty.lines) if i not in dirty.invalid] == clean.lines
    assert dirty.truth == clean.truth


def test_every_line_validates_or_is_rejected_as_announced():
    sim = simulate(SimulationConfig(journeys=300, seed=3, invalid_share=0.05))
    reasons: Counter[str] = Counter()
    event_ids: set[str] = set()
    previous = 0
    not_utf8 = 0
    for index, line in enumerate(sim.lines):
        assert b"\n" not in line
        result = validate_touchpoint(line)
        if index in sim.invalid:
            assert isinstance(result, Rejection), line
            assert result.reason == sim.invalid[index], (line, result)
            reasons[result.reason] += 1
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                not_utf8 += 1
            continue
        assert isinstance(result, Touchpoint), (line, result)
        assert result.occurred_ms >= previous, "lines are in event-time order"
        previous = result.occurred_ms
        assert result.event_id not in event_ids
        event_ids.add(result.event_id)
    assert len(event_ids) == sim.events == len(sim.lines) - len(sim.invalid)
    assert set(reasons) == {
        "invalid_json",
        "missing_field",
        "unknown_type",
        "unknown_channel",
        "bad_timestamp",
        "bad_property",
    }
    assert not_utf8 > 0


def test_journeys_look_real():
    sim = simulate(SimulationConfig(journeys=300, seed=4))
    events = [orjson.loads(line) for line in sim.lines]
    types = Counter(e["type"] for e in events)
    assert set(types) == set(EVENT_TYPES), set(EVENT_TYPES) - set(types)
    assert {e["channel"] for e in events} >= {"ads", "email", "social", "search", "web", "chat", "checkout"}
    customers = {e["customer_id"] for e in events if "customer_id" in e}
    buyers = {e["customer_id"] for e in events if e["type"] == "order_completed"}
    assert 0 < len(buyers) < len(set(sim.journey_keys)), "some journeys buy, not all"
    assert set(sim.journey_keys) <= customers
    texts = " ".join(
        e["properties"].get("text", "") for e in events if e["type"] in ("review_posted", "chat_message")
    )
    for sample in ("ě", "đ", "ệ", "ی"):  # Czech, Croatian, Vietnamese, Persian
        assert sample in texts
    currencies = {e["properties"]["currency"] for e in events if e["type"] == "checkout_started"}
    assert len(currencies) >= 4
    sessions = {e.get("session_id") for e in events if e["channel"] == "web"}
    assert None not in sessions and len(sessions) > 300


def test_anonymous_journeys_carry_only_the_anonymous_id_until_identify():
    sim = simulate(SimulationConfig(journeys=200, seed=5, anonymous_share=0.5))
    events = [orjson.loads(line) for line in sim.lines]
    identified: dict[str, str] = {}
    for event in events:
        if event["type"] == "identify":
            assert event["anonymous_id"] not in identified
            identified[event["anonymous_id"]] = event["customer_id"]
        elif "anonymous_id" in event:
            assert "customer_id" not in event
            assert event["anonymous_id"] not in identified, "nothing anonymous after identify"
    assert 60 < len(identified) < 140
    anonymous = {e["anonymous_id"] for e in events if "anonymous_id" in e}
    assert anonymous == set(identified)
    assert {t.journey_key for t in sim.truth} <= set(sim.journey_keys)


def test_the_truth_is_exactly_what_motwatch_reports():
    started = time.perf_counter()
    sim = simulate(SimulationConfig(journeys=2000, seed=2026, invalid_share=0.01))
    generated = time.perf_counter() - started
    print(f"\nsimulated {sim.events} touchpoints in {generated:.2f}s: {sim.events / generated:,.0f} events/s")

    moments, rejects, summary = _detect(sim.lines, flush=False)

    truth = _triples(sim.truth)
    got = _triples(moments)
    assert got == truth, f"missing {truth - got}, unexpected {got - truth}"
    kinds = {t.kind for t in sim.truth}
    assert kinds == set(KINDS)
    assert {t.kind for t in sim.truth if t.status == "recovered"} == RECOVERABLE
    # Every timeout fired from the stream itself: nothing was left for a flush.
    assert summary.open_timeouts == 0
    assert summary.moments == sim.moment_counts
    assert summary.events == sim.events
    assert summary.duplicates == summary.late == 0
    assert {r["source"]["line"] - 1: r["reason"] for r in rejects} == sim.invalid


def test_returning_customers_are_one_journey_and_still_exact():
    sim = simulate(SimulationConfig(journeys=600, customers=90, seed=8, failures=FailureRates.uniform(0.25)))
    assert len(sim.journey_keys) == 90
    moments, _, summary = _detect(sim.lines)
    assert _triples(moments) == _triples(sim.truth)
    assert summary.open_timeouts == 0
    # Orders of later visits recover checkouts abandoned in earlier ones.
    assert Counter(t.status for t in sim.truth if t.kind == "abandoned_checkout")["recovered"] > 0


def test_the_tail_carries_event_time_past_the_last_deadline():
    config = SimulationConfig(journeys=50, seed=6, failures=FailureRates.uniform(0.5))
    sim = simulate(config)
    events = [orjson.loads(line) for line in sim.lines]
    quiet = [e for e in events if e.get("customer_id") in sim.quiet_keys]
    journeys = [e for e in events if e.get("customer_id") not in sim.quiet_keys]
    assert quiet and sim.end is not None
    last_journey = max(datetime.fromisoformat(e["occurred_at"]) for e in journeys)
    assert sim.end - last_journey >= timedelta(seconds=config.tail_s)
    assert all(e["type"] in ("email_open", "page_view") for e in quiet)
    assert not {t.journey_key for t in sim.truth} & set(sim.quiet_keys)


def test_no_failures_no_moments():
    sim = simulate(SimulationConfig(journeys=300, seed=10, failures=FailureRates.uniform(0)))
    assert sim.truth == []
    moments, _, _ = _detect(sim.lines, flush=True)
    assert moments == []


@pytest.mark.parametrize(
    "bad",
    [
        {"journeys": -1},
        {"journeys": 10, "customers": 11},
        {"journeys": 10, "customers": 0},
        {"start": datetime(2026, 3, 2)},
        {"arrival_rate_per_s": 0},
        {"anonymous_share": 1.5},
        {"invalid_share": 1.0},
        {"tail_s": -1},
    ],
)
def test_bad_configs_are_refused(bad):
    with pytest.raises(ValueError):
        SimulationConfig(**bad)
    with pytest.raises(ValueError):
        FailureRates(negative_review=2)


def test_start_and_zero_journeys():
    sim = simulate(SimulationConfig(journeys=3, seed=1, start=datetime(2026, 1, 5, 9, tzinfo=UTC)))
    assert orjson.loads(sim.lines[0])["occurred_at"].startswith("2026-01-05T09:")
    assert simulate(SimulationConfig(journeys=0)).lines == []


def test_a_journey_with_more_than_64_chats_still_reports_unanswered_ones():
    rates = FailureRates(**{kind: 0.0 for kind in KINDS} | {"chat_unanswered": 0.6})
    # A year of one customer's visits, all of it before today: detect takes events from the
    # future (more than max_future_skew_s past the moment it reads them) for wrong clocks.
    start = datetime(2024, 1, 1, tzinfo=UTC)
    sim = simulate(SimulationConfig(journeys=150, customers=1, seed=12, failures=rates, start=start))
    moments, _, _ = _detect(sim.lines)
    assert _triples(moments) == _triples(sim.truth)


def test_a_chat_seen_before_its_start_survives_many_newer_chats():
    """A reply that arrives before its chat's (late) start waits for the start, however many chats follow."""
    f = Feed(allowed_lateness_s=0)
    f(touch("chat_message", 5, chat_id="late", sender="agent"))
    for n in range(MAX_ITEMS + 5):
        t, chat = 100 + n * 100, f"c{n}"
        f(touch("chat_started", t, chat_id=chat), touch("chat_message", t + 1, chat_id=chat, sender="bot"))
    f(touch("chat_started", 0, chat_id="late"))  # the reply came 5 s in: answered in time
    f(touch("chat_started", 10_000, chat_id="last"))
    assert [(m.details["chat_id"], m.status) for m in f.advance(10_061)] == [("last", "failed")]
    assert f.kinds() == [("chat_unanswered", "failed")]
