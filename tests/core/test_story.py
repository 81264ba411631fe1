"""The story of one journey (``motwatch explain``): built from what the real engine did with real touchpoints.

Each test feeds touchpoints through the engine (``tests.journeys.Feed``), takes
the journey's state and the moments it reported (as on the moments topic), and
checks what the story says: touchpoints in event-time order with moment of
truth and phase, open deadlines with their due times, each moment with its
evidence and the threshold that decided it, and joins.
"""

from __future__ import annotations

import orjson

from motwatch.core.story import assemble, render, span, threshold
from tests.journeys import ANON, CUSTOMER, Feed, iso, ms, settings, touch


def _story(feed: Feed, key: str, events, **kw):
    moments = [orjson.loads(m.to_json()) for m in feed.moments]
    state = feed.engine.store.get(key)
    return assemble(key, events, moments, state, feed.engine.settings, **kw)


def test_touchpoints_in_event_time_with_moment_and_phase_and_the_abandoned_checkout():
    f = Feed(allowed_lateness_s=0)
    view = touch("page_view", 0, url="/p/desk", page_category="product", product_id="desk", eid="v1")
    start = touch("checkout_started", 60, cart_id="cart-1", value=120.0, eid="c1")
    other = touch("checkout_started", 2000, cart_id="cart-2", eid="c2")
    f(view, start)
    f.advance(1900)  # the first checkout's 30 min have passed: abandoned
    f(other)
    story = _story(f, CUSTOMER, [other, start, view, start], watermark_ms=ms(2100))

    assert [t["event_id"] for t in story["touchpoints"]] == ["v1", "c1", "c2"]  # event time, repeats once
    first = story["touchpoints"][0]
    assert (first["type"], first["channel"], first["moment"], first["occurred_at"]) == (
        "page_view",
        "web",
        "FMOT",
        iso(0),
    )
    assert {t["phase"] for t in story["touchpoints"][1:]} == {"purchase"}

    [moment] = story["moments"]
    assert (moment["kind"], moment["status"], moment["occurred_at"]) == (
        "abandoned_checkout",
        "failed",
        iso(1860),
    )
    assert moment["evidence"] == [{"event_id": "c1", "type": "checkout_started", "occurred_at": iso(60)}]
    assert moment["threshold"] == {
        "setting": "kinds.abandoned_checkout.window_s",
        "value": 1800.0,
        "rule": "no order within 30 min of checkout_started",
    }

    [deadline] = story["open_deadlines"]
    assert deadline["kind"] == "abandoned_checkout" and deadline["item"] == "cart-2"
    assert (deadline["started_at"], deadline["due_at"]) == (iso(2000), iso(3800))
    assert deadline["due_in_s"] == 1700
    assert deadline["evidence"] == [{"event_id": "c2", "type": "checkout_started", "occurred_at": iso(2000)}]
    assert deadline["threshold"]["value"] == 1800
    assert story["watermark"] == iso(2100)
    assert story["joined_from"] == [] and story["merged_into"] is None

    text = "\n".join(render(story))
    assert "not joined from an anonymous journey" in text
    assert (
        f"abandoned_checkout cart-2: due {iso(3800)} (in 28 min 20 s of event time), started {iso(2000)}"
        in text
    )
    assert (
        "threshold: no order within 30 min of checkout_started (kinds.abandoned_checkout.window_s=1800)"
        in text
    )
    assert f"evidence: c1 (checkout_started at {iso(60)})" in text


def test_the_threshold_a_moment_carries_wins_over_the_settings():
    f = Feed(allowed_lateness_s=0, kinds={"chat_unanswered": {"sla_s": 30}})
    start = touch("chat_started", 0, chat_id="ch", eid="s1")
    reply = touch("chat_message", 45, chat_id="ch", sender="agent", eid="r1")
    f(start)
    f.advance(31)
    f(reply)
    story = _story(f, CUSTOMER, [start, reply])
    failed, recovered = story["moments"]
    assert (failed["status"], recovered["status"]) == ("failed", "recovered")
    assert failed["threshold"]["value"] == 30 and recovered["threshold"]["value"] == 30
    assert [e["event_id"] for e in recovered["evidence"]] == ["s1", "r1"]
    # The same moment judged by a CLI with other settings still shows the worker's threshold.
    assert threshold("chat_unanswered", failed["details"], settings())["value"] == 30
    assert threshold("chat_unanswered", {}, settings())["value"] == 60


def test_immediate_failures_name_their_bars():
    s = settings()
    assert threshold("negative_review", {"rating": 1}, s)["rule"] == "a review rating <= 2"
    assert threshold("low_satisfaction", {"metric": "nps", "score": 3}, s)["setting"] == (
        "kinds.low_satisfaction.max_nps"
    )
    assert threshold("checkout_error", {"step": "payment"}, s)["rule"].startswith("a payment_failed")
    assert threshold("checkout_error", {"step": "address", "http_status": 502}, s)["rule"].endswith(">= 500")
    assert threshold("first_impression_bounce", {"threshold_ms": 7000.0}, s)["value"] == 7
    assert [span(45), span(1800), span(7 * 86400), span(3700)] == ["45 s", "30 min", "7 d", "1 h 1 min"]


def test_joined_from_an_anonymous_journey_and_the_anonymous_side():
    f = Feed(allowed_lateness_s=0)
    browse = touch("checkout_started", 0, key=None, anon=ANON, cart_id="cart-a", eid="a1")
    identify = touch("identify", 10, key=CUSTOMER, anon=ANON, eid="id1")
    f(browse, identify)
    f.advance(20)
    story = _story(f, CUSTOMER, [identify])
    assert story["joined_from"] == [{"anonymous_id": ANON, "identify": "id1", "at": iso(10)}]
    # The anonymous journey's open checkout came over with it.
    assert [d["item"] for d in story["open_deadlines"]] == ["cart-a"]
    assert f"  joined from anonymous journey {ANON} at {iso(10)} (identify id1)" in render(story)

    anonymous = _story(f, ANON, [browse, identify])
    assert anonymous["merged_into"] == CUSTOMER
    assert anonymous["open_deadlines"] == []  # handed over
    assert [t.get("journey_key") for t in anonymous["touchpoints"]] == [None, CUSTOMER]


def test_without_state_the_story_is_the_touchpoints_and_moments():
    events = [
        touch("review_posted", 5, rating=1, eid="rv"),
        touch("page_view", 1, url="/p/a", page_category="product", product_id="a", eid="pv"),
    ]
    moment = {
        "moment_id": "x" * 32,
        "journey_key": CUSTOMER,
        "kind": "negative_review",
        "status": "failed",
        "occurred_at": iso(5),
        "evidence": ["rv", "gone"],
        "details": {"rating": 1},
    }
    noise = {**moment, "moment_id": "y" * 32, "journey_key": "someone-else"}
    story = assemble(CUSTOMER, events, [moment, noise, moment], None, settings())
    assert story["state"] is None and story["open_deadlines"] == [] and story["watermark"] is None
    assert [t["event_id"] for t in story["touchpoints"]] == ["pv", "rv"]
    # Milestones come from the touchpoints: a review after a product view is not ZMOT.
    assert story["touchpoints"][1]["moment"] != "ZMOT"
    [m] = story["moments"]
    assert m["evidence"] == [
        {"event_id": "rv", "type": "review_posted", "occurred_at": iso(5)},
        {"event_id": "gone"},
    ]
    text = render(story)
    assert "  watermark unknown" in text and "Open deadlines (0)" in text
