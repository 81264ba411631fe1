"""Event builders for tests: touchpoints at a time in seconds after ``T0``.

``touch("checkout_started", 10, cart_id="c1")`` is a valid touchpoint of the
default customer ten seconds after ``T0``; ``line(...)`` is the same as the
raw JSON bytes a producer would send. ``Feed`` drives a ``JourneyEngine`` the
way ``motwatch detect`` does (through the dispatch, forwarded records looped
back) and collects moments.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from motwatch.core.dispatch import Inbound, JourneyDispatch, Outcome
from motwatch.core.engine import JourneyEngine
from motwatch.core.events import Touchpoint
from motwatch.core.moments import Moment
from motwatch.core.validation import validate_touchpoint
from motwatch.settings import Settings

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
T0_MS = round(T0.timestamp() * 1000)
CUSTOMER = "cust-1"
ANON = "anon-7f3"
# The default allowed lateness, in seconds.
LATENESS = 120

CHANNEL_OF = {
    "ad_impression": "ads",
    "ad_click": "ads",
    "email_open": "email",
    "email_click": "email",
    "social_engagement": "social",
    "search": "search",
    "cart_add": "web",
    "checkout_started": "checkout",
    "checkout_step": "checkout",
    "payment_failed": "checkout",
    "order_completed": "checkout",
    "chat_started": "chat",
    "chat_message": "chat",
    "chat_ended": "chat",
    "call_started": "phone",
    "call_ended": "phone",
    "ticket_opened": "support",
    "ticket_resolved": "support",
    "delivery_received": "store",
    "review_posted": "review",
    "survey_response": "survey",
}

_ids = itertools.count(1)


def iso(seconds: float) -> str:
    """``T0 + seconds`` as RFC 3339 (UTC, milliseconds)."""
    text = (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def ms(seconds: float) -> int:
    """``T0 + seconds`` in ms since the epoch, the engine's clock."""
    return T0_MS + round(seconds * 1000)


def record(
    type_: str,
    t: float = 0,
    *,
    key: str | None = CUSTOMER,
    anon: str | None = None,
    session: str | None = None,
    channel: str | None = None,
    eid: str | None = None,
    **properties: Any,
) -> dict[str, Any]:
    """A touchpoint as a JSON object. ``key`` is the customer_id (None: anonymous only)."""
    body: dict[str, Any] = {
        "event_id": eid or f"e{next(_ids)}",
        "occurred_at": iso(t),
        "channel": channel or CHANNEL_OF.get(type_, "web"),
        "type": type_,
        "properties": properties,
    }
    if key is not None:
        body["customer_id"] = key
    if anon is not None:
        body["anonymous_id"] = anon
    if session is not None:
        body["session_id"] = session
    return body


def line(type_: str, t: float = 0, **kw: Any) -> bytes:
    return orjson.dumps(record(type_, t, **kw))


def touch(type_: str, t: float = 0, **kw: Any) -> Touchpoint:
    """A validated touchpoint (fails the test at once if the builder made an invalid one)."""
    event = validate_touchpoint(line(type_, t, **kw))
    assert isinstance(event, Touchpoint), event
    return event


def settings(**overrides: Any) -> Settings:
    """Built-in defaults (no file, no environment) with overrides, e.g.
    ``settings(allowed_lateness_s=0, kinds={"chat_unanswered": {"sla_s": 30}})``."""
    return Settings.model_validate(overrides)


class Feed:
    """An engine and the moments it reported, fed through the dispatch, forwarded records looped back."""

    def __init__(self, settings_: Settings | None = None, **overrides: Any) -> None:
        chosen = settings_ or settings(**overrides)
        self.engine = JourneyEngine(chosen)
        self.dispatch = JourneyDispatch(chosen, lambda _: self.engine, partitions=1, direct=True)
        self.moments: list[Moment] = []
        self.duplicates = 0
        self.late = 0

    def __call__(self, *events: Touchpoint) -> list[Moment]:
        """Process events in the order given; the moments they caused."""
        before = len(self.moments)
        for event in events:
            outcome = self.dispatch.touchpoint(Inbound(orjson.dumps(event.stored), 0, topic="feed"))
            assert outcome.event is not None, outcome.rejection
            self._collect(outcome, count=True)
        return self.moments[before:]

    def _collect(self, outcome: Outcome, count: bool = False) -> None:
        for each in self.dispatch.loop_back(outcome):
            for step in each.steps:
                if count and each is outcome:
                    self.duplicates += step.duplicate
                    self.late += step.late
                self.moments.extend(step.moments)

    def advance(self, seconds: float) -> list[Moment]:
        """Move the watermark to ``T0 + seconds``; the moments that fired."""
        before = len(self.moments)
        self._collect(self.dispatch.advance(0, ms(seconds)))
        return self.moments[before:]

    def flush(self) -> list[Moment]:
        before = len(self.moments)
        self._collect(self.dispatch.advance(0, 2**62))
        return self.moments[before:]

    def kinds(self) -> list[tuple[str, str]]:
        return [(m.kind, m.status) for m in self.moments]


def other(t: float) -> Touchpoint:
    """An uneventful touchpoint of another journey: it only moves event time on."""
    return touch("page_view", t, key="someone-else", url="/")


def medley() -> list[Touchpoint]:
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
