"""Which moment of truth a touchpoint belongs to, and where the journey stands.

The rules come from configuration; the first one whose conditions all hold
wins. Milestones are compared on event time, so the answer depends on what
happened before the touchpoint, not on the order events arrived in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from motwatch.core.events import Touchpoint
from motwatch.settings import ClassificationRule, MomentOfTruth, Phase


def page_category(event: Touchpoint) -> str | None:
    # Read from the instance's fields: a missing attribute costs a pydantic __getattr__ and an exception.
    return event.properties.__dict__.get("page_category")


# A rule reduced to what depends on the journey: (after, before, moment, phase).
_Candidate = tuple[str | None, str | None, str, str]
_DEFAULT = (MomentOfTruth.ZMOT.value, Phase.ENGAGEMENT.value)


class Classifier:
    """Maps (touchpoint, milestones reached) to (moment of truth, phase).

    The conditions on the touchpoint alone (type, channel, page category) are
    evaluated once per combination and kept; only the milestone conditions are
    checked per event.
    """

    def __init__(self, rules: Sequence[ClassificationRule]) -> None:
        self._rules = tuple(rules)
        self._candidates: dict[tuple[str, str, str | None], tuple[_Candidate, ...]] = {}

    def _candidates_for(self, type_: str, channel: str, category: str | None) -> tuple[_Candidate, ...]:
        out: list[_Candidate] = []
        for rule in self._rules:
            if rule.types and type_ not in rule.types:
                continue
            if rule.channels and channel not in rule.channels:
                continue
            if rule.page_categories and category not in rule.page_categories:
                continue
            out.append((rule.after, rule.before, rule.moment.value, rule.phase.value))
            if rule.after is None and rule.before is None:
                break  # always matches: later rules are never reached
        found = self._candidates[(type_, channel, category)] = tuple(out)
        return found

    def classify(self, event: Touchpoint, milestones: Mapping[str, int]) -> tuple[str, str]:
        category = page_category(event)
        candidates = self._candidates.get((event.type, event.channel, category))
        if candidates is None:
            candidates = self._candidates_for(event.type, event.channel, category)
        at = event.occurred_ms
        for after, before, moment, phase in candidates:
            if after is not None and not _reached_before(milestones, after, at):
                continue
            if before is not None and _reached_before(milestones, before, at):
                continue
            return moment, phase
        return _DEFAULT


def _reached_before(milestones: Mapping[str, int], name: str, at: int) -> bool:
    reached = milestones.get(name)
    return reached is not None and reached < at
