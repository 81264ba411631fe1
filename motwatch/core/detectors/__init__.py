"""One detector per failure kind (EVENTS.md §2)."""

from motwatch.core.detectors.base import Detector, Reporter
from motwatch.core.detectors.checkout import AbandonedCheckout, CheckoutError
from motwatch.core.detectors.conversation import CallUnanswered, ChatUnanswered
from motwatch.core.detectors.feedback import LowSatisfaction, NegativeReview
from motwatch.core.detectors.onboarding import OnboardingStalled
from motwatch.core.detectors.web import BrokenLink, FirstImpressionBounce

ALL_DETECTORS: tuple[type[Detector], ...] = (
    AbandonedCheckout,
    CheckoutError,
    BrokenLink,
    FirstImpressionBounce,
    ChatUnanswered,
    CallUnanswered,
    OnboardingStalled,
    LowSatisfaction,
    NegativeReview,
)


def build_detectors(reporter: Reporter) -> list[Detector]:
    return [cls(reporter) for cls in ALL_DETECTORS]


__all__ = ["ALL_DETECTORS", "Detector", "Reporter", "build_detectors"]
