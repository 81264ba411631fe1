"""The generator: seeded, deterministic touchpoints and their ground truth, drawn from the world.

``simulate(SimulationConfig(...))`` returns the touchpoints as JSONL lines (one
message value each, without its newline, in event-time order, malformed ones
mixed in when ``invalid_share`` asks for them) and the moments a correct
motwatch reports for them, as ``Truth(journey_key, kind, status, cause)``.
``iter_lines`` streams the same lines without keeping them. The same config
gives the same bytes; events are plain dicts serialised with orjson.

Journeys cross every channel and moment of truth: ads, email and social
(<ZMOT); search, content and review pages (ZMOT); product pages, cart and
checkout (FMOT); delivery, onboarding, chat, calls and tickets (SMOT); reviews
and surveys (UMOT), with texts in Czech, Croatian, Vietnamese, Persian,
German, Polish, Japanese, Spanish and English. Not every journey buys.

Why the truth is exact (for the default thresholds of ``motwatch.settings``,
which the generator reads; the values below are those defaults):

* Healthy touchpoints stay well away from every threshold: product dwell
  ≥ 15 s (bounce below 7 s), first bot/agent reply within 3–40 s (SLA 60 s), calls
  answered after ≤ 60 s (SLA 120 s), orders ≤ 10 min after checkout starts
  (window 30 min), onboarding completed within 4 days (window 7 days), CSAT
  ≥ 4, NPS ≥ 8, CES ≤ 3, ratings ≥ 4, HTTP 200 everywhere. Injected failures
  are as clearly beyond: dwell ≤ 5 s, no reply within 60 s (the customer
  leaves after 38–55 s, the chat times out, or the reply comes after 2–10 min:
  a recovery), waits ≥ 130 s or unanswered, no order within 30 min (a later
  order, 2–36 h on, is a recovery), no completion within 7 days (a completion
  after 8–12 days is a recovery), CSAT ≤ 2, NPS ≤ 5, CES ≥ 5, ratings ≤ 2,
  HTTP 404/410/5xx. Each injected failure is one cause (one cart, one chat,
  one URL in one session, one survey, …), so it is reported exactly once.
* A customer's journeys (``customers`` < ``journeys``) follow one another: a
  return visit starts 1 h – 4 days after the previous visit's last
  touchpoint, and the journey key is the customer id, so all of a customer's
  visits are one journey to motwatch. The generator therefore knows every
  order that can settle an earlier checkout: any later order of the journey
  recovers an abandoned one (``AbandonedCheckout._order_matches`` matches by
  time, not only by cart), products already left once never bounce, and an
  onboarding plan starts at most once per customer.
* Anonymous journeys fail nothing before their ``identify`` (the moments would
  carry the anonymous key): before it they carry only ``anonymous_id`` and
  browse healthily; ``identify`` carries both ids; after it, ``customer_id``.
  Guests (``guest_share``) put their cart together and start the checkout
  anonymously, log in to pay, and order as the customer: the order settles a
  checkout opened on the other journey once ``identify`` has joined the two.
* ``disorder_s`` delays each touchpoint's place among the lines by up to that
  many seconds (at most the allowed lateness): a stream out of order, within
  and across journeys, that must give the same moments.
* The stream ends with a quiet tail: after the last journey touchpoint,
  healthy touchpoints of ``quiet-*`` customers every 1–6 h for ``tail_s``
  (default 8 days), and in any case up to the last injected deadline (and the
  last journey touchpoint) + ``allowed_lateness_s`` + 1 min. So the watermark
  passes every deadline and reaches every journey touchpoint, and
  ``run_detect(..., flush=False)`` fires every timeout of the truth; a final
  flush adds nothing. Run motwatch with a larger allowed lateness, or longer
  windows, and raise ``allowed_lateness_s``/``tail_s`` to match.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import orjson

from motwatch.core.journey import MAX_ITEMS
from motwatch.core.moments import KINDS
from motwatch.settings import Settings
from motwatch.simulation.model import Simulation, SimulationConfig, Truth
from motwatch.simulation.world import (
    AD_REFERRER,
    BLOG_LINKS,
    BLOG_POSTS,
    BY_PLAN,
    CAMPAIGNS,
    CHAT_TOPICS,
    FX,
    GUIDES,
    LANG_CODES,
    LANG_WEIGHTS,
    LANGS,
    MAIL_REFERRER,
    PARCEL_TRACKING,
    PAYMENT_REASONS,
    PLANS,
    PRODUCTS,
    REVIEW_PLATFORMS,
    SEARCH_REFERRER,
    SEARCH_URL,
    SHOP,
    SOCIAL,
    SOCIAL_ACTIONS,
    SOCIAL_AD_REFERRER,
    Product,
)

__all__ = ["iter_lines", "simulate"]

S = 1000
M = 60 * S
H = 60 * M
DAY = 24 * H

# The default thresholds of motwatch.settings the truth is made for, in milliseconds and whole scores.
_DEFAULT_KINDS = Settings().kinds
ABANDON_WINDOW_MS = round(_DEFAULT_KINDS.abandoned_checkout.window_s * S)
CHAT_SLA_MS = round(_DEFAULT_KINDS.chat_unanswered.sla_s * S)
ONBOARDING_WINDOW_MS = round(_DEFAULT_KINDS.onboarding_stalled.window_s * S)
MAX_CSAT = math.floor(_DEFAULT_KINDS.low_satisfaction.max_csat)
MAX_NPS = math.floor(_DEFAULT_KINDS.low_satisfaction.max_nps)
MIN_CES = math.ceil(_DEFAULT_KINDS.low_satisfaction.min_ces)
MAX_RATING = math.floor(_DEFAULT_KINDS.negative_review.max_rating)


def simulate(config: SimulationConfig | None = None) -> Simulation:
    """Generate the lines and the truth of one seeded run."""
    config = config or SimulationConfig()
    gen = _Generator(config)
    lines: list[bytes] = []
    invalid: dict[int, str] = {}
    append = lines.append
    for line, reason in gen.run():
        if reason is not None:
            invalid[len(lines)] = reason
        append(line)
    return Simulation(
        config=config,
        lines=lines,
        truth=gen.truth,
        journey_keys=tuple(gen.keys),
        quiet_keys=tuple(gen.quiet_keys),
        invalid=invalid,
        events=gen.events,
    )


def iter_lines(config: SimulationConfig | None = None) -> Iterator[bytes]:
    """The same lines as ``simulate(config).lines``, streamed (only open journeys are held)."""
    for line, _ in _Generator(config or SimulationConfig()).run():
        yield line


# -- event time ---------------------------------------------------------------

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = date(1970, 1, 1)
_DAYS: dict[int, str] = {}


def _ts(ms: int) -> str:
    """RFC 3339, UTC, milliseconds: ``2026-03-02T14:05:09.120Z``."""
    day, rem = divmod(ms, DAY)
    prefix = _DAYS.get(day)
    if prefix is None:
        prefix = _DAYS[day] = (_EPOCH_DATE + timedelta(days=day)).isoformat() + "T"
    sec, milli = divmod(rem, 1000)
    hour, sec = divmod(sec, 3600)
    minute, sec = divmod(sec, 60)
    return f"{prefix}{hour:02d}:{minute:02d}:{sec:02d}.{milli:03d}Z"


_SECONDS: list[str] = []  # "SS.mmmZ" for every millisecond of a minute, made on first use


class _Clock:
    """``_ts``, faster: the text up to the minute is cached, the rest looked up."""

    __slots__ = ("minutes", "seconds")

    def __init__(self) -> None:
        if not _SECONDS:
            _SECONDS.extend(f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(M))
        self.seconds = _SECONDS
        self.minutes: dict[int, str] = {}

    def __call__(self, ms: int) -> str:
        minute, rem = divmod(ms, M)
        prefix = self.minutes.get(minute)
        if prefix is None:
            prefix = self.minutes[minute] = _ts(minute * M)[:17]
        return prefix + self.seconds[rem]


# -- the generator ----------------------------------------------------------------


@dataclass(slots=True)
class _Customer:
    key: str
    lang: str
    currency: str
    # Products left once (page_exit): they never bounce again in this journey.
    exited: set[str] = field(default_factory=set)
    # Onboarding plans started (at most once per journey and plan).
    plans: set[str] = field(default_factory=set)
    # Abandoned checkouts reported failed and not recovered yet: (cart, deadline ms, checkout number).
    abandoned: list[tuple[str, int, int]] = field(default_factory=list)
    checkouts: int = 0


# Malformed lines: (what is wrong, the dead-letter reason it must get).
_MALFORMED: tuple[tuple[str, str], ...] = (
    ("invalid_json", "invalid_json"),
    ("not_utf8", "invalid_json"),
    ("missing_field", "missing_field"),
    ("no_ids", "missing_field"),
    ("unknown_type", "unknown_type"),
    ("unknown_channel", "unknown_channel"),
    ("bad_timestamp", "bad_timestamp"),
    ("bad_property", "bad_property"),
)


class _Generator:
    """One run. Journeys are made one customer at a time (all of its visits); their lines wait in
    buckets of event time (2**16 ms) and leave, sorted, once no later customer can precede them."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.random = self.rng.random
        # Malformed lines draw from their own generator: the valid lines do not depend on them.
        self.bad_rng = random.Random(config.seed * 1_000_003 + 101)
        # Arrival delays too: the same config without disorder gives the same events.
        self.delay_ms = round(config.disorder_s * S)
        self.delay_random = random.Random(config.seed * 1_000_003 + 202).random
        self.start_ms = (config.start - _EPOCH) // timedelta(milliseconds=1)
        # Bucket (event time >> 16) -> [(event time << 32 | sequence number, line)], and a heap of buckets.
        self.buckets: dict[int, list[tuple[int, bytes]]] = {}
        self.bucket_heap: list[int] = []
        self.clock = _Clock()
        self.n = 0
        self.ids: dict[str, str] = {}
        self.counters: Counter[str] = Counter()
        self.truth: list[Truth] = []
        self.keys: list[str] = []
        self.quiet_keys: list[str] = []
        self.hi = self.start_ms  # latest touchpoint of the customer being made
        self.last_ms = self.start_ms
        self.max_deadline = self.start_ms
        self.events = 0
        self.bad_n = 0
        share = config.invalid_share
        self.bad_per_line = share / (1 - share)

    # -- output -------------------------------------------------------------
    def run(self) -> Iterator[tuple[bytes, str | None]]:
        cfg, rng = self.config, self.rng
        n_customers = cfg.journeys if cfg.customers is None else cfg.customers
        visits = [1] * n_customers
        for _ in range(cfg.journeys - n_customers):
            visits[rng.randrange(n_customers)] += 1
        t = self.start_ms
        for index in range(n_customers):
            t += max(1, round(rng.expovariate(cfg.arrival_rate_per_s) * S))
            yield from self._drain(t)
            self._customer(index, t, visits[index])
        if n_customers:
            self._tail()
        yield from self._drain(None)

    def _drain(self, before: int | None) -> Iterator[tuple[bytes, str | None]]:
        heap, buckets = self.bucket_heap, self.buckets
        bad = self.bad_per_line
        bad_random = self.bad_rng.random
        # A bucket is complete once the next customer's first touchpoint lies beyond it.
        limit = None if before is None else before >> 16
        while heap and (limit is None or heap[0] < limit):
            bucket = buckets.pop(heapq.heappop(heap))
            bucket.sort()
            self.events += len(bucket)
            for key, line in bucket:
                yield line, None
                if bad and bad_random() < bad:
                    yield self._malformed(key >> 32)

    def _emit(
        self,
        ms: int,
        channel: str,
        type_: str,
        props: dict[str, Any] | None = None,
        session: str | None = None,
    ) -> str:
        self.n += 1
        event_id = f"ev-{self.n:09d}"
        event: dict[str, Any] = {"event_id": event_id, "occurred_at": self.clock(ms)}
        event.update(self.ids)
        if session is not None:
            event["session_id"] = session
        event["channel"] = channel
        event["type"] = type_
        if props is not None:
            event["properties"] = props
        # Lines leave in order of arrival: the event's time, plus its delay when there is disorder.
        arrives = ms + int(self.delay_random() * (self.delay_ms + 1)) if self.delay_ms else ms
        bucket = self.buckets.get(arrives >> 16)
        if bucket is None:
            bucket = self.buckets[arrives >> 16] = []
            heapq.heappush(self.bucket_heap, arrives >> 16)
        bucket.append((arrives << 32 | self.n, orjson.dumps(event)))
        if ms > self.hi:
            self.hi = ms
        return event_id

    def _int(self, low: int, high: int) -> int:
        """Uniform in low..high (``randint`` is several times slower, and this is the hot path)."""
        return low + int(self.random() * (high - low + 1))

    def _pick(self, items: Sequence[T]) -> T:
        return items[int(self.random() * len(items))]

    def _id(self, prefix: str) -> str:
        self.counters[prefix] += 1
        return f"{prefix}-{self.counters[prefix]:06d}"

    def _fail(self, cu: _Customer, kind: str, cause: str, status: str = "failed") -> None:
        self.truth.append(Truth(cu.key, kind, status, cause))

    def _deadline(self, ms: int) -> None:
        if ms > self.max_deadline:
            self.max_deadline = ms

    # -- customers and their visits ----------------------------------------------
    def _customer(self, index: int, t: int, visits: int) -> None:
        rng = self.rng
        lang = rng.choices(LANG_CODES, LANG_WEIGHTS)[0]
        cu = _Customer(key=f"cust-{index + 1:06d}", lang=lang, currency=self._pick(LANGS[lang][1]))
        self.keys.append(cu.key)
        self.hi = t
        for visit in range(visits):
            if visit:
                t = self.hi + self._int(H, 4 * DAY)
            self._visit(cu, t)
        self.last_ms = max(self.last_ms, self.hi)

    def _text(self, cu: _Customer, what: str) -> str:
        return self._pick(LANGS[cu.lang][2][what])

    def _price(self, cu: _Customer, product: Product) -> float:
        rate, digits = FX[cu.currency]
        return round(product.price_eur * rate, digits)

    def _visit(self, cu: _Customer, t: int) -> None:
        rng, cfg = self.rng, self.config
        inject = {kind for kind in KINDS if rng.random() < getattr(cfg.failures, kind)}
        needs_order = bool(inject & {"onboarding_stalled", "negative_review"})
        abandon = "abandoned_checkout" in inject
        buys = abandon or needs_order or "checkout_error" in inject or rng.random() < 0.45
        recover = abandon and (needs_order or rng.random() < cfg.recovery_share)
        orders = buys and (not abandon or recover)
        session = self._id("s")
        anonymous = rng.random() < cfg.anonymous_share
        anonymous_id = f"anon-{rng.getrandbits(24):06x}{self.counters['anon']:06x}"
        self.counters["anon"] += 1
        self.ids = {"anonymous_id": anonymous_id} if anonymous else {"customer_id": cu.key}
        # Where the injected failures of a buying journey happen: before or after the order.
        broken_after_order = "broken_link" in inject and orders and rng.random() < 0.3
        chat_fails = "chat_unanswered" in inject
        chat_after = orders and rng.random() < 0.5
        call_fails = "call_unanswered" in inject
        call_after = orders and rng.random() < 0.5
        # A guest checks out anonymously and logs in to pay: nothing may fail before the login.
        guest = (
            anonymous
            and orders
            and not inject & {"abandoned_checkout", "checkout_error", "first_impression_bounce"}
            and ("broken_link" not in inject or broken_after_order)
            and (not chat_fails or chat_after)
            and (not call_fails or call_after)
            and rng.random() < cfg.guest_share
        )

        # <ZMOT and ZMOT: ads, email, social, search, landing, content, reviews.
        t, referrer = self._awareness(cu, t)
        t = self._landing(cu, t, session, referrer)
        viewed: list[Product] = []
        for _ in range(self._int(1 if anonymous else 0, 2)):
            product = self._pick(PRODUCTS)
            t = self._product_view(cu, t + self._int(3 * S, 40 * S), session, product)
            viewed.append(product)
        if anonymous and not guest:
            # Login or sign-up: from here on the customer is known. Nothing failed before.
            t += self._int(5 * S, 90 * S)
            self.ids = {"anonymous_id": anonymous_id, "customer_id": cu.key}
            self._emit(t, "web", "identify", None, session)
            self.ids = {"customer_id": cu.key}

        # FMOT browsing, with the injected web failures among it.
        steps = ["view"] * self._int(0 if viewed else 1, 2)
        if "first_impression_bounce" in inject:
            steps.insert(self._int(0, len(steps)), "bounce")
        if "broken_link" in inject and not broken_after_order:
            steps.insert(self._int(0, len(steps)), "broken")
        for step in steps:
            t += self._int(3 * S, 40 * S)
            if step == "view":
                product = self._pick(PRODUCTS)
                t = self._product_view(cu, t, session, product)
                viewed.append(product)
            elif step == "bounce":
                t = self._bounce(cu, t, session)
            else:
                t = self._broken_page(cu, t, session)

        # Conversations before buying (or instead of it).
        chatted = False
        if (chat_fails and not chat_after) or rng.random() < 0.15:
            t = self._chat(cu, t + self._int(5 * S, 60 * S), session, chat_fails and not chat_after)
            chatted = True
        if (call_fails and not call_after) or rng.random() < 0.05:
            t = self._call(cu, t + self._int(M, 20 * M), call_fails and not call_after)

        order: tuple[int, str, list[Product]] | None = None
        if buys:
            items = self._basket(cu, viewed, "onboarding_stalled" in inject)
            for product in items:
                if product not in viewed:
                    t = self._product_view(cu, t + self._int(3 * S, 40 * S), session, product)
            login = anonymous_id if guest else None
            order = self._checkout(cu, t, session, items, inject, abandon, recover, login)
            if order is None:
                t = self.hi
        if order is not None:
            self._after_order(
                cu, order, inject, chat_fails and chat_after, call_fails and call_after, broken_after_order
            )
        elif "low_satisfaction" in inject:
            if chatted:
                self._survey(cu, t + self._int(5 * S, 60 * S), True, "chat", "csat")
            else:
                self._survey(cu, t + self._int(2 * H, 2 * DAY), True, "email", "ces")

    def _awareness(self, cu: _Customer, t: int) -> tuple[int, str | None]:
        rng = self.rng
        referrer: str | None = None
        for _ in range(self._int(1, 3)):
            campaign = self._pick(CAMPAIGNS)
            landing = f"{SHOP}/lp/{campaign}"
            pick = rng.random()
            if pick < 0.4:
                channel = "ads" if rng.random() < 0.7 else "social"
                self._emit(t, channel, "ad_impression", {"campaign": campaign})
                referrer = None
                if rng.random() < 0.6:
                    t += self._int(2 * S, 60 * S)
                    self._emit(t, channel, "ad_click", {"campaign": campaign, "url": landing})
                    referrer = AD_REFERRER if channel == "ads" else SOCIAL_AD_REFERRER
            elif pick < 0.75:
                self._emit(t, "email", "email_open", {"campaign": campaign})
                referrer = None
                if rng.random() < 0.5:
                    t += self._int(3 * S, 120 * S)
                    self._emit(t, "email", "email_click", {"campaign": campaign, "url": landing})
                    referrer = MAIL_REFERRER
            else:
                platform = self._pick(SOCIAL)
                props = {"platform": platform, "action": self._pick(SOCIAL_ACTIONS)}
                self._emit(t, "social", "social_engagement", props)
                referrer = f"https://www.{platform}.com/"
            t += self._int(20 * S, 30 * M)
        return t, referrer

    def _landing(self, cu: _Customer, t: int, session: str, referrer: str | None) -> int:
        rng = self.rng
        if rng.random() < 0.3:
            query = self._text(cu, "search")
            self._emit(t, "search", "search", {"query": query, "url": SEARCH_URL})
            referrer = SEARCH_REFERRER
            t += self._int(2 * S, 20 * S)
        page: dict[str, Any] = {"url": f"{SHOP}/", "http_status": 200, "page_category": "home"}
        if referrer is not None:
            page["referrer"] = referrer
        page["load_ms"] = self._int(180, 1900)
        self._emit(t, "web", "page_view", page, session)
        if rng.random() < 0.4:
            t += self._int(4 * S, 30 * S)
            query = self._text(cu, "search")
            self._emit(t, "web", "search", {"query": query, "url": f"{SHOP}/search"}, session)
        if rng.random() < 0.3:
            t += self._int(4 * S, 40 * S)
            url = f"{SHOP}/blog/{self._pick(BLOG_POSTS)}"
            self._emit(
                t, "web", "page_view", {"url": url, "http_status": 200, "page_category": "content"}, session
            )
            if rng.random() < 0.4:
                t += self._int(5 * S, 60 * S)
                target = f"{SHOP}/blog/{self._pick(BLOG_LINKS)}"
                props = {"url": url, "target_url": target, "http_status": 200}
                self._emit(t, "web", "link_click", props, session)
            dwell = self._int(2 * S, 120 * S)  # any dwell: only product pages can bounce
            t += dwell
            props = {"url": url, "dwell_ms": dwell, "page_category": "content"}
            self._emit(t, "web", "page_exit", props, session)
        if rng.random() < 0.4:
            product = self._pick(PRODUCTS)
            t += self._int(4 * S, 40 * S)
            url = f"{product.url}/reviews"
            props = {"url": url, "http_status": 200, "page_category": "reviews", "product_id": product.pid}
            self._emit(t, "web", "page_view", props, session)
            dwell = self._int(2 * S, 150 * S)
            t += dwell
            props = {"url": url, "dwell_ms": dwell, "page_category": "reviews", "product_id": product.pid}
            self._emit(t, "web", "page_exit", props, session)
        return t

    def _product_view(self, cu: _Customer, t: int, session: str, product: Product) -> int:
        """A healthy look at a product: loads fine, stays well over the bounce threshold."""
        props = {
            "url": product.url,
            "http_status": 200,
            "page_category": "product",
            "product_id": product.pid,
            "load_ms": self._int(200, 2400),
        }
        self._emit(t, "web", "page_view", props, session)
        dwell = self._int(15 * S, 240 * S)
        t += dwell
        props = {"url": product.url, "dwell_ms": dwell, "page_category": "product", "product_id": product.pid}
        self._emit(t, "web", "page_exit", props, session)
        cu.exited.add(product.pid)
        return t

    def _bounce(self, cu: _Customer, t: int, session: str) -> int:
        """A product never left before, a slow page, gone within seconds."""
        product = None
        for _ in range(30):
            candidate = self._pick(PRODUCTS)
            if candidate.pid not in cu.exited:
                product = candidate
                break
        if product is None:
            product = next((p for p in PRODUCTS if p.pid not in cu.exited), None)
        if product is None:
            return t  # this customer has left every product once: nothing can bounce any more
        props = {
            "url": product.url,
            "http_status": 200,
            "page_category": "product",
            "product_id": product.pid,
            "referrer": SEARCH_REFERRER,
            "load_ms": self._int(3500, 9000),
        }
        self._emit(t, "web", "page_view", props, session)
        dwell = self._int(400, 5000)
        t += dwell
        props = {"url": product.url, "dwell_ms": dwell, "page_category": "product", "product_id": product.pid}
        self._emit(t, "web", "page_exit", props, session)
        cu.exited.add(product.pid)
        self._fail(cu, "first_impression_bounce", product.pid)
        return t

    def _broken_page(self, cu: _Customer, t: int, session: str) -> int:
        """One URL of this session answers 4xx/5xx, once."""
        rng = self.rng
        variant = rng.randrange(3)
        if variant == 0:  # an old product URL from a search engine
            product = self._pick(PRODUCTS)
            url = f"{SHOP}/p/{product.pid}-2019"
            props = {
                "url": url,
                "http_status": self._pick((404, 410)),
                "page_category": "product",
                "product_id": product.pid,
                "referrer": SEARCH_REFERRER,
                "load_ms": self._int(80, 400),
            }
            self._emit(t, "web", "page_view", props, session)
        elif variant == 1:  # a dead link on a content page
            page = f"{SHOP}/guides/{self._pick(GUIDES)}"
            self._emit(
                t, "web", "page_view", {"url": page, "http_status": 200, "page_category": "content"}, session
            )
            t += self._int(5 * S, 60 * S)
            url = f"{SHOP}/files/{self._pick(PRODUCTS).pid}-manual.pdf"
            props = {"url": page, "target_url": url, "http_status": self._pick((404, 410))}
            self._emit(t, "web", "link_click", props, session)
        else:  # a campaign page whose server is down
            url = f"{SHOP}/promo/{self._pick(CAMPAIGNS)}"
            props = {"url": url, "http_status": self._pick((500, 502, 503)), "page_category": "content"}
            self._emit(t, "web", "page_view", props, session)
        self._fail(cu, "broken_link", url)
        return t + self._int(2 * S, 10 * S)

    # -- conversations ----------------------------------------------------------
    def _chat(self, cu: _Customer, t: int, session: str | None, fails: bool) -> int:
        rng = self.rng
        chat_id = self._id("chat")
        start = t
        self._emit(t, "chat", "chat_started", {"chat_id": chat_id, "topic": self._pick(CHAT_TOPICS)}, session)
        t += self._int(2 * S, 4 * S)
        self._emit(
            t,
            "chat",
            "chat_message",
            {"chat_id": chat_id, "sender": "customer", "text": self._text(cu, "ask")},
            session,
        )

        def say(at: int, sender: str, what: str) -> None:
            props = {"chat_id": chat_id, "sender": sender, "text": self._text(cu, what)}
            self._emit(at, "chat", "chat_message", props, session)

        if not fails:
            if rng.random() < 0.4:
                t += self._int(S, 3 * S)  # a bot greets within 3–7 s, an agent follows
                say(t, "bot", "bot")
            t = max(t + S, start + self._int(5 * S, 40 * S))
            say(t, "agent", "answer")
            for _ in range(self._int(0, 2)):
                t += self._int(15 * S, 60 * S)
                say(t, "customer", "ask")
                t += self._int(5 * S, 40 * S)
                say(t, "agent", "answer")
            t += self._int(10 * S, 60 * S)
            say(t, "customer", "thanks")
            t += self._int(5 * S, 30 * S)
            ended_by = self._pick(("customer", "agent"))
            self._emit(t, "chat", "chat_ended", {"chat_id": chat_id, "ended_by": ended_by}, session)
            return t
        self._fail(cu, "chat_unanswered", chat_id)
        self._deadline(start + CHAT_SLA_MS)
        mode = "late" if rng.random() < self.config.recovery_share else self._pick(("left", "timeout"))
        if mode == "left":  # the customer gives up before the SLA: a failure at once
            say(start + self._int(20 * S, 30 * S), "customer", "nudge")
            t = start + self._int(38 * S, 55 * S)
            self._emit(t, "chat", "chat_ended", {"chat_id": chat_id, "ended_by": "customer"}, session)
        elif mode == "timeout":  # nobody ever comes: the deadline fires
            say(start + self._int(25 * S, 50 * S), "customer", "nudge")
            t = start + self._int(300 * S, 900 * S)
            self._emit(t, "chat", "chat_ended", {"chat_id": chat_id, "ended_by": "timeout"}, session)
        else:  # an agent answers minutes late: failed at the deadline, recovered by the reply
            say(start + self._int(25 * S, 50 * S), "customer", "nudge")
            t = start + self._int(120 * S, 600 * S)
            say(t, "agent", "answer")
            self._fail(cu, "chat_unanswered", chat_id, "recovered")
            t += self._int(10 * S, 60 * S)
            say(t, "customer", "thanks")
            t += self._int(5 * S, 30 * S)
            self._emit(t, "chat", "chat_ended", {"chat_id": chat_id, "ended_by": "agent"}, session)
        return t

    def _call(self, cu: _Customer, t: int, fails: bool) -> int:
        rng = self.rng
        call_id = self._id("call")
        channel = "phone" if rng.random() < 0.8 else "support"
        self._emit(t, channel, "call_started", {"call_id": call_id})
        props: dict[str, Any] = {"call_id": call_id}
        if not fails:
            wait = round(rng.uniform(3, 60), 1)
            props.update(answered=True, wait_s=wait)
            t += round(wait * S) + self._int(60 * S, 600 * S)
        elif rng.random() < 0.5:  # hung up in the queue
            wait = round(rng.uniform(130, 900), 1)
            props.update(answered=False, wait_s=wait)
            t += round(wait * S)
        else:  # answered, but far too late
            wait = round(rng.uniform(150, 700), 1)
            props.update(answered=True, wait_s=wait)
            t += round(wait * S) + self._int(60 * S, 400 * S)
        self._emit(t, channel, "call_ended", props)
        if fails:
            self._fail(cu, "call_unanswered", call_id)
        return t

    # -- buying -------------------------------------------------------------------
    def _basket(self, cu: _Customer, viewed: list[Product], needs_plan: bool) -> list[Product]:
        rng = self.rng
        items = list(dict.fromkeys(rng.sample(viewed, k=min(len(viewed), self._int(1, 3)))))
        if not items:
            items = [self._pick(PRODUCTS)]
        if needs_plan and not any(p.plan and p.plan not in cu.plans for p in items):
            open_plans = [plan for plan in PLANS if plan not in cu.plans]
            if open_plans:
                items.append(self._pick(BY_PLAN[self._pick(open_plans)]))
        return items

    def _checkout(
        self,
        cu: _Customer,
        t: int,
        session: str,
        items: list[Product],
        inject: set[str],
        abandon: bool,
        recover: bool,
        login: str | None = None,
    ) -> tuple[int, str, list[Product]] | None:
        """Cart and checkout; the order's time and id when the journey orders.

        ``login``: a guest's anonymous id; the guest logs in (``identify``) before paying.
        """
        rng = self.rng
        rate_digits = FX[cu.currency][1]
        value = 0.0
        for product in items:
            t += self._int(5 * S, 60 * S)
            price = self._price(cu, product)
            value += price
            props = {"product_id": product.pid, "value": price, "currency": cu.currency}
            self._emit(t, "web", "cart_add", props, session)
        value = round(value, rate_digits)
        t += self._int(10 * S, 90 * S)
        self._emit(
            t,
            "web",
            "page_view",
            {"url": f"{SHOP}/cart", "http_status": 200, "page_category": "cart"},
            session,
        )
        cart = self._id("cart")
        t += self._int(5 * S, 40 * S)
        started = t
        props = {"cart_id": cart, "value": value, "currency": cu.currency}
        self._emit(t, "checkout", "checkout_started", props, session)
        cu.checkouts += 1
        # The journey keeps the newest MAX_ITEMS checkouts: older failed ones can no longer recover.
        cu.abandoned = [a for a in cu.abandoned if a[2] > cu.checkouts - MAX_ITEMS]

        error = None
        if "checkout_error" in inject:
            error = "payment_failed" if rng.random() < 0.6 else self._pick(("shipping", "payment"))
        steps = ["shipping", "payment"] + (["review"] if rng.random() < 0.5 else [])
        quit_after = rng.randrange(len(steps))
        left = False
        for index, step in enumerate(steps):
            t += self._int(15 * S, 90 * S)
            if login is not None and step == "payment":
                self.ids = {"anonymous_id": login, "customer_id": cu.key}
                self._emit(t, "web", "identify", None, session)
                self.ids = {"customer_id": cu.key}
                t += self._int(15 * S, 90 * S)
            if error == step:
                status = self._pick((500, 502, 503, 504))
                props = {"cart_id": cart, "step": step, "http_status": status}
                self._emit(t, "checkout", "checkout_step", props, session)
                self._fail(cu, "checkout_error", f"{cart}|{step}")
                if abandon:
                    left = True
                    break
                t += self._int(10 * S, 60 * S)
            self._emit(
                t, "checkout", "checkout_step", {"cart_id": cart, "step": step, "http_status": 200}, session
            )
            if step == "payment" and error == "payment_failed":
                t += self._int(5 * S, 40 * S)
                props = {"cart_id": cart, "reason": self._pick(PAYMENT_REASONS)}
                self._emit(t, "checkout", "payment_failed", props, session)
                self._fail(cu, "checkout_error", f"{cart}|payment")
                if abandon:
                    left = True
                    break
                t += self._int(20 * S, 120 * S)
                props = {"cart_id": cart, "step": "payment", "http_status": 200}
                self._emit(t, "checkout", "checkout_step", props, session)
            if abandon and error is None and index == quit_after:
                left = True
                break
        if not left:
            t += self._int(5 * S, 30 * S)
            assert t - started < ABANDON_WINDOW_MS - 10 * M
            order_id = self._order(cu, t, "checkout", session, cart, value)
            return t, order_id, items
        deadline = started + ABANDON_WINDOW_MS
        self._deadline(deadline)
        self._fail(cu, "abandoned_checkout", cart)
        cu.abandoned.append((cart, deadline, cu.checkouts))
        if not recover:
            return None
        # Back hours later, on the web or by phone: the order recovers the abandoned checkout.
        t = started + self._int(2 * H, 36 * H)
        if rng.random() < 0.7:
            channel, session2 = "checkout", self._id("s")
            self._emit(
                t - self._int(20 * S, 120 * S),
                "web",
                "page_view",
                {"url": f"{SHOP}/cart", "http_status": 200, "page_category": "cart"},
                session2,
            )
        else:
            channel, session2 = "phone", None
        order_id = self._order(cu, t, channel, session2, cart, value)
        return t, order_id, items

    def _order(
        self, cu: _Customer, t: int, channel: str, session: str | None, cart: str, value: float
    ) -> str:
        order_id = self._id("ord")
        # Any later order of the journey recovers every abandoned checkout before it.
        for abandoned_cart, deadline, _ in cu.abandoned:
            assert t > deadline
            self._fail(cu, "abandoned_checkout", abandoned_cart, "recovered")
        cu.abandoned.clear()
        props = {"order_id": order_id, "cart_id": cart, "value": value, "currency": cu.currency}
        self._emit(t, channel, "order_completed", props, session)
        return order_id

    # -- after the purchase (SMOT, UMOT) -------------------------------------------
    def _after_order(
        self,
        cu: _Customer,
        order: tuple[int, str, list[Product]],
        inject: set[str],
        chat_fails: bool,
        call_fails: bool,
        broken: bool,
    ) -> None:
        rng = self.rng
        ordered, order_id, items = order
        self._emit(ordered + self._int(M, 10 * M), "email", "email_open", {"campaign": "order-confirmation"})
        if broken:  # the tracking link of the shipping e-mail leads nowhere
            t = ordered + self._int(6 * H, 30 * H)
            target = f"{PARCEL_TRACKING}/{order_id}"
            props = {"url": f"{SHOP}/mail/shipped/{order_id}", "target_url": target, "http_status": 404}
            self._emit(t, "email", "link_click", props, self._id("s"))
            self._fail(cu, "broken_link", target)
        delivered = ordered + self._int(DAY, 4 * DAY)
        self._emit(delivered, self._pick(("store", "checkout")), "delivery_received", {"order_id": order_id})
        plan = next((p.plan for p in items if p.plan and p.plan not in cu.plans), None)
        stalls = "onboarding_stalled" in inject
        if plan is not None and (stalls or rng.random() < 0.7):
            self._onboarding(cu, delivered + self._int(H, 24 * H), plan, stalls)
        if chat_fails or rng.random() < 0.2:
            t = ordered + self._int(6 * H, 5 * DAY)
            self._chat(cu, t, self._id("s"), chat_fails)
        if call_fails or rng.random() < 0.08:
            self._call(cu, ordered + self._int(6 * H, 5 * DAY), call_fails)
        if rng.random() < 0.12:
            ticket = self._id("t")
            t = delivered + self._int(H, 2 * DAY)
            self._emit(t, "support", "ticket_opened", {"ticket_id": ticket})
            self._emit(t + self._int(H, 3 * DAY), "support", "ticket_resolved", {"ticket_id": ticket})
        low = "low_satisfaction" in inject
        if low or rng.random() < 0.5:
            channel = self._pick(("survey", "survey", "email", "chat"))
            self._survey(cu, delivered + self._int(DAY, 3 * DAY), low, channel, None)
        negative = "negative_review" in inject
        if negative or rng.random() < 0.45:
            self._review(cu, delivered + self._int(2 * DAY, 10 * DAY), self._pick(items), negative)

    def _onboarding(self, cu: _Customer, t: int, plan: str, stalls: bool) -> None:
        rng = self.rng
        cu.plans.add(plan)
        channel = "web" if rng.random() < 0.75 else "support"

        def session() -> str | None:
            return self._id("s") if channel == "web" else None

        self._emit(t, channel, "onboarding_started", {"plan": plan}, session())
        if not stalls:
            done = t + self._int(H, 4 * DAY)
            self._emit(done, channel, "onboarding_completed", {"plan": plan}, session())
            return
        self._fail(cu, "onboarding_stalled", plan)
        self._deadline(t + ONBOARDING_WINDOW_MS)
        if rng.random() < self.config.recovery_share:
            done = t + self._int(8 * DAY, 12 * DAY)
            self._emit(done, channel, "onboarding_completed", {"plan": plan}, session())
            self._fail(cu, "onboarding_stalled", plan, "recovered")

    def _survey(self, cu: _Customer, t: int, low: bool, channel: str, metric: str | None) -> None:
        rng = self.rng
        metric = metric or self._pick(("csat", "nps", "ces"))
        if metric == "csat":
            score = self._int(1, MAX_CSAT) if low else self._int(4, 5)
        elif metric == "nps":
            score = self._int(0, MAX_NPS - 1) if low else self._int(8, 10)
        else:
            score = self._int(MIN_CES, 7) if low else self._int(1, 3)
        props: dict[str, Any] = {"metric": metric, "score": score}
        if rng.random() < 0.5:
            props["text"] = self._text(cu, "bad_note" if low else "good_note")
        event_id = self._emit(t, channel, "survey_response", props)
        if low:
            self._fail(cu, "low_satisfaction", event_id)

    def _review(self, cu: _Customer, t: int, product: Product, negative: bool) -> None:
        rng = self.rng
        rating = self._int(1, MAX_RATING) if negative else self._int(4, 5)
        text = self._text(cu, "bad_review" if negative else "good_review")
        if rng.random() < 0.8:
            channel, platform = "review", self._pick(REVIEW_PLATFORMS)
        else:
            channel, platform = "social", self._pick(SOCIAL)
        props = {"rating": rating, "text": text, "platform": platform, "url": f"{product.url}/reviews"}
        event_id = self._emit(t, channel, "review_posted", props)
        if negative:
            self._fail(cu, "negative_review", event_id)

    # -- the quiet tail ---------------------------------------------------------------
    def _tail(self) -> None:
        """Healthy touchpoints carrying event time past every deadline (see the module docstring)."""
        cfg = self.config
        lateness = round(cfg.allowed_lateness_s * S)
        # Past every injected deadline, and far enough past the last journey touchpoint that the
        # watermark (latest event time - allowed lateness) reaches it, so it is applied without a flush.
        end = max(
            self.last_ms + round(cfg.tail_s * S),
            self.last_ms + lateness + M,
            self.max_deadline + lateness + M,
        )
        self.quiet_keys = [f"quiet-{i}" for i in range(1, 4)]
        t, i = self.last_ms, 0
        while t < end:
            t = min(end, t + self._int(H, 6 * H))
            self.ids = {"customer_id": self.quiet_keys[i % len(self.quiet_keys)]}
            i += 1
            if i % 2:
                self._emit(t, "email", "email_open", {"campaign": "newsletter-weekly"})
            else:
                page = {"url": f"{SHOP}/", "http_status": 200, "page_category": "home", "load_ms": 420}
                self._emit(t, "web", "page_view", page, self._id("s"))

    # -- malformed lines ----------------------------------------------------------------
    def _malformed(self, ms: int) -> tuple[bytes, str]:
        r = self.bad_rng
        self.bad_n += 1
        what, reason = r.choice(_MALFORMED)
        event: dict[str, Any] = {
            "event_id": f"bad-{self.bad_n:07d}",
            "occurred_at": _ts(ms),
            "customer_id": f"cust-x{r.randint(1, 99_999):05d}",
            "session_id": f"s-x{self.bad_n:06d}",
            "channel": "web",
            "type": "page_view",
            "properties": {"url": f"{SHOP}/", "http_status": 200, "page_category": "home"},
        }
        if what == "invalid_json":
            raw = orjson.dumps(event)
            choice = r.randrange(3)
            if choice == 0:
                return raw[: r.randint(1, len(raw) - 1)], reason  # cut off mid-message
            if choice == 1:
                return raw.replace(b'"', b"'"), reason  # single quotes
            return b"<html><body><h1>502 Bad Gateway</h1></body></html>", reason
        if what == "not_utf8":
            event.update(channel="review", type="review_posted")
            event["properties"] = {"rating": 5, "text": "\x00TEXT\x00"}
            text = r.choice(
                ("Skvělé zboží, doporučuji", "Größe passt nicht", "Odlična kvaliteta, preporučujem")
            )
            return orjson.dumps(event).replace(b"\\u0000TEXT\\u0000", text.encode("cp1250")), reason
        if what == "missing_field":
            victim = r.choice(("event_id", "occurred_at", "channel", "type", "url"))
            if victim == "url":
                del event["properties"]["url"]
            else:
                del event[victim]
        elif what == "no_ids":
            del event["customer_id"]
        elif what == "unknown_type":
            event["type"] = r.choice(("page_scroll", "wishlist_add", "cart_removed", "coupon_applied"))
        elif what == "unknown_channel":
            event["channel"] = r.choice(("sms", "push", "kiosk", "tv"))
        elif what == "bad_timestamp":
            event["occurred_at"] = r.choice(
                (_ts(ms)[:19].replace("T", " "), ms, "03/02/2026 10:15", "2026-02-30T10:00:00Z", "")
            )
        else:
            choice = r.randrange(4)
            if choice == 0:
                event["type"] = "page_exit"
                event["properties"] = {"url": f"{SHOP}/", "dwell_ms": "12s", "page_category": "home"}
            elif choice == 1:
                event["properties"]["http_status"] = "404"
            elif choice == 2:
                event.update(channel="review", type="review_posted")
                event["properties"] = {"rating": "five", "text": "★★★★★"}
            else:
                event.update(channel="phone", type="call_ended")
                event["properties"] = {"call_id": "call-x", "answered": "yes"}
        return orjson.dumps(event), reason
