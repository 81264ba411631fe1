"""Properties of the engine: arrival order (within the lateness) and duplicates never matter.

Random journeys of a few customers and visitors, with every kind of failure and
non-failure and optional identifies, go through ``run_detect`` once in event-time
order and once shuffled: each event arrives before the latest event time seen
exceeds its own time plus the allowed lateness (so none is late), and some
events arrive twice. The moment records must be the very same.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motwatch.commands.detect import run_detect
from tests.journeys import record
from tests.journeys import settings as motwatch_settings

LATENESS_MS = 120_000
SETTINGS = motwatch_settings(
    allowed_lateness_s=LATENESS_MS / 1000,
    # Shorter than the defaults so a journey fits in a few hours of event time.
    kinds={"onboarding_stalled": {"window_s": 3600}, "abandoned_checkout": {"window_s": 600}},
)
NO_LATENESS = SETTINGS.model_copy(update={"allowed_lateness_s": 0.0})
CUSTOMERS = ["cust-0", "cust-1", "cust-2"]
VISITORS = ["anon-0", "anon-1"]

# Coarse times (whole seconds, often equal) so that ties are common.
start_s = st.integers(0, 900)
delay_s = st.integers(0, 1200)


@st.composite
def episode(draw: st.DrawFn, n: int) -> list[tuple[int, str, dict[str, Any]]]:
    """Touchpoints of one episode, as (time in s, type, keyword arguments of ``record``)."""
    who = draw(st.sampled_from(CUSTOMERS + VISITORS))
    ids: dict[str, Any] = {"key": who} if who in CUSTOMERS else {"key": None, "anon": who}
    t = draw(start_s)
    kind = draw(st.sampled_from(["checkout", "browse", "chat", "call", "onboarding", "feedback", "identify"]))
    out: list[tuple[int, str, dict[str, Any]]] = []

    def add(at: int, type_: str, **props: Any) -> None:
        out.append((at, type_, ids | props))

    if kind == "identify":
        out.append(
            (
                t,
                "identify",
                {"key": draw(st.sampled_from(CUSTOMERS)), "anon": draw(st.sampled_from(VISITORS))},
            )
        )
    elif kind == "checkout":
        cart = f"cart-{n}"
        add(t, "checkout_started", cart_id=cart, value=draw(st.sampled_from([9.5, 120.0])))
        if draw(st.booleans()):
            add(
                t + draw(delay_s),
                "checkout_step",
                cart_id=cart,
                step="payment",
                http_status=draw(st.sampled_from([200, 499, 500, 503])),
            )
        if draw(st.booleans()):
            add(t + draw(delay_s), "payment_failed", cart_id=cart)
        if draw(st.booleans()):
            order_at = t + draw(st.integers(-300, 1500))
            add(
                max(order_at, 0),
                "order_completed",
                order_id=f"o-{n}",
                **({"cart_id": cart} if draw(st.booleans()) else {}),
            )
    elif kind == "browse":
        product = draw(st.sampled_from(["lamp", "desk"]))
        add(t, "page_view", url=f"/p/{product}", page_category="product", product_id=product)
        add(
            t + draw(st.integers(0, 30)),
            "page_exit",
            url=f"/p/{product}",
            page_category="product",
            product_id=product,
            dwell_ms=draw(st.sampled_from([0, 6999, 7000, 30000])),
        )
        session = draw(st.sampled_from(["s1", "s2"]))
        for _ in range(draw(st.integers(0, 2))):
            add(
                t + draw(delay_s),
                "page_view",
                url=draw(st.sampled_from(["/a", "/b"])),
                session_id=session,
                http_status=draw(st.sampled_from([200, 399, 404, 500])),
            )
    elif kind == "chat":
        chat = f"chat-{n}"
        add(t, "chat_started", chat_id=chat)
        if draw(st.booleans()):
            add(
                t + draw(st.integers(0, 120)),
                "chat_message",
                chat_id=chat,
                sender=draw(st.sampled_from(["agent", "bot", "customer"])),
            )
        if draw(st.booleans()):
            add(t + draw(st.integers(0, 200)), "chat_ended", chat_id=chat, ended_by="customer")
    elif kind == "call":
        add(
            t,
            "call_ended",
            call_id=f"call-{n}",
            answered=draw(st.sampled_from([True, False])),
            wait_s=draw(st.sampled_from([0, 120, 121])),
        )
    elif kind == "onboarding":
        plan = draw(st.sampled_from([{}, {"plan": "pro"}]))
        add(t, "onboarding_started", **plan)
        if draw(st.booleans()):
            add(t + draw(st.integers(0, 7200)), "onboarding_completed", **plan)
    else:
        if draw(st.booleans()):
            add(t, "survey_response", metric="nps", score=draw(st.integers(0, 10)))
        else:
            add(t, "review_posted", rating=draw(st.integers(1, 5)), text="Đèn bị vỡ 🙁")
    return out


def _lines(events: list[tuple[int, str, dict[str, Any]]]) -> list[tuple[int, bytes]]:
    """(time in ms, raw line) with unique event ids, in the order given."""
    out = []
    for number, (at, type_, kw) in enumerate(events):
        kw = dict(kw)
        session = kw.pop("session_id", None)
        body = record(type_, at, eid=f"ev-{number:03d}", session=session, **kw)
        out.append((at * 1000, orjson.dumps(body)))
    return out


@st.composite
def journeys(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    episodes = [draw(episode(n)) for n in range(draw(st.integers(1, 8)))]
    return _lines(list(itertools.chain.from_iterable(episodes)))


@st.composite
def arrival(draw: st.DrawFn, lines: list[tuple[int, bytes]]) -> list[bytes]:
    """A shuffle with no late event, some events twice.

    Each copy arrives at its time plus a delay of at most the lateness: when it
    arrives, every event seen before arrived no later, so happened no later than
    its time + lateness, and the watermark is at most its time.
    """
    copies = list(lines) + [lines[i] for i in draw(st.lists(st.integers(0, len(lines) - 1), max_size=5))]
    delays = draw(st.lists(st.integers(0, LATENESS_MS), min_size=len(copies), max_size=len(copies)))
    order = sorted(range(len(copies)), key=lambda i: (copies[i][0] + delays[i], i))
    return [copies[i][1] for i in order]


def _moments(lines: list[bytes], settings_: Any = SETTINGS) -> tuple[list[bytes], Any]:
    records: list[bytes] = []
    summary = run_detect(
        lines,
        settings_,
        lambda m: records.append(orjson.dumps(m.to_dict(), option=orjson.OPT_SORT_KEYS)),
        lambda r: records.append(b"rejected " + orjson.dumps(r)),
        flush=True,
    )
    return sorted(records), summary


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_arrival_order_within_lateness_and_duplicates_never_change_the_moments(data):
    lines = data.draw(journeys())
    in_time_order = [raw for _, raw in sorted(lines, key=lambda x: x[0])]
    expected, summary = _moments(in_time_order)
    assert summary.rejected == 0 and summary.late == 0

    shuffled = data.draw(arrival(lines))
    got, summary = _moments(shuffled)
    assert summary.late == 0
    assert got == expected

    # The lateness only decides when an event is applied, never what it does: applied at
    # once, in time order, the moments are the same too.
    assert _moments(in_time_order, NO_LATENESS)[0] == expected


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_the_file_order_of_a_time_sorted_input_breaks_no_ties(data):
    # Events of the same time in another file order: still the same moments.
    lines = data.draw(journeys())
    by_time = sorted(lines, key=lambda x: x[0])
    reordered = sorted(by_time, key=lambda x: (x[0], data.draw(st.integers(0, 3))))
    assert _moments([raw for _, raw in by_time])[0] == _moments([raw for _, raw in reordered])[0]
