"""The collector's Prometheus series, in a registry of its own (it is not the worker's process).

Labels are bounded by construction: the route's name (one per endpoint,
``unmatched`` for any other path), the status class (``2xx`` … ``5xx``),
the vendor (four) and the reason code (the adapters' and the validator's
codes; anything else is counted as ``other``). Never a write key, an
origin, a URL or an id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from motwatch.adapters import REASONS as ADAPTER_REASONS
from motwatch.adapters import VENDORS
from motwatch.core.validation import REASONS as VALIDATOR_REASONS

# Reasons a whole request is refused for before any event is read from it.
REQUEST_REASONS = ("too_large", "invalid_json", "bad_payload")
KNOWN_REASONS = frozenset(ADAPTER_REASONS) | frozenset(VALIDATOR_REASONS) | frozenset(REQUEST_REASONS)
OTHER = "other"

PRODUCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
EVENT_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


def status_class(status: int) -> str:
    """``2xx`` for 204, ``4xx`` for 401: the label, never the exact status."""
    return f"{min(max(status // 100, 1), 5)}xx"


def reason_label(reason: str) -> str:
    """A reason code as a label value: a known code, else ``other``."""
    return reason if reason in KNOWN_REASONS else OTHER


def vendor_label(vendor: str) -> str:
    return vendor if vendor in VENDORS else OTHER


class CollectorMetrics:
    """Requests, events accepted and rejected, produce latency and events per request."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "motwatch_collector_requests",
            "HTTP requests answered, by route and status class.",
            ["route", "status"],
            registry=r,
        )
        self.accepted = Counter(
            "motwatch_collector_events_accepted",
            "Touchpoints produced to the touchpoints topic, by vendor.",
            ["vendor"],
            registry=r,
        )
        self.rejected = Counter(
            "motwatch_collector_events_rejected",
            "Vendor events rejected, by vendor and reason: dead-lettered, or refused with a 4xx "
            "(too_large, invalid_json, bad_payload of a whole request), or carrying no touchpoint "
            "(no_touchpoint, counted only).",
            ["vendor", "reason"],
            registry=r,
        )
        self.produce_seconds = Histogram(
            "motwatch_collector_produce_seconds",
            "Seconds from a request's first record sent to Kafka's last acknowledgement.",
            buckets=PRODUCE_BUCKETS,
            registry=r,
        )
        self.produce_failures = Counter(
            "motwatch_collector_produce_failures",
            "Requests answered 503 because Kafka did not acknowledge their records.",
            registry=r,
        )
        self.request_events = Histogram(
            "motwatch_collector_request_events",
            "Vendor events per request (a batch's size; 1 for a single event), by vendor.",
            ["vendor"],
            buckets=EVENT_BUCKETS,
            registry=r,
        )

    def answered(self, route: str, status: int) -> None:
        self.requests.labels(route=route, status=status_class(status)).inc()

    def rejects(self, vendor: str, reason: str, count: int = 1) -> None:
        self.rejected.labels(vendor=vendor_label(vendor), reason=reason_label(reason)).inc(count)

    def accepts(self, vendor: str, count: int) -> None:
        self.accepted.labels(vendor=vendor_label(vendor)).inc(count)

    def events_in_request(self, vendor: str, count: int) -> None:
        self.request_events.labels(vendor=vendor_label(vendor)).observe(count)
