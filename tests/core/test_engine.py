"""The journey engine on event time: watermark, timeouts, lateness, duplicates, identify, restarts.

Default lateness (120 s) unless a test says otherwise: an event is held until the
watermark (latest event time - 120 s) reaches it. Nothing here waits for real time.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from motwatch.commands.detect import run_detect
from motwatch.core.clock import NEVER, PartitionClock
from motwatch.core.engine import JourneyEngine
from motwatch.core.events import Touchpoint
from motwatch.core.journey import JourneyState
from motwatch.core.moments import Moment
from motwatch.core.records import Progress
from motwatch.core.validation import validate_touchpoint
from tests.journeys import CUSTOMER, Feed, line, ms, settings, touch

DATA = Path(__file__).resolve().parents[1] / "data"

LATENESS = 120


def other(t: float) -> Touchpoint:
    """An uneventful touchpoint of another journey: it only moves event time on."""
    return touch("page_view", t, key="someone-else", url="/")


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


# -- state survives a restart ----------------------------------------------------------------


def _medley() -> list[Touchpoint]:
    """Several journeys with open timeouts, held events and duplicates across the cut."""
    a, b, c = "cust-a", "cust-b", "cust-c"
    return [
        touch("checkout_started", 0, key=a, cart_id="a1", eid="1"),
        touch("chat_started", 5, key=b, chat_id="b-chat", eid="2"),
        touch("page_view", 8, key=c, url="/p/1", page_category="product", product_id="1", eid="3"),
        touch("onboarding_started", 9, key=c, plan="pro", eid="4"),
        touch("payment_failed", 10, key=a, cart_id="a1", eid="5"),
        touch("checkout_started", 11, key=None, anon="anon-m", cart_id="m1", eid="16"),
        touch(
            "page_exit", 12, key=c, url="/p/1", page_category="product", product_id="1", dwell_ms=900, eid="6"
        ),
        touch("chat_message", 100, key=b, chat_id="b-chat", sender="agent", eid="7"),
        touch("page_view", 150, key=c, url="/gone", http_status=404, session="s", eid="8"),
        touch("identify", 200, key=c, anon="anon-m", eid="17"),
        touch("page_view", 210, key=None, anon="anon-m", url="/err", http_status=500, eid="18"),
        # -- a restart may come here --
        touch("payment_failed", 10, key=a, cart_id="a1", eid="5"),  # a duplicate from before the cut
        touch("checkout_started", 400, key=b, cart_id="b1", eid="9"),
        touch("order_completed", 1500, key=b, order_id="ob", cart_id="b1", eid="10"),
        touch("page_view", 1700, key=c, url="/gone", http_status=404, session="s", eid="11"),
        touch("order_completed", 2100, key=a, order_id="oa", cart_id="a1", eid="12"),
        touch("survey_response", 2200, key=b, metric="nps", score=3, eid="13"),
        touch("onboarding_completed", 700_000, key=c, plan="pro", eid="14"),
        touch("review_posted", 700_100, key=c, rating=2, eid="15"),
    ]


def _records(moments: list[Moment]) -> list[dict]:
    return [m.to_dict() for m in moments]


def test_a_restart_from_serialised_state_gives_the_same_moments():
    events = _medley()
    whole = Feed()
    whole(*events)
    whole.flush()

    for cut in range(1, len(events)):
        before = Feed()
        before(*events[:cut])
        # A new engine whose store holds only what a changelog would: the serialised states.
        store = {k: JourneyState.from_json(s.to_json()) for k, s in before.engine.store.items()}
        clock = PartitionClock.from_dict(before.engine.clock.to_dict())
        after = Feed()
        after.engine = JourneyEngine(before.engine.settings, store=store, clock=clock)
        after.engine.restore()
        after(*events[cut:])
        after.flush()
        assert _records(before.moments + after.moments) == _records(whole.moments), f"cut at {cut}"
        assert before.duplicates + after.duplicates == whole.duplicates == 1


def test_the_medley_reports_what_it_should():
    f = Feed()
    f(*_medley())
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
    f(*_medley())
    f.flush()
    assert {m.journey_key for m in f.moments if m.details.get("cart_id") == "m1"} == {"cust-c"}
    assert {m.journey_key for m in f.moments if m.details.get("url") == "/err"} == {"cust-c"}


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


def test_dedupe_memory_survives_serialisation():
    state = JourneyState(key="k")
    state.last_seen_ms = 50
    for i in range(5):
        state.remember(f"id{i}", i * 10, max_ids=3, window_ms=10_000)
    again = JourneyState.from_json(state.to_json())
    assert again.seen == state.seen == {"id2": 20, "id3": 30, "id4": 40}
    assert again.to_json() == state.to_json()


def test_a_packed_state_reads_back_the_same_and_plain_json_still_reads():
    f = Feed()
    f(touch("checkout_started", 0, cart_id="c1"), touch("chat_message", 5, sender="customer", chat_id="h1"))
    state = f.engine.store[CUSTOMER]
    packed = state.pack()
    assert len(packed) < len(state.to_json())
    assert JourneyState.unpack(packed).to_json() == state.to_json()
    assert JourneyState.unpack(state.to_json()).to_json() == state.to_json()
    # Empty collections are left out of the stored form and read back as empty.
    empty = JourneyState(key="k", first_seen_ms=1, last_seen_ms=2)
    assert orjson.loads(empty.to_json()) == {"v": 1, "key": "k", "first_seen_ms": 1, "last_seen_ms": 2}
    assert JourneyState.unpack(empty.pack()) == empty


def test_held_events_read_back_are_written_again_as_they_were_stored():
    """Read back, a held event keeps the form it was stored in, and that form is its own dump."""
    events = [validate_touchpoint(raw) for raw in (DATA / "examples.jsonl").read_bytes().splitlines()]
    events = [e for e in events if isinstance(e, Touchpoint)]
    assert len({e.type for e in events}) >= 10
    state = JourneyState(key="k", first_seen_ms=1, last_seen_ms=2, pending=events)
    again = JourneyState.unpack(state.pack())
    assert [e.event_id for e in again.pending] == [e.event_id for e in events]
    for held, original in zip(again.pending, events, strict=True):
        assert "stored" in vars(held)  # kept from the read, not dumped again on the next write
        assert held.stored == original.stored
        assert held == original
        assert held.model_dump(mode="json", exclude_none=True) == held.stored
    assert again.pack() == state.pack()


def test_restore_rebuilds_the_timers():
    f = Feed()
    f(touch("checkout_started", 0, cart_id="c1"), other(10))
    engine = JourneyEngine(f.engine.settings, store=dict(f.engine.store), clock=f.engine.clock)
    assert engine.advance(ms(5000)).moments == []  # no timer index yet
    engine.restore()
    assert [m.kind for m in engine.advance(ms(5001)).moments] == ["abandoned_checkout"]


def test_the_restored_timer_index_holds_the_stores_own_keys():
    """Restored from packed states, the index shares the store's key strings instead of copies."""
    f = Feed()
    f(touch("checkout_started", 0, cart_id="c1"), other(10))
    packed = {"".join(k): s.pack() for k, s in f.engine.store.items()}  # fresh key objects

    class Packed(dict):
        def get(self, key, default=None):
            raw = super().get(key)
            return default if raw is None else JourneyState.unpack(raw)

    engine = JourneyEngine(f.engine.settings, store=Packed(packed), clock=f.engine.clock)
    engine.restore()
    own = {id(k) for k in packed}
    index = engine._due
    held = [key for _, key in index._heap] + [key for keys in index._wheel.values() for key in keys]
    assert held and all(id(key) in own for key in held)
    assert len(index) == len(packed) and all(id(key) in own for key in index._due)


# -- identify ----------------------------------------------------------------------------------

ANON = "anon-7f3"


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


# -- determinism and expiry ---------------------------------------------------------------------


def test_two_runs_give_identical_output():
    lines = [e.model_dump_json().encode() for e in _medley()]
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


# -- ticks and source progress -------------------------------------------------------------------


def test_an_idle_partition_follows_the_wall_clock_after_the_idle_period():
    clock = PartitionClock(lateness_ms=0, self_timed=False, idle_advance_ms=30_000)
    engine = JourneyEngine(settings(allowed_lateness_s=0), clock=clock)
    engine.progress(Progress({"p0": ms(0)}))
    engine.process(touch("chat_started", 0, chat_id="c"))
    engine.tick(1_000_000)
    engine.tick(1_001_000)  # no activity since the last tick: idle from 1_000_000
    wall = 1_001_000
    while clock.watermark_ms <= ms(60):
        assert wall < 1_200_000, "the watermark never moved"
        wall += 1000
        step = engine.tick(wall)
        if clock.watermark_ms <= ms(60):
            assert step.moments == []
    # 30 s of idleness, then a second of event time per second of wall time.
    assert wall == 1_000_000 + 30_000 + 61_000
    assert [m.kind for m in step.moments] == ["chat_unanswered"]


def test_activity_resets_the_idle_period():
    clock = PartitionClock(lateness_ms=0, self_timed=False, idle_advance_ms=5_000)
    clock.source_progress("p0", 10_000)
    for wall in range(0, 20_000, 1000):
        clock.on_tick(wall)
        clock.source_progress("p0", 10_000)  # a record arrived (no newer event time)
    assert clock.watermark_ms == 10_000


def test_a_quiet_source_with_a_backlog_keeps_holding_the_pace():
    """A source reported behind (records waiting to be read) is slow, not idle: a worker catching
    up reads its partitions unevenly, and dropping it would make its events late."""
    clock = PartitionClock(lateness_ms=0, self_timed=False, idle_advance_ms=10**9)
    clock.source_progress("p0", 100_000, behind=True)
    clock.source_progress("p1", 100_000, behind=False)
    for wall in range(0, 5000, 1000):
        clock.on_tick(wall)
        clock.source_progress("p1", 200_000 + wall)  # p1 moves on; p0 makes no progress
    assert clock.watermark_ms == 100_000, "a source with a backlog must hold the watermark"
    clock.source_progress("p0", 100_000, behind=False)  # caught up, and quiet from now on
    clock.on_tick(5000)
    clock.on_tick(6000)
    assert clock.watermark_ms == 204_000, "a caught-up quiet source no longer holds the pace"


def test_no_idle_advance_while_a_source_has_a_backlog():
    clock = PartitionClock(lateness_ms=0, self_timed=False, idle_advance_ms=1000)
    clock.source_progress("p0", 10_000, behind=True)
    for wall in range(0, 20_000, 1000):
        clock.on_tick(wall)
    assert clock.watermark_ms == 10_000
    clock.source_progress("p0", 10_000, behind=False)
    for wall in range(20_000, 30_000, 1000):
        clock.on_tick(wall)
    assert clock.watermark_ms > 10_000


def test_a_clock_saved_before_backlogs_were_reported_still_loads():
    saved = PartitionClock(lateness_ms=0, self_timed=False).to_dict()
    del saved["behind"]
    assert PartitionClock.from_dict(saved).behind == []


def test_ticks_out_of_order_are_ignored():
    clock = PartitionClock(lateness_ms=0, self_timed=False, idle_advance_ms=0)
    clock.source_progress("p0", 10_000)
    clock.on_tick(5000)
    clock.on_tick(6000)
    mark = clock.watermark_ms
    clock.on_tick(5500)
    assert clock.watermark_ms == mark


def test_a_self_timed_clock_ignores_nothing_and_a_shell_clock_waits_for_sources():
    own = PartitionClock(lateness_ms=1000)
    own.observe(50_000)
    assert own.watermark_ms == 49_000
    shell = PartitionClock(lateness_ms=1000, self_timed=False)
    shell.observe(50_000)
    assert shell.watermark_ms == NEVER


def test_the_slowest_active_source_sets_the_pace():
    clock = PartitionClock(lateness_ms=1000, self_timed=False, idle_advance_ms=10**9)
    clock.source_progress("p0", 100_000)
    clock.source_progress("p1", 100_000)
    clock.on_tick(0)
    clock.source_progress("p0", 300_000)
    assert clock.watermark_ms == 99_000  # p1 holds it back
    clock.source_progress("p1", 150_000)
    assert clock.watermark_ms == 149_000
    clock.source_progress("p2", 120_000)  # a new source: the watermark never goes back
    assert clock.watermark_ms == 149_000
    clock.source_progress("p1", 400_000)
    clock.source_progress("p2", 200_000)
    assert clock.watermark_ms == 199_000


def test_a_source_without_progress_over_a_tick_interval_stops_holding_back():
    clock = PartitionClock(lateness_ms=1000, self_timed=False, idle_advance_ms=10**9)
    clock.source_progress("p0", 100_000)
    clock.source_progress("p1", 100_000)
    clock.on_tick(0)
    clock.source_progress("p0", 300_000)
    clock.on_tick(1000)  # p1 made progress since the last tick? no: it no longer holds the pace
    assert clock.watermark_ms == 299_000
    # Once it moves again, it is active again (but the watermark never goes back).
    clock.source_progress("p1", 200_000)
    clock.source_progress("p0", 500_000)
    assert clock.watermark_ms == 299_000
    clock.on_tick(2000)  # both active: the slower one sets the pace
    assert clock.watermark_ms == 299_000
    clock.source_progress("p1", 600_000)
    assert clock.watermark_ms == 499_000


def test_source_progress_fires_timeouts_through_the_engine():
    clock = PartitionClock(lateness_ms=0, self_timed=False)
    engine = JourneyEngine(settings(allowed_lateness_s=0), clock=clock)
    engine.progress(Progress({"p0": ms(0)}))
    engine.process(touch("checkout_started", 0, cart_id="c"))
    engine.progress(Progress({"p1": ms(1801)}))
    assert engine.progress(Progress({"p0": ms(1800)})).moments == []
    assert [m.kind for m in engine.progress(Progress({"p0": ms(1801)})).moments] == ["abandoned_checkout"]


def test_the_clock_survives_serialisation():
    clock = PartitionClock(lateness_ms=1000, self_timed=False)
    clock.source_progress("p0", 5000)
    clock.on_tick(10)
    assert PartitionClock.from_dict(clock.to_dict()) == clock
