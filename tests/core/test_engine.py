"""The journey engine on event time: watermark, timeouts, lateness, duplicates, determinism, expiry.

Default lateness (120 s) unless a test says otherwise: an event is held until the
watermark (latest event time - 120 s) reaches it. Nothing here waits for real time.
"""

from __future__ import annotations

from pathlib import Path

from motwatch.commands.detect import run_detect
from motwatch.core.clock import NEVER
from tests.journeys import CUSTOMER, LATENESS, Feed, medley, ms, other, settings, touch

DATA = Path(__file__).resolve().parents[1] / "data"


# -- watermark and timeouts ----------------------------------------------------------


def test_watermark_is_the_latest_event_time_less_the_lateness():
    f = Feed()
    assert f.engine.clock.watermark_ms == NEVER
    f(touch("page_view", 500, url="/"))
    assert f.engine.clock.watermark_ms == ms(500 - LATENESS)
    f(touch("page_view", 450, url="/"))  # older: the watermark never goes back
    assert f.engine.clock.watermark_ms == ms(500 - LATENESS)
    f(touch("page_view", 900, url="/"))
    assert f.engine.clock.watermark_ms == ms(900 - LATENESS)


def test_a_timeout_fires_only_once_the_watermark_has_passed_it():
    f = Feed()
    f(touch("checkout_started", 0, cart_id="c1"))
    assert f(other(1800 + LATENESS)) == []  # watermark == deadline: not passed
    moments = f(other(1800.001 + LATENESS))
    assert [(m.kind, m.journey_key, m.occurred_ms) for m in moments] == [
        ("abandoned_checkout", CUSTOMER, ms(1800))
    ]


def test_advance_moves_the_watermark_without_events():
    f = Feed()
    f(touch("checkout_started", 0, cart_id="c1"))
    assert f.advance(1799) == []
    assert f.advance(1800) == []
    assert [m.kind for m in f.advance(1801)] == ["abandoned_checkout"]
    assert f.advance(5000) == []  # once


def test_events_wait_for_the_watermark():
    f = Feed()
    step = f.engine.process(touch("payment_failed", 0, cart_id="c1"))
    assert step.moments == [] and step.applied == []
    step = f.engine.process(other(LATENESS))
    assert [m.kind for m in step.moments] == ["checkout_error"]


def test_with_no_lateness_events_apply_at_once():
    f = Feed(allowed_lateness_s=0)
    assert [m.kind for m in f(touch("payment_failed", 0, cart_id="c1"))] == ["checkout_error"]


def test_the_onboarding_week_runs_on_event_time():
    f = Feed()
    f(touch("onboarding_started", 0, plan="home"))
    week = 7 * 86400
    assert f.advance(week - 1) == []
    assert f.advance(week) == []
    stalled = f.advance(week + 1)
    assert [(m.kind, m.occurred_ms) for m in stalled] == [("onboarding_stalled", ms(week))]
    # A completion weeks later (in event time) is a recovery.
    assert [
        m.status for m in f(touch("onboarding_completed", 9 * 86400, plan="home"), other(10 * 86400))
    ] == ["recovered"]


def test_onboarding_completed_within_the_week_via_events_alone():
    f = Feed()
    f(touch("onboarding_started", 0), touch("onboarding_completed", 6 * 86400))
    f(other(8 * 86400))  # the watermark passes the deadline: nothing is due
    assert f.moments == []


# -- order and lateness -------------------------------------------------------------------


def test_out_of_order_events_within_the_lateness_are_applied_in_event_time_order():
    f = Feed()
    broken = touch("page_view", 20, url="/gone", http_status=404)
    view = touch("page_view", 10, url="/p/lamp", page_category="product", product_id="lamp")
    f(broken, view)  # the product view arrives second but happened first
    moments = f.flush()
    assert [(m.kind, m.moment) for m in moments] == [("broken_link", "FMOT")]
    assert f.late == 0


def test_applied_events_come_out_in_event_time_order():
    engine = Feed().engine
    events = [touch("page_view", t, url=f"/{t}") for t in (30, 10, 20, 15)]
    for event in events:
        engine.process(event)
    step = engine.advance(ms(100))
    assert [e.occurred_ms for e in step.applied] == sorted(e.occurred_ms for e in events)


def test_a_late_order_after_a_reported_abandonment_is_a_recovery():
    f = Feed()
    f(touch("checkout_started", 0, cart_id="c1"))
    f(other(2000 + LATENESS))  # watermark 2000: abandonment reported
    assert f.kinds() == [("abandoned_checkout", "failed")]
    order = touch("order_completed", 1900, order_id="o1", cart_id="c1")
    step = f.engine.process(order)
    assert step.late
    assert [(m.kind, m.status) for m in step.moments] == [("abandoned_checkout", "recovered")]
    assert step.moments[0].occurred_ms == order.occurred_ms
    assert f.engine.stats["late"] == 1


def test_a_late_event_is_still_applied_and_counted():
    f = Feed()
    f(other(1000))
    moments = f(touch("review_posted", 10, rating=1))
    assert f.late == 1
    assert [m.kind for m in moments] == ["negative_review"]


def test_an_order_arriving_before_its_checkout_started_means_no_abandonment():
    f = Feed()
    f(touch("order_completed", 100, order_id="o1", cart_id="c1"))
    f(touch("checkout_started", 50, cart_id="c1"))  # within the lateness: not late
    assert f.late == 0
    assert f.flush() == [] and f.moments == []


def test_a_late_checkout_started_after_its_order_is_settled_by_the_order():
    f = Feed(allowed_lateness_s=0)
    f(touch("order_completed", 100, order_id="o1", cart_id="c1"))
    f(touch("checkout_started", 50, cart_id="c1"))  # late
    assert f.late == 1
    assert f.flush() == []


def test_an_order_within_the_window_clears_every_open_checkout_of_the_journey():
    f = Feed()
    f(touch("checkout_started", 0, cart_id="c1"), touch("checkout_started", 100, cart_id="c2"))
    f(touch("checkout_started", 150, cart_id="c3"))
    f(touch("order_completed", 200, order_id="o1", cart_id="c2"))
    f(touch("checkout_started", 300, cart_id="c4"))  # started after the order: still open
    f.flush()
    assert [(m.kind, m.details["cart_id"]) for m in f.moments] == [("abandoned_checkout", "c4")]


def test_an_order_without_cart_id_clears_open_checkouts_too():
    f = Feed()
    f(touch("checkout_started", 0, cart_id="c1"), touch("order_completed", 10, order_id="o1"))
    assert f.flush() == []


# -- duplicates ------------------------------------------------------------------------------


def test_a_duplicate_changes_nothing_and_is_counted():
    f = Feed(allowed_lateness_s=0)
    event = touch("payment_failed", 0, cart_id="c1", eid="dup-1")
    f(event)
    state_before = f.engine.store[CUSTOMER].to_json()
    f(event, event)
    assert f.duplicates == 2
    assert f.engine.stats["duplicates"] == 2
    assert len(f.moments) == 1
    assert f.engine.store[CUSTOMER].to_json() == state_before


def test_a_duplicate_is_dropped_while_its_first_copy_is_still_held():
    f = Feed()
    first = touch("review_posted", 0, rating=1, eid="r1")
    f(first)
    assert f.engine.store[CUSTOMER].pending == [first]
    # Same id, other content: still the same event.
    f(touch("review_posted", 1, rating=2, eid="r1"))
    assert f.duplicates == 1
    assert len(f.engine.store[CUSTOMER].pending) == 1
    assert [m.details["rating"] for m in f.flush()] == [1]


def test_the_same_event_id_in_two_journeys_is_no_duplicate():
    f = Feed(allowed_lateness_s=0)
    f(
        touch("review_posted", 0, rating=1, eid="x"),
        touch("review_posted", 0, rating=1, eid="x", key="cust-2"),
    )
    assert f.duplicates == 0
    assert {m.journey_key for m in f.moments} == {CUSTOMER, "cust-2"}


def test_the_dedupe_memory_is_bounded():
    f = Feed(allowed_lateness_s=0, dedupe_max_ids=3)
    events = [touch("page_view", t, url=f"/{t}", eid=f"v{t}") for t in range(10)]
    f(*events)
    seen = f.engine.store[CUSTOMER].seen
    assert list(seen) == ["v7", "v8", "v9"]  # the newest
    f(events[9])
    assert f.duplicates == 1
    f(events[0])  # forgotten: processed again (and late)
    assert f.duplicates == 1 and f.late == 1


def test_a_held_events_id_outlives_the_dedupe_bound_until_it_is_applied():
    """The bounded memory never forgets a held event: its duplicate is dropped, not held twice."""
    f = Feed(dedupe_max_ids=3)
    first = touch("review_posted", 0, rating=1, eid="r1")
    f(first, *[touch("page_view", t, url=f"/{t}", eid=f"v{t}") for t in range(1, 8)])
    state = f.engine.store[CUSTOMER]
    assert len(state.pending) == 8 and set(state.seen) >= {"r1", "v7"}
    f(touch("review_posted", 9, rating=2, eid="r1"))
    assert f.duplicates == 1
    assert [m.details["rating"] for m in f.advance(100) if m.kind == "negative_review"] == [1]
    # Once applied, their ids are bounded again.
    assert not f.engine.store[CUSTOMER].pending
    f(touch("page_view", 101, url="/later", eid="v101"))
    assert set(f.engine.store[CUSTOMER].seen) == {"v6", "v7", "v101"}


def test_the_dedupe_memory_forgets_ids_older_than_its_window():
    f = Feed(allowed_lateness_s=0, dedupe_window_s=60)
    f(touch("page_view", 0, url="/", eid="old"), touch("page_view", 30, url="/", eid="mid"))
    f(touch("page_view", 100, url="/", eid="new"))
    assert set(f.engine.store[CUSTOMER].seen) == {"new"}


def test_the_medley_reports_what_it_should():
    f = Feed()
    f(*medley())
    f.flush()
    assert sorted(f.kinds()) == sorted(
        [
            ("abandoned_checkout", "failed"),
            ("abandoned_checkout", "failed"),
            ("abandoned_checkout", "recovered"),
            ("broken_link", "failed"),
            ("broken_link", "failed"),
            ("chat_unanswered", "failed"),
            ("chat_unanswered", "recovered"),
            ("checkout_error", "failed"),
            ("first_impression_bounce", "failed"),
            ("low_satisfaction", "failed"),
            ("negative_review", "failed"),
            ("onboarding_stalled", "failed"),
            ("onboarding_stalled", "recovered"),
        ]
    )


def test_the_anonymous_part_of_the_medley_is_reported_under_the_customer():
    f = Feed()
    f(*medley())
    f.flush()
    assert {m.journey_key for m in f.moments if m.details.get("cart_id") == "m1"} == {"cust-c"}
    assert {m.journey_key for m in f.moments if m.details.get("url") == "/err"} == {"cust-c"}


# -- determinism and expiry ---------------------------------------------------------------------


def test_two_runs_give_identical_output():
    lines = [e.model_dump_json().encode() for e in medley()]
    runs = []
    for _ in range(2):
        out: list[bytes] = []
        run_detect(lines, settings(), lambda m, out=out: out.append(m.to_json()), print, flush=True)
        runs.append(out)
    assert runs[0] == runs[1]
    assert len(runs[0]) == 13
    assert len(set(runs[0])) == 13  # ids and records distinct


def test_moment_ids_depend_on_the_journey_not_on_arrival():
    def ids(key: str, order: list[int]) -> set[str]:
        events = [
            touch("checkout_started", 0, key=key, cart_id="c1", eid="x1"),
            touch("payment_failed", 5, key=key, cart_id="c1", eid="x2"),
        ]
        f = Feed()
        f(*(events[i] for i in order))
        f.flush()
        return {m.moment_id for m in f.moments}

    assert ids("k1", [0, 1]) == ids("k1", [1, 0])
    assert len(ids("k1", [0, 1])) == 2
    assert ids("k1", [0, 1]).isdisjoint(ids("k2", [0, 1]))


def test_journey_state_expires_after_the_quiet_period():
    f = Feed(journey_expiry_days=1)
    f(touch("page_view", 0, url="/"), touch("page_view", 0, key="cust-2", url="/"))
    f(touch("page_view", 43_200, key="cust-3", url="/"))
    assert len(f.engine.store) == 3
    step = f.engine.advance(ms(86_400))
    assert step.expired == 0 and len(f.engine.store) == 3
    step = f.engine.advance(ms(86_400.001))
    assert step.expired == 2
    assert set(f.engine.store) == {"cust-3"}
    assert f.engine.journey_count() == 1
    f.engine.advance(ms(43_200 + 86_400.001))
    assert len(f.engine.store) == 0 and f.engine.stats["expired"] == 3


def test_a_journey_with_an_open_timeout_outlives_the_quiet_period_until_it_fires():
    f = Feed(journey_expiry_days=0.001, allowed_lateness_s=0)  # 86.4 s
    f(touch("checkout_started", 0, cart_id="c1"))
    f.advance(1000)
    assert CUSTOMER in f.engine.store
    assert [m.kind for m in f.advance(1800.001)] == ["abandoned_checkout"]
    f.advance(1900)
    assert CUSTOMER not in f.engine.store


def test_an_expired_journey_starts_afresh():
    f = Feed(journey_expiry_days=1, allowed_lateness_s=0)
    f(touch("page_exit", 0, url="/p/1", page_category="product", product_id="1", dwell_ms=100))
    f.advance(2 * 86_400)
    assert CUSTOMER not in f.engine.store
    f(touch("page_exit", 3 * 86_400, url="/p/1", page_category="product", product_id="1", dwell_ms=100))
    assert f.engine.store[CUSTOMER].first_seen_ms == ms(3 * 86_400)
    # Forgotten: the same failure again is reported again, under the same id (a recognisable repeat).
    assert [m.kind for m in f.moments] == ["first_impression_bounce"] * 2
    assert f.moments[0].moment_id == f.moments[1].moment_id
