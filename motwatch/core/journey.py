"""One journey's state: small, versioned, serialisable.

Everything the detectors need to decide later lives here, including the
events still waiting for the watermark and the open timeouts, so a restarted
or rebalanced worker resumes exactly where the last one stopped.
"""

from __future__ import annotations

import bisect
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from motwatch.core import packing
from motwatch.core.events import Touchpoint, touchpoint_from_stored
from motwatch.settings import MomentOfTruth

STATE_VERSION = 1

# The moments of truth in journey order: ``reached`` is kept in it.
MOMENT_ORDER = [m.value for m in MomentOfTruth]

# Open or settled items kept per journey (checkouts, chats, …): the newest win.
MAX_ITEMS = 64
MAX_ORDERS = 32


# Written only when they hold something (after the fields every journey has).
_SOMETIMES_STORED = (
    "checkouts",
    "orders",
    "chats",
    "onboardings",
    "exited_products",
    "reported",
    "merged_into",
    "merges",
)


class UnreadableStateError(ValueError):
    """Stored bytes that are not a journey state this motwatch can read (corrupt, or a newer format)."""


class StateVersionError(UnreadableStateError):
    """A stored state written by a newer motwatch than this one."""


@dataclass(slots=True)
class JourneyState:
    """Per-journey memory. Times are event time in ms since the epoch."""

    key: str
    first_seen_ms: int = 0
    last_seen_ms: int = 0
    # Milestones reached and when (first product view, first order).
    milestones: dict[str, int] = field(default_factory=dict)
    # Moments of truth the journey has reached, for the funnel.
    reached: list[str] = field(default_factory=list)
    # Recent event ids and their event time, to drop duplicates.
    seen: dict[str, int] = field(default_factory=dict)
    # Events waiting for the watermark, sorted by (event time, event id).
    pending: list[Touchpoint] = field(default_factory=list)
    checkouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: list[list[Any]] = field(default_factory=list)  # [ms, cart_id | None, event_id]
    chats: dict[str, dict[str, Any]] = field(default_factory=dict)
    onboardings: dict[str, dict[str, Any]] = field(default_factory=dict)
    exited_products: list[str] = field(default_factory=list)
    # "kind|cause|status" of every moment already reported: at most once each.
    reported: dict[str, int] = field(default_factory=dict)
    # Set when this (anonymous) journey was joined to a customer's.
    merged_into: str | None = None
    # Identify event id -> "waiting" (applied here, the anonymous journey's state has not
    # come yet: nothing after it is applied until it does) or {"state": handed-over state
    # or None} (it came first: absorbed when this journey reaches the identify).
    merges: dict[str, Any] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return bool(self.merges) and "waiting" in self.merges.values()

    # -- pending events ---------------------------------------------------
    def hold(self, event: Touchpoint) -> None:
        last = self.pending[-1] if self.pending else None
        if last is None or (last.occurred_ms, last.event_id) <= (event.occurred_ms, event.event_id):
            self.pending.append(event)  # the common case: events arrive in order
            return
        keys = [(e.occurred_ms, e.event_id) for e in self.pending]
        index = bisect.bisect_right(keys, (event.occurred_ms, event.event_id))
        self.pending.insert(index, event)

    def holds(self, event_id: str) -> bool:
        return any(held.event_id == event_id for held in self.pending)

    def next_pending_ms(self) -> int | None:
        return self.pending[0].occurred_ms if self.pending else None

    # -- duplicates -------------------------------------------------------
    def remember(self, event_id: str, at_ms: int, max_ids: int, window_ms: int) -> None:
        """Keep an event's id: the newest ``max_ids`` within ``window_ms``, and every held one.

        Ids of held events are never dropped, so ``seen`` alone tells a
        duplicate, without a walk through the held events.
        """
        self.seen[event_id] = at_ms
        horizon = self.last_seen_ms - window_ms
        if len(self.seen) > max_ids or next(iter(self.seen.values())) < horizon:
            kept = [(k, v) for k, v in self.seen.items() if v >= horizon]
            kept.sort(key=lambda kv: kv[1])
            seen = dict(kept[-max_ids:])
            for held in self.pending:
                seen.setdefault(held.event_id, held.occurred_ms)
            self.seen = seen

    # -- bounded collections ----------------------------------------------
    def add_order(self, at_ms: int, cart_id: str | None, event_id: str) -> None:
        self.orders.append([at_ms, cart_id, event_id])
        self.orders.sort(key=lambda o: (o[0], o[2]))
        del self.orders[:-MAX_ORDERS]

    def mark_reported(self, token: str, at_ms: int) -> bool:
        """Record a report; False when it was already made."""
        if token in self.reported:
            return False
        self.reported[token] = at_ms
        return True

    def open_timeouts(self) -> int:
        """Open items (checkouts, chats, onboardings) that wait for a deadline."""
        return sum(
            1
            for items in (self.checkouts, self.chats, self.onboardings)
            for item in items.values()
            if item.get("state") == "open"
        )

    def bound(self, max_items: int) -> None:
        """Keep at most ``max_items`` checkouts, chats, onboardings and reported moments each
        (``limits.max_state_items``): the oldest settled go first, then the oldest open ones.

        No real journey comes near it; a producer sending one journey endless carts,
        chats or broken links makes it forget the oldest instead of growing without end.
        """
        for items in (self.checkouts, self.chats, self.onboardings):
            if len(items) > max_items:
                # Stable: items of one time (unstarted chats have none) go in the order they came.
                oldest = sorted(
                    items,
                    key=lambda k: (
                        items[k].get("state") in ("open", "unstarted"),
                        items[k].get("started_ms", 0),
                    ),
                )
                for key in oldest[: len(items) - max_items]:
                    del items[key]
        if len(self.reported) > max_items:
            reported = self.reported
            for token in sorted(reported, key=lambda t: (reported[t], t))[: len(reported) - max_items]:
                del reported[token]

    # -- serialisation ------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The state as JSON types; empty collections and a null ``merged_into`` are left out
        (they read back as their defaults), which keeps stored states small. Written on every
        change of a journey: each field is tested once, no dict of them all is made first."""
        out: dict[str, Any] = {
            "v": STATE_VERSION,
            "key": self.key,
            "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms,
        }
        if self.milestones:
            out["milestones"] = self.milestones
        if self.reached:
            out["reached"] = self.reached
        if self.seen:
            out["seen"] = self.seen
        if self.pending:
            out["pending"] = [e.stored for e in self.pending]
        for name in _SOMETIMES_STORED:
            value = getattr(self, name)
            if value:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JourneyState:
        version = data.get("v", 1)
        if version > STATE_VERSION:
            raise StateVersionError(
                f"journey state version {version} is newer than this motwatch ({STATE_VERSION})"
            )
        fields = {k: v for k, v in data.items() if k != "v"}
        fields["pending"] = [touchpoint_from_stored(e) for e in data.get("pending", [])]
        return cls(**fields)

    def absorb(self, other: JourneyState) -> None:
        """Take in another journey's memory (an identify joined it to this one); this one's wins a tie.

        The items come over unsettled: the caller lets the detectors settle what
        the joined orders settle.
        """
        self.first_seen_ms = min(self.first_seen_ms, other.first_seen_ms)
        self.last_seen_ms = max(self.last_seen_ms, other.last_seen_ms)
        for name, at in other.milestones.items():
            self.milestones[name] = min(at, self.milestones.get(name, at))
        for moment in other.reached:
            if moment not in self.reached:
                self.reached.append(moment)
        self.reached.sort(key=MOMENT_ORDER.index)
        for event_id, at in other.seen.items():
            self.seen.setdefault(event_id, at)
        for event in other.pending:
            if not self.holds(event.event_id):
                self.hold(event)
        for mine, theirs in (
            (self.checkouts, other.checkouts),
            (self.chats, other.chats),
            (self.onboardings, other.onboardings),
        ):
            for item_key, item in theirs.items():
                mine.setdefault(item_key, item)
            trim_items(mine)
        for order in other.orders:
            self.add_order(*order)
        for product in other.exited_products:
            if product not in self.exited_products:
                self.exited_products.append(product)
        for token, at in other.reported.items():
            self.reported.setdefault(token, at)

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes) -> JourneyState:
        return cls.from_dict(orjson.loads(raw))

    def pack(self) -> bytes:
        """The state as a table keeps it and writes its changelog (``motwatch/packing.py``).

        A worker holds every journey of its partitions; packed, a journey is
        a small fraction of its objects' memory.
        """
        return packing.pack(self.to_json())

    @classmethod
    def unpack(cls, raw: bytes) -> JourneyState:
        """A state from :meth:`pack`, or as an earlier version stored it; UnreadableStateError if not."""
        try:
            state = cls.from_json(packing.unpack(raw))
        except UnreadableStateError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, zlib.error) as exc:
            raise UnreadableStateError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        for name, kind in _FIELD_TYPES:
            value = getattr(state, name)
            if not isinstance(value, kind):
                raise UnreadableStateError(f"field {name} is a {type(value).__name__}, not a {kind.__name__}")
        if state.merged_into is not None and not isinstance(state.merged_into, str):
            raise UnreadableStateError("field merged_into is not text")
        return state


# Each field's type, checked when a stored state is read: a state of the wrong shape is unreadable
# at once, rather than failing every event of its journey later.
_FIELD_TYPES: tuple[tuple[str, type], ...] = (
    ("key", str),
    ("first_seen_ms", int),
    ("last_seen_ms", int),
    ("milestones", dict),
    ("reached", list),
    ("seen", dict),
    ("checkouts", dict),
    ("orders", list),
    ("chats", dict),
    ("onboardings", dict),
    ("exited_products", list),
    ("reported", dict),
    ("merges", dict),
)


def trim_items(items: dict[str, dict[str, Any]]) -> None:
    """Drop the oldest settled items beyond MAX_ITEMS.

    Open ones always stay, and so do unstarted ones (a reply or completion seen
    before its start): they are not settled, and just added they look oldest.
    """
    if len(items) <= MAX_ITEMS:
        return
    settled = sorted(
        (v.get("started_ms", 0), k) for k, v in items.items() if v.get("state") not in ("open", "unstarted")
    )
    for _, key in settled[: len(items) - MAX_ITEMS]:
        del items[key]
