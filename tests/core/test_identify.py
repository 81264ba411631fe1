"""Identify: an anonymous visit joins its customer's journey, whatever the order things arrive in."""

from __future__ import annotations

from pathlib import Path

from motwatch.commands.detect import run_detect
from motwatch.core.clock import PartitionClock
from motwatch.core.engine import JourneyEngine
from motwatch.core.journey import JourneyState
from motwatch.core.moments import Moment
from tests.journeys import ANON, CUSTOMER, LATENESS, Feed, line, ms, other, settings, touch

DATA = Path(__file__).resolve().parents[1] / "data"


def test_identify_moves_an_open_anonymous_checkout_to_the_customer():
    f = Feed()
    f(touch("checkout_started", 0, key=None, anon=ANON, cart_id="c1", value=10))
    f(touch("identify", 60, anon=ANON))
    f(touch("page_view", 90, key=None, anon=ANON, url="/gone", http_status=404))  # after the identify
    moments = f.advance(2000)
    assert sorted((m.kind, m.journey_key) for m in moments) == [
        ("abandoned_checkout", CUSTOMER),
        ("broken_link", CUSTOMER),
    ]
    assert f.engine.store[ANON].merged_into == CUSTOMER
    assert set(f.engine.store[CUSTOMER].checkouts) == {"c1"}


def test_anonymous_events_before_the_identify_stay_with_the_anonymous_journey():
    f = Feed()
    f(touch("page_view", 0, key=None, anon=ANON, url="/gone", http_status=404))
    f(touch("identify", 60, anon=ANON))
    assert [(m.kind, m.journey_key) for m in f.flush()] == [("broken_link", ANON)]


def test_anonymous_events_after_the_join_go_to_the_customer():
    f = Feed(allowed_lateness_s=0)
    f(touch("page_view", 0, key=None, anon=ANON, url="/"), touch("identify", 10, anon=ANON))
    # The join waits until the watermark has passed the identify (all of its time is in).
    assert f.engine.store[ANON].merged_into is None
    f(other(10.001))
    assert f.engine.store[ANON].merged_into == CUSTOMER
    moments = f(touch("review_posted", 20, key=None, anon=ANON, rating=1))
    assert [(m.kind, m.journey_key) for m in moments] == [("negative_review", CUSTOMER)]


def test_events_at_the_time_of_the_identify_go_by_event_id():
    f = Feed(allowed_lateness_s=0)
    f(touch("identify", 10, anon=ANON, eid="m"))
    f(touch("review_posted", 10, key=None, anon=ANON, rating=1, eid="a"))  # before it: anonymous
    f(touch("review_posted", 10, key=None, anon=ANON, rating=2, eid="z"))  # after it: the customer's
    f.flush()
    assert sorted((m.details["rating"], m.journey_key) for m in f.moments) == [(1, ANON), (2, CUSTOMER)]


def test_a_merge_arriving_before_the_customer_reaches_the_identify_waits_for_it():
    # Across partitions the anonymous journey may hand over before the customer's journey
    # has applied the identify; the state is absorbed only when it does.
    f = Feed(allowed_lateness_s=0)
    f(touch("checkout_started", 0, key=None, anon=ANON, cart_id="c1"))
    customer = JourneyEngine(f.engine.settings)
    identify = touch("identify", 100, anon=ANON)
    assert customer.process(identify).forwards == []
    f.engine.process(identify, key=ANON)  # the dispatch brings it to both journeys
    (merge,) = f.engine.advance(ms(200)).forwards
    assert (merge.key, merge.kind) == (CUSTOMER, "merge")
    assert customer.control(merge.key, merge.kind, merge.payload).moments == []
    assert customer.store[CUSTOMER].checkouts == {}  # not yet: the identify is still held
    assert customer.store[CUSTOMER].merges[identify.event_id]["state"]["key"] == ANON
    # A redelivered identify, answered again (nothing left to hand over), changes nothing.
    customer.control(CUSTOMER, "merge", {"state": None, "identify": identify.event_id})
    assert customer.store[CUSTOMER].merges[identify.event_id]["state"]["key"] == ANON
    customer.advance(ms(100.001))
    assert set(customer.store[CUSTOMER].checkouts) == {"c1"}
    assert customer.store[CUSTOMER].merges == {}
    assert [(m.kind, m.journey_key) for m in customer.advance(ms(1801)).moments] == [
        ("abandoned_checkout", CUSTOMER)
    ]


def test_an_order_by_the_customer_completes_the_anonymous_checkout():
    f = Feed()
    f(touch("checkout_started", 0, key=None, anon=ANON, cart_id="c1"))
    f(touch("identify", 30, anon=ANON), touch("order_completed", 40, order_id="o1"))
    assert f.flush() == []


def test_identify_milestones_carry_over():
    f = Feed()
    f(touch("page_view", 0, key=None, anon=ANON, url="/p/1", page_category="product", product_id="1"))
    f(touch("identify", 10, anon=ANON), touch("page_view", 20, url="/gone", http_status=404))
    assert [m.moment for m in f.flush()] == ["FMOT"]  # after the (anonymous) first product view


def test_identify_arriving_out_of_order_gives_the_same_moments():
    def run(order: list[int]) -> list[tuple]:
        events = [
            touch("checkout_started", 0, key=None, anon=ANON, cart_id="c1", eid="a"),
            touch("chat_started", 5, key=None, anon=ANON, chat_id="ch", eid="b"),
            touch("identify", 20, anon=ANON, eid="c"),
            touch("page_view", 30, key=None, anon=ANON, url="/x", http_status=500, eid="d"),
            touch("chat_message", 100, chat_id="ch", sender="agent", eid="e"),
        ]
        f = Feed()
        f(*(events[i] for i in order))
        f.flush()
        return sorted((m.kind, m.status, m.journey_key, m.occurred_ms) for m in f.moments)

    expected = run([0, 1, 2, 3, 4])
    assert expected == sorted(
        [
            ("abandoned_checkout", "failed", CUSTOMER, ms(1800)),
            ("broken_link", "failed", CUSTOMER, ms(30)),
            ("chat_unanswered", "failed", CUSTOMER, ms(65)),
            ("chat_unanswered", "recovered", CUSTOMER, ms(100)),
        ]
    )
    for order in ([4, 3, 2, 1, 0], [2, 0, 4, 1, 3], [3, 2, 4, 0, 1]):
        assert run(order) == expected, order


def test_a_second_identify_of_the_same_visitor_does_not_hold_up_the_journey():
    f = Feed()
    f(touch("identify", 0, anon=ANON), touch("identify", 50, anon=ANON))
    f(touch("payment_failed", 60, cart_id="c1"))
    f(other(60 + LATENESS))
    assert [m.kind for m in f.moments] == ["checkout_error"]
    assert not f.engine.store[CUSTOMER].blocked


def test_a_shared_device_joins_the_first_customer_only():
    f = Feed()
    f(touch("identify", 0, anon=ANON), touch("identify", 10, anon=ANON, key="cust-2"))
    f(touch("review_posted", 20, key=None, anon=ANON, rating=1))
    f(touch("review_posted", 30, key="cust-2", rating=1))
    f.advance(1000)
    assert sorted(m.journey_key for m in f.moments) == [CUSTOMER, "cust-2"]
    assert f.engine.store[ANON].merged_into == CUSTOMER


def test_the_examples_identify_joins_the_visit():
    lines = [
        line("page_view", 0, key=None, anon=ANON, url="/"),
        line("identify", 60, anon=ANON, key="cust-42"),
        line("checkout_started", 120, key=None, anon=ANON, cart_id="c"),
    ]
    moments: list[Moment] = []
    run_detect(lines, settings(), moments.append, print, flush=True)
    assert [(m.kind, m.journey_key) for m in moments] == [("abandoned_checkout", "cust-42")]


def test_a_journey_waiting_for_its_merge_survives_a_restart():
    customer = JourneyEngine(settings(allowed_lateness_s=0))
    identify = touch("identify", 100, anon=ANON)
    # The dispatch brings the identify to both journeys; the customer's hands nothing on.
    assert customer.process(identify).forwards == []
    customer.process(touch("payment_failed", 150, cart_id="c9"))
    customer.advance(ms(200))
    assert customer.store[CUSTOMER].blocked  # the payment failure waits behind the identify

    store = {k: JourneyState.from_json(s.to_json()) for k, s in customer.store.items()}
    clock = PartitionClock.from_dict(customer.clock.to_dict())
    restarted = JourneyEngine(customer.settings, store=store, clock=clock)
    restarted.restore()
    assert restarted.advance(ms(10_000)).moments == []

    anon = Feed(allowed_lateness_s=0)
    anon(touch("checkout_started", 0, key=None, anon=ANON, cart_id="c1"))
    anon.engine.process(identify, key=ANON)
    (merge,) = anon.engine.advance(ms(101)).forwards
    moments = restarted.control(merge.key, merge.kind, merge.payload).moments
    assert sorted((m.kind, m.journey_key) for m in moments) == [
        ("abandoned_checkout", CUSTOMER),
        ("checkout_error", CUSTOMER),
    ]
