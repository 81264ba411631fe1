"""Every failure kind: both sides of its threshold, its moment of truth, and at most once per cause.

No lateness here (``Feed(allowed_lateness_s=0)``): each event is applied as it
arrives, and ``advance`` moves event time to fire timeouts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from motwatch.commands.detect import run_detect
from motwatch.core.moments import Moment
from tests.journeys import Feed, iso, ms, touch

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples.jsonl"


def feed(**overrides) -> Feed:
    return Feed(allowed_lateness_s=0, **overrides)


def only(moments: list[Moment], kind: str | None = None, status: str = "failed") -> Moment:
    found = [m for m in moments if (kind is None or m.kind == kind) and m.status == status]
    assert len(found) == 1, moments
    return found[0]


def product_view(t: float, product: str = "lamp", **kw) -> object:
    return touch(
        "page_view",
        t,
        url=f"https://shop.example/p/{product}",
        page_category="product",
        product_id=product,
        **kw,
    )


# -- abandoned_checkout --------------------------------------------------------------


def test_checkout_without_order_is_abandoned_when_the_window_has_passed():
    f = feed()
    start = touch("checkout_started", 0, cart_id="cart-1", value=39.5, currency="EUR")
    f(start)
    assert f.advance(1800) == []  # the deadline itself: not yet passed
    moment = only(f.advance(1800.001), "abandoned_checkout")
    assert moment.occurred_ms == ms(1800)  # the failure became certain at the deadline
    assert moment.to_dict()["occurred_at"] == iso(1800)
    assert moment.evidence == (start.event_id,)
    assert moment.details == {"cart_id": "cart-1", "window_s": 1800, "value": 39.5, "currency": "EUR"}
    assert (moment.moment, moment.phase, moment.severity, moment.owner, moment.channel) == (
        "FMOT",
        "purchase",
        "high",
        "ecommerce",
        "checkout",
    )


def test_order_at_the_end_of_the_window_is_in_time():
    f = feed()
    f(touch("checkout_started", 0, cart_id="cart-1"), touch("order_completed", 1800, order_id="o1"))
    assert f.flush() == [] and f.moments == []


def test_order_just_after_the_window_reports_abandonment_then_recovery():
    f = feed()
    start = touch("checkout_started", 0, cart_id="cart-1")
    order = touch("order_completed", 1800.001, order_id="o1", cart_id="cart-1")
    f(start, order)
    failed = only(f.moments, "abandoned_checkout")
    recovered = only(f.moments, "abandoned_checkout", "recovered")
    assert failed.occurred_ms == ms(1800)
    assert recovered.occurred_ms == order.occurred_ms
    assert recovered.evidence == (start.event_id, order.event_id)
    assert recovered.details["recovered_after_s"] == pytest.approx(1800.001)
    assert recovered.moment_id != failed.moment_id


def test_window_comes_from_config():
    f = feed(kinds={"abandoned_checkout": {"window_s": 60}})
    f(touch("checkout_started", 0, cart_id="c"))
    assert f.advance(60) == []
    assert only(f.advance(60.001)).details["window_s"] == 60


def test_one_abandonment_per_cart():
    f = feed()
    f(touch("checkout_started", 0, cart_id="c1"), touch("checkout_started", 10, cart_id="c1"))
    f(touch("checkout_started", 20, cart_id="c2"))
    f.flush()
    assert sorted(m.details["cart_id"] for m in f.moments) == ["c1", "c2"]


def test_an_order_of_another_customer_does_not_complete_a_checkout():
    f = feed()
    f(touch("checkout_started", 0, cart_id="c1"), touch("order_completed", 10, order_id="o", key="cust-2"))
    f.flush()
    assert f.kinds() == [("abandoned_checkout", "failed")]


# -- checkout_error -----------------------------------------------------------------------


def test_payment_failed_is_a_checkout_error():
    f = feed()
    event = touch("payment_failed", 0, cart_id="c1", reason="card_declined")
    moment = only(f(event), "checkout_error")
    assert moment.details == {"cart_id": "c1", "step": "payment", "reason": "card_declined"}
    assert moment.evidence == (event.event_id,)
    assert moment.occurred_ms == event.occurred_ms
    assert (moment.moment, moment.phase, moment.severity, moment.owner) == (
        "FMOT",
        "purchase",
        "critical",
        "ecommerce",
    )


@pytest.mark.parametrize(
    ("status", "fails"), [(None, False), (200, False), (499, False), (500, True), (503, True)]
)
def test_checkout_step_fails_from_500(status, fails):
    props = {"cart_id": "c1", "step": "shipping"} | ({"http_status": status} if status else {})
    moments = feed()(touch("checkout_step", 0, **props))
    assert [m.kind for m in moments] == (["checkout_error"] if fails else [])
    if fails:
        assert moments[0].details == {"cart_id": "c1", "step": "shipping", "http_status": status}


def test_one_checkout_error_per_cart_and_step():
    f = feed()
    f(*(touch("checkout_step", t, cart_id="c1", step="payment", http_status=502) for t in (0, 5, 9)))
    f(touch("checkout_step", 10, cart_id="c1", step="review", http_status=500))
    f(touch("checkout_step", 11, cart_id="c2", step="payment", http_status=500))
    assert len(f.moments) == 3


# -- broken_link ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "fails"), [(200, False), (399, False), (400, True), (404, True), (500, True)]
)
def test_page_view_is_broken_from_400(status, fails):
    moments = feed()(touch("page_view", 0, url="https://shop.example/x", http_status=status))
    assert [m.kind for m in moments] == (["broken_link"] if fails else [])


@pytest.mark.parametrize(("status", "fails"), [(None, False), (399, False), (400, True)])
def test_link_click_is_broken_by_its_target(status, fails):
    props = {"url": "https://shop.example/a", "target_url": "https://shop.example/gone"}
    moments = feed()(
        touch("link_click", 0, session="s1", **props, **({"http_status": status} if status else {}))
    )
    assert [m.kind for m in moments] == (["broken_link"] if fails else [])
    if fails:
        assert moments[0].details == props | {"http_status": status, "session_id": "s1"}


def test_broken_link_moment_before_product_view_after_it_and_after_first_order():
    f = feed()
    zmot = only(f(touch("page_view", 0, url="/a", http_status=404)))
    f(product_view(10))
    fmot = only(f(touch("page_view", 20, url="/b", http_status=404)))
    f(touch("order_completed", 30, order_id="o1"))
    smot = only(f(touch("page_view", 40, url="/c", http_status=404)))
    assert (zmot.moment, fmot.moment, smot.moment) == ("ZMOT", "FMOT", "SMOT")
    assert (zmot.phase, smot.phase) == ("engagement", "post_purchase")
    assert zmot.owner == "web" and zmot.severity == "high"


def test_a_broken_product_page_is_not_the_first_product_view():
    f = feed()
    f(touch("page_view", 0, url="/p/1", page_category="product", product_id="1", http_status=404))
    assert only(f(touch("page_view", 10, url="/b", http_status=404))).moment == "ZMOT"


def test_broken_link_once_per_url_per_session():
    f = feed()
    f(touch("page_view", 0, url="/gone", http_status=404, session="s1"))
    f(touch("page_view", 1, url="/gone", http_status=404, session="s1"))
    f(touch("link_click", 2, url="/home", target_url="/gone", http_status=404, session="s1"))
    assert len(f.moments) == 1
    f(touch("page_view", 3, url="/gone", http_status=404, session="s2"))
    f(touch("page_view", 4, url="/also-gone", http_status=410, session="s2"))
    assert [m.details["url"] for m in f.moments] == ["/gone", "/gone", "/also-gone"]


def test_broken_link_without_session_is_reported_once_per_url():
    f = feed()
    f(
        touch("page_view", 0, url="/gone", http_status=404),
        touch("page_view", 1, url="/gone", http_status=404),
    )
    assert len(f.moments) == 1


# -- first_impression_bounce --------------------------------------------------------------------


def _exit(t: float, dwell_ms: float, product: str | None = "lamp", category: str = "product", **kw):
    props = {"url": f"https://shop.example/p/{product}", "dwell_ms": dwell_ms, "page_category": category}
    if product is not None:
        props["product_id"] = product
    return touch("page_exit", t, **props, **kw)


@pytest.mark.parametrize(("dwell_ms", "fails"), [(0, True), (6999, True), (6999.9, True), (7000, False)])
def test_bounce_below_seven_seconds(dwell_ms, fails):
    moments = feed()(_exit(0, dwell_ms))
    assert [m.kind for m in moments] == (["first_impression_bounce"] if fails else [])
    if fails:
        assert moments[0].details == {
            "url": "https://shop.example/p/lamp",
            "dwell_ms": dwell_ms,
            "threshold_ms": 7000,
            "product_id": "lamp",
        }
        assert (moments[0].moment, moments[0].severity, moments[0].owner) == ("FMOT", "medium", "web")


def test_bounce_only_from_product_pages():
    assert feed()(_exit(0, 100, category="home"), _exit(1, 100, category="content")) == []
    assert feed()(touch("page_exit", 0, url="/p/x", dwell_ms=100)) == []  # no category


def test_bounce_only_on_the_first_visit_of_a_product():
    f = feed()
    assert f(_exit(0, 30_000)) == []  # the first impression was good
    assert f(_exit(10, 500)) == []  # a later quick look is no first impression
    assert len(f(_exit(20, 500, product="desk"))) == 1
    assert f(_exit(30, 500, product="desk")) == []


def test_bounce_uses_the_url_when_there_is_no_product_id():
    f = feed()
    assert len(f(_exit(0, 100, product=None))) == 1
    assert f(_exit(1, 100, product=None)) == []


def test_bounce_threshold_from_config():
    f = feed(kinds={"first_impression_bounce": {"min_dwell_s": 2}})
    assert f(_exit(0, 2000)) == []
    assert len(f(_exit(1, 1999, product="desk"))) == 1


# -- chat_unanswered --------------------------------------------------------------------------


def test_chat_answered_exactly_at_the_sla_is_in_time():
    f = feed()
    f(touch("chat_started", 0, chat_id="ch1"), touch("chat_message", 60, chat_id="ch1", sender="agent"))
    assert f.flush() == [] and f.moments == []


def test_chat_without_reply_fails_when_the_sla_has_passed():
    f = feed()
    start = touch("chat_started", 0, chat_id="ch1", topic="delivery")
    f(start)
    assert f.advance(60) == []
    moment = only(f.advance(60.001), "chat_unanswered")
    assert moment.occurred_ms == ms(60)
    assert moment.evidence == (start.event_id,)
    assert moment.details == {"chat_id": "ch1", "sla_s": 60, "topic": "delivery", "waited_s": 60}
    assert (moment.moment, moment.phase, moment.severity, moment.owner, moment.channel) == (
        "FMOT",
        "evaluation",
        "high",
        "support",
        "chat",
    )


def test_chat_reply_after_the_sla_is_a_recovery():
    f = feed()
    start = touch("chat_started", 0, chat_id="ch1")
    reply = touch("chat_message", 60.001, chat_id="ch1", sender="bot")
    f(start, reply)
    assert f.kinds() == [("chat_unanswered", "failed"), ("chat_unanswered", "recovered")]
    recovered = f.moments[1]
    assert recovered.evidence == (start.event_id, reply.event_id)
    assert recovered.details["first_response_s"] == pytest.approx(60.001)


def test_a_customer_message_is_no_answer():
    f = feed()
    f(touch("chat_started", 0, chat_id="ch1"), touch("chat_message", 5, chat_id="ch1", sender="customer"))
    f.advance(61)
    assert f.kinds() == [("chat_unanswered", "failed")]


def test_chat_ended_before_any_reply_fails_at_once():
    f = feed()
    start = touch("chat_started", 0, chat_id="ch1")
    end = touch("chat_ended", 30, chat_id="ch1", ended_by="customer")
    moment = only(f(start, end))
    assert moment.occurred_ms == end.occurred_ms
    assert moment.evidence == (start.event_id, end.event_id)
    assert moment.details["ended_by"] == "customer"
    assert f.flush() == []  # once per chat


def test_chat_ended_after_a_reply_is_fine():
    f = feed()
    f(touch("chat_started", 0, chat_id="ch1"), touch("chat_message", 10, chat_id="ch1", sender="agent"))
    f(touch("chat_ended", 20, chat_id="ch1", ended_by="customer"))
    assert f.flush() == [] and f.moments == []


def test_chat_moment_is_smot_after_the_first_order():
    f = feed()
    f(touch("order_completed", 0, order_id="o1"), touch("chat_started", 10, chat_id="ch1"))
    moment = only(f.flush())
    assert (moment.moment, moment.phase) == ("SMOT", "post_purchase")


def test_chat_sla_from_config():
    f = feed(kinds={"chat_unanswered": {"sla_s": 30}})
    f(touch("chat_started", 0, chat_id="a"), touch("chat_message", 30, chat_id="a", sender="agent"))
    f(touch("chat_started", 100, chat_id="b"), touch("chat_message", 130.001, chat_id="b", sender="agent"))
    assert f.kinds() == [("chat_unanswered", "failed"), ("chat_unanswered", "recovered")]
    assert {m.details["chat_id"] for m in f.moments} == {"b"}


# -- call_unanswered -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "fails"),
    [
        ({"answered": True, "wait_s": 120}, False),
        ({"wait_s": 120}, False),
        ({"answered": True, "wait_s": 120.5}, True),
        ({"answered": True, "wait_s": 121}, True),
        ({"answered": False}, True),
        ({"answered": False, "wait_s": 3}, True),
        ({"answered": True}, False),
        ({}, False),
    ],
)
def test_call_unanswered_or_waiting_over_the_sla(props, fails):
    f = feed()
    moments = f(touch("call_started", 0, call_id="k1"), touch("call_ended", 200, call_id="k1", **props))
    assert [m.kind for m in moments] == (["call_unanswered"] if fails else [])
    if fails:
        assert moments[0].details == {"call_id": "k1", "sla_s": 120} | props
        assert (moments[0].moment, moments[0].owner, moments[0].channel) == ("FMOT", "support", "phone")


def test_call_moment_is_smot_after_the_first_order_and_once_per_call():
    f = feed()
    f(touch("order_completed", 0, order_id="o1"))
    f(
        touch("call_ended", 10, call_id="k1", answered=False),
        touch("call_ended", 11, call_id="k1", answered=False),
    )
    assert only(f.moments).moment == "SMOT"


# -- onboarding_stalled ----------------------------------------------------------------------------

WEEK = 7 * 86400


def test_onboarding_completed_at_the_end_of_the_window_is_in_time():
    f = feed()
    f(touch("onboarding_started", 0, plan="pro"), touch("onboarding_completed", WEEK, plan="pro"))
    assert f.flush() == [] and f.moments == []


def test_onboarding_stalls_after_seven_days_and_recovers_on_completion():
    f = feed()
    start = touch("onboarding_started", 0, plan="pro")
    f(start)
    assert f.advance(WEEK) == []
    moment = only(f.advance(WEEK + 0.001), "onboarding_stalled")
    assert moment.occurred_ms == ms(WEEK)
    assert moment.details == {"window_s": WEEK, "plan": "pro"}
    assert (moment.moment, moment.phase, moment.severity) == ("SMOT", "post_purchase", "medium")
    done = touch("onboarding_completed", WEEK + 3600, plan="pro")
    recovered = only(f(done), status="recovered")
    assert recovered.evidence == (start.event_id, done.event_id)


def test_onboarding_can_start_at_the_first_order():
    f = feed(kinds={"onboarding_stalled": {"start_on_first_order": True, "window_s": 3600}})
    f(touch("order_completed", 0, order_id="o1"), touch("order_completed", 100, order_id="o2"))
    moment = only(f.flush())
    assert moment.details == {"window_s": 3600, "started_by": "first_order"}
    assert moment.occurred_ms == ms(3600)


def test_orders_start_no_onboarding_by_default():
    f = feed()
    f(touch("order_completed", 0, order_id="o1"))
    assert f.flush() == []


# -- low_satisfaction and negative_review --------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "score", "fails"),
    [
        ("csat", 1, True),
        ("csat", 2, True),
        ("csat", 3, False),
        ("nps", 0, True),
        ("nps", 6, True),
        ("nps", 7, False),
        ("ces", 4, False),
        ("ces", 5, True),
        ("ces", 7, True),
    ],
)
def test_low_satisfaction(metric, score, fails):
    moments = feed()(touch("survey_response", 0, metric=metric, score=score, text="meh"))
    assert [m.kind for m in moments] == (["low_satisfaction"] if fails else [])
    if fails:
        assert moments[0].details == {"metric": metric, "score": score, "text": "meh"}
        assert (moments[0].moment, moments[0].owner, moments[0].severity) == (
            "SMOT",
            "customer_success",
            "medium",
        )


def test_every_low_survey_response_counts():
    f = feed()
    f(
        touch("survey_response", 0, metric="csat", score=1),
        touch("survey_response", 5, metric="csat", score=1),
    )
    assert len(f.moments) == 2


@pytest.mark.parametrize(("rating", "fails"), [(1, True), (2, True), (2.5, False), (3, False), (5, False)])
def test_negative_review(rating, fails):
    text = "Lampa přišla rozbitá. Đèn bị vỡ."
    moments = feed()(touch("review_posted", 0, rating=rating, text=text, platform="trustpilot"))
    assert [m.kind for m in moments] == (["negative_review"] if fails else [])
    if fails:
        assert moments[0].details == {"rating": rating, "platform": "trustpilot", "text": text}
        assert (moments[0].moment, moments[0].phase, moments[0].owner) == (
            "UMOT",
            "loyalty",
            "customer_success",
        )


# -- configuration ---------------------------------------------------------------------------------


def test_severity_owner_and_moment_come_from_config():
    f = feed(
        kinds={"negative_review": {"severity": "critical", "moment": "SMOT"}},
        owners={"review": "brand"},
    )
    moment = only(f(touch("review_posted", 0, rating=1)))
    assert (moment.severity, moment.owner, moment.moment) == ("critical", "brand", "SMOT")


def test_a_channel_without_owner_gets_the_default_owner():
    f = feed(owners={}, default_owner="cx-desk")
    assert only(f(touch("review_posted", 0, rating=1))).owner == "cx-desk"


def test_moment_after_from_config():
    f = feed(kinds={"broken_link": {"moment_after": {"first_order": "UMOT"}}})
    f(product_view(0))
    assert only(f(touch("page_view", 1, url="/a", http_status=404))).moment == "ZMOT"
    f(touch("order_completed", 2, order_id="o1"))
    assert f(touch("page_view", 3, url="/b", http_status=404))[0].moment == "UMOT"


def test_a_disabled_kind_reports_nothing():
    f = feed(kinds={"checkout_error": {"enabled": False}, "abandoned_checkout": {"enabled": False}})
    f(touch("checkout_started", 0, cart_id="c"), touch("payment_failed", 1, cart_id="c"))
    assert f.flush() == [] and f.moments == []


# -- the contract's example ------------------------------------------------------------------------


@pytest.mark.parametrize("flush", [False, True])
def test_the_spec_example_gives_exactly_one_checkout_error(flush):
    moments: list[Moment] = []
    rejects: list[dict] = []
    summary = run_detect(
        EXAMPLES.read_bytes().splitlines(),
        feed().engine.settings,
        moments.append,
        rejects.append,
        source_name=str(EXAMPLES),
        flush=flush,
    )
    assert rejects == []
    assert summary.rejected == 0 and summary.duplicates == 0 and summary.late == 0
    assert [(m.kind, m.status, m.journey_key) for m in moments] == [("checkout_error", "failed", "cust-42")]
    assert moments[0].evidence == ("ex-013",)
    assert moments[0].details == {"cart_id": "cart-17", "step": "payment", "reason": "3ds_timeout"}


def test_the_spec_example_with_default_lateness():
    moments: list[Moment] = []
    run_detect(EXAMPLES.read_bytes().splitlines(), Feed().engine.settings, moments.append, print, flush=True)
    assert [m.kind for m in moments] == ["checkout_error"]
