"""What every detector shares: the reporter that turns a failure into a moment event.

A detector sees one journey's state and one touchpoint at a time, in event-time
order, and may own timeouts. Timeouts are first-class results: the engine asks
each detector for its next deadline and calls it back once the watermark has
passed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from motwatch.core.classify import Classifier
from motwatch.core.events import Touchpoint
from motwatch.core.journey import JourneyState
from motwatch.core.moments import Moment, moment_id
from motwatch.settings import KindSettings, Settings


def moment_of(kind: KindSettings, milestones: Mapping[str, int], at_ms: int) -> str:
    """The kind's moment of truth, moved on by the latest milestone reached before ``at_ms``."""
    best_at, moment = -1, kind.moment.value
    for milestone, later in kind.moment_after.items():
        reached = milestones.get(milestone)
        if reached is not None and reached < at_ms and reached > best_at:
            best_at, moment = reached, later.value
    return moment


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a failure comes from: its touchpoint's channel, moment and phase."""

    channel: str
    moment: str
    phase: str
    at_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "moment": self.moment, "phase": self.phase, "at_ms": self.at_ms}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Origin:
        return cls(data["channel"], data["moment"], data["phase"], data["at_ms"])


class Reporter:
    """Builds moment events and guarantees each is reported at most once per journey."""

    def __init__(self, settings: Settings, classifier: Classifier) -> None:
        self.settings = settings
        self.classifier = classifier
        # Durations observed while applying the current input (for histograms).
        self.measurements: list[tuple[str, float]] = []

    def measure(self, name: str, seconds: float) -> None:
        self.measurements.append((name, seconds))

    def origin(self, kind: str, state: JourneyState, event: Touchpoint) -> Origin:
        kind_settings: KindSettings = getattr(self.settings.kinds, kind)
        _, phase = self.classifier.classify(event, state.milestones)
        moment = moment_of(kind_settings, state.milestones, event.occurred_ms)
        return Origin(event.channel, moment, phase, event.occurred_ms)

    def report(
        self,
        state: JourneyState,
        kind: str,
        cause: str,
        origin: Origin,
        *,
        status: str = "failed",
        at_ms: int,
        evidence: tuple[str, ...],
        details: dict[str, Any],
    ) -> Moment | None:
        if not getattr(self.settings.kinds, kind).enabled:
            return None
        if not state.mark_reported(f"{kind}|{cause}|{status}", at_ms):
            return None
        return Moment(
            moment_id=moment_id(state.key, kind, cause, status),
            status=status,  # type: ignore[arg-type]
            kind=kind,
            moment=origin.moment,
            phase=origin.phase,
            severity=getattr(self.settings.kinds, kind).severity,
            owner=self.settings.owner_of(origin.channel),
            journey_key=state.key,
            channel=origin.channel,
            occurred_ms=at_ms,
            evidence=evidence,
            details=details,
        )

    def was_reported(self, state: JourneyState, kind: str, cause: str, status: str) -> bool:
        return f"{kind}|{cause}|{status}" in state.reported


class Detector:
    """One failure kind. Subclasses override what they need."""

    kind: str = ""
    # The event types on_event acts on; None: every type. The engine calls a detector
    # only for these, which spares nine calls per event.
    types: frozenset[str] | None = None

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.settings = getattr(reporter.settings.kinds, self.kind)

    def on_event(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        return []

    def next_deadline(self, state: JourneyState) -> int | None:
        """The earliest open deadline (event time, ms), if this kind has timeouts."""
        return None

    def on_deadline(self, state: JourneyState, deadline: int) -> list[Moment]:
        """Fire every item of this journey whose deadline is exactly ``deadline``."""
        return []

    def on_merge(self, state: JourneyState) -> None:
        """Another journey's items were merged into this one: settle what they settle."""

    def fail_now(
        self, state: JourneyState, event: Touchpoint, cause: str, details: dict[str, Any]
    ) -> list[Moment]:
        """An immediate failure: the touchpoint itself proves it."""
        moment = self.reporter.report(
            state,
            self.kind,
            cause,
            self.reporter.origin(self.kind, state, event),
            at_ms=event.occurred_ms,
            evidence=(event.event_id,),
            details=details,
        )
        return [moment] if moment else []


def keep(moment: Moment | None, into: list[Moment]) -> None:
    if moment is not None:
        into.append(moment)


def earliest_open_deadline(items: Mapping[str, Mapping[str, Any]]) -> int | None:
    """The earliest deadline among items still open (asked several times per event: no list)."""
    best: int | None = None
    for item in items.values():
        if item.get("state") == "open":
            deadline = item["deadline_ms"]
            if best is None or deadline < best:
                best = deadline
    return best
