"""Getting going with what was bought (SMOT): onboarding that stalls."""

from __future__ import annotations

from typing import Any

from motwatch.core.detectors.base import Detector, Origin, earliest_open_deadline, keep
from motwatch.core.events import Touchpoint
from motwatch.core.journey import JourneyState, trim_items
from motwatch.core.moments import Moment

ANY_PLAN = "*"


class OnboardingStalled(Detector):
    """``onboarding_started`` (or, when configured, the first order) with no
    ``onboarding_completed`` within the window. A completion after a reported
    stall is a recovery."""

    kind = "onboarding_stalled"
    types = frozenset({"onboarding_started", "order_completed", "onboarding_completed"})

    def on_event(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        if event.type == "onboarding_started":
            return self._started(state, event, getattr(event.properties, "plan", None) or ANY_PLAN)
        if (
            event.type == "order_completed"
            and self.settings.start_on_first_order
            and "first_order" not in state.milestones
        ):
            return self._started(state, event, "first_order")
        if event.type == "onboarding_completed":
            return self._completed(state, event)
        return []

    def _started(self, state: JourneyState, event: Touchpoint, plan: str) -> list[Moment]:
        item = state.onboardings.get(plan)
        if item is not None and item["state"] != "unstarted":
            return []
        deadline = event.occurred_ms + round(self.settings.window_s * 1000)
        completed = item.get("completed_ms") if item else None
        state.onboardings[plan] = {
            "plan": plan,
            "state": "completed" if completed is not None and completed <= deadline else "open",
            "started_ms": event.occurred_ms,
            "deadline_ms": deadline,
            "event_id": event.event_id,
            "origin": self.reporter.origin(self.kind, state, event).to_dict(),
            "completed_ms": completed,
            "completed_event_id": item.get("completed_event_id") if item else None,
        }
        trim_items(state.onboardings)
        return []

    def _completed(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        plan = getattr(event.properties, "plan", None)
        targets = [
            item
            for item in state.onboardings.values()
            if plan is None or item["plan"] in (plan, ANY_PLAN, "first_order")
        ]
        if not targets:
            # Completion seen before its start (a late start may follow).
            state.onboardings[plan or ANY_PLAN] = targets_item = {
                "plan": plan or ANY_PLAN,
                "state": "unstarted",
                "started_ms": event.occurred_ms,
            }
            targets = [targets_item]
        out: list[Moment] = []
        for item in targets:
            if item.get("completed_ms") is None:
                item["completed_ms"] = event.occurred_ms
                item["completed_event_id"] = event.event_id
            if item["state"] == "open" and event.occurred_ms <= item["deadline_ms"]:
                item["state"] = "completed"
            elif item["state"] == "failed":
                keep(self._recover(state, item), out)
        return out

    def _details(self, item: dict[str, Any]) -> dict[str, Any]:
        details: dict[str, Any] = {"window_s": self.settings.window_s}
        if item["plan"] not in (ANY_PLAN, "first_order"):
            details["plan"] = item["plan"]
        if item["plan"] == "first_order":
            details["started_by"] = "first_order"
        return details

    def _recover(self, state: JourneyState, item: dict[str, Any]) -> Moment | None:
        item["state"] = "recovered"
        return self.reporter.report(
            state,
            self.kind,
            item["plan"],
            Origin.from_dict(item["origin"]),
            status="recovered",
            at_ms=item["completed_ms"],
            evidence=(item["event_id"], item["completed_event_id"]),
            details=self._details(item),
        )

    def next_deadline(self, state: JourneyState) -> int | None:
        return earliest_open_deadline(state.onboardings)

    def on_deadline(self, state: JourneyState, deadline: int) -> list[Moment]:
        out: list[Moment] = []
        for item in list(state.onboardings.values()):
            if item["state"] != "open" or item["deadline_ms"] != deadline:
                continue
            item["state"] = "failed"
            keep(
                self.reporter.report(
                    state,
                    self.kind,
                    item["plan"],
                    Origin.from_dict(item["origin"]),
                    at_ms=deadline,
                    evidence=(item["event_id"],),
                    details=self._details(item),
                ),
                out,
            )
            if item.get("completed_ms") is not None:
                keep(self._recover(state, item), out)
        return out
