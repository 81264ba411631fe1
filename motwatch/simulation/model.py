"""A run's inputs and outputs: what to simulate, the failure rates, the truth and the result."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

import orjson

from motwatch.core.moments import KINDS
from motwatch.settings import Settings

__all__ = ["FailureRates", "Simulation", "SimulationConfig", "Truth"]


@dataclass(frozen=True)
class FailureRates:
    """Probability per journey that each failure kind is injected (0..1).

    A kind that needs what a journey lacks (a recovery order for a negative
    review, a product with an onboarding plan the customer has not started
    yet, a product never left before for a bounce) makes the journey have it
    when it can, and is skipped when it cannot: the truth lists what was made.
    """

    abandoned_checkout: float = 0.12
    checkout_error: float = 0.08
    broken_link: float = 0.10
    first_impression_bounce: float = 0.12
    chat_unanswered: float = 0.10
    call_unanswered: float = 0.07
    onboarding_stalled: float = 0.10
    low_satisfaction: float = 0.10
    negative_review: float = 0.08

    @classmethod
    def uniform(cls, rate: float) -> FailureRates:
        """The same rate for every kind (0 for a run without failures)."""
        return cls(**{kind: rate for kind in KINDS})

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0 <= value <= 1:
                raise ValueError(f"failures.{f.name} must be within 0..1, got {value}")


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Every field has a default; the seed makes the run repeatable."""

    journeys: int = 1000
    # None: one customer per journey. Fewer: returning customers, each with
    # several journeys one after the other (one journey key: the customer id).
    customers: int | None = None
    seed: int = 1
    start: datetime = datetime(2026, 3, 2, tzinfo=UTC)
    # New customers' first journeys start at this rate (per second of event time, Poisson).
    arrival_rate_per_s: float = 2.0
    # Journeys that start anonymous (anonymous_id only) and later send ``identify``.
    anonymous_share: float = 0.3
    # Of the anonymous visits that buy without a failure before the order, the share that
    # check out as guests and log in (``identify``) only at the payment step, ordering as
    # the customer: the checkout opened on the anonymous journey, the order on the customer's.
    guest_share: float = 0.5
    # Each touchpoint reaches the stream (its place among the lines) up to this many seconds
    # after it happened, drawn uniformly: events out of order within and across journeys.
    # The truth holds while it is at most ``allowed_lateness_s``.
    disorder_s: float = 0.0
    failures: FailureRates = field(default_factory=FailureRates)
    # Share of injected timeouts/failed checkouts that recover later (a late
    # order, a late chat reply, a late onboarding completion).
    recovery_share: float = 0.35
    # Share of all lines that are deliberately malformed (see ``Simulation.invalid``).
    invalid_share: float = 0.0
    # Quiet event time after the last journey touchpoint (see ``motwatch.simulation.generator``).
    tail_s: float = 8 * 86400
    # The allowed lateness motwatch runs with (the default settings'): the tail and disorder go by it.
    allowed_lateness_s: float = Settings().allowed_lateness_s

    def __post_init__(self) -> None:
        if self.journeys < 0:
            raise ValueError("journeys must be >= 0")
        if self.customers is not None and not 1 <= self.customers <= max(self.journeys, 1):
            raise ValueError("customers must be between 1 and journeys (or None)")
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must be an aware datetime")
        if not self.arrival_rate_per_s > 0:
            raise ValueError("arrival_rate_per_s must be > 0")
        for name in ("anonymous_share", "guest_share", "recovery_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within 0..1")
        if not 0 <= self.invalid_share < 1:
            raise ValueError("invalid_share must be within 0..1 (exclusive)")
        if self.tail_s < 0 or self.allowed_lateness_s < 0:
            raise ValueError("tail_s and allowed_lateness_s must be >= 0")
        if not 0 <= self.disorder_s <= self.allowed_lateness_s:
            raise ValueError("disorder_s must be within 0..allowed_lateness_s (the truth relies on it)")


@dataclass(frozen=True)
class Truth:
    """One moment a correct motwatch reports. ``cause`` is informational (cart, chat, URL, …)."""

    journey_key: str
    kind: str
    status: str  # "failed" or "recovered"
    cause: str

    def to_json(self) -> bytes:
        """One line of a truth file, as ``motwatch evaluate --truth`` reads it."""
        return orjson.dumps(
            {"journey_key": self.journey_key, "kind": self.kind, "status": self.status, "cause": self.cause}
        )


@dataclass(frozen=True)
class Simulation:
    """The lines of one run and the moments they must produce."""

    config: SimulationConfig
    lines: list[bytes]
    truth: list[Truth]
    # Customer ids of the simulated journeys, in order of first arrival.
    journey_keys: tuple[str, ...]
    # Customers of the healthy tail that carries event time past the last deadline.
    quiet_keys: tuple[str, ...]
    # Index in ``lines`` of every malformed line -> the dead-letter reason it must get.
    invalid: dict[int, str]
    # Valid touchpoints among the lines.
    events: int

    @property
    def moment_counts(self) -> Counter[str]:
        """Truth per ``"kind (status)"``, as ``DetectSummary.moments`` counts reported moments."""
        return Counter(f"{t.kind} ({t.status})" for t in self.truth)

    @property
    def end(self) -> datetime | None:
        """Event time of the last touchpoint."""
        for line in reversed(self.lines):
            try:
                at = orjson.loads(line)["occurred_at"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            if isinstance(at, str) and at.endswith("Z"):
                return datetime.fromisoformat(at)
        return None
