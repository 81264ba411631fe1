"""What customers say back: low survey scores and negative reviews."""

from __future__ import annotations

from typing import Any

from motwatch.core.detectors.base import Detector
from motwatch.core.events import Touchpoint
from motwatch.core.journey import JourneyState
from motwatch.core.moments import Moment


class LowSatisfaction(Detector):
    """CSAT or NPS at or below, CES at or above, its configured bar."""

    kind = "low_satisfaction"
    types = frozenset({"survey_response"})

    def _is_low(self, metric: str, score: float) -> bool:
        if metric == "csat":
            return score <= self.settings.max_csat
        if metric == "nps":
            return score <= self.settings.max_nps
        return score >= self.settings.min_ces

    def on_event(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        if event.type != "survey_response":
            return []
        props: Any = event.properties
        if not self._is_low(props.metric, props.score):
            return []
        details: dict[str, Any] = {"metric": props.metric, "score": props.score}
        if props.text is not None:
            details["text"] = props.text
        return self.fail_now(state, event, event.event_id, details)


class NegativeReview(Detector):
    """A review at or below the configured rating."""

    kind = "negative_review"
    types = frozenset({"review_posted"})

    def on_event(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        if event.type != "review_posted":
            return []
        props: Any = event.properties
        if props.rating > self.settings.max_rating:
            return []
        details: dict[str, Any] = {"rating": props.rating}
        for name in ("platform", "url", "text"):
            if getattr(props, name) is not None:
                details[name] = getattr(props, name)
        return self.fail_now(state, event, event.event_id, details)
