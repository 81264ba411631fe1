"""What every endpoint shares: settings, sink, write keys, CORS, metrics, and storing a request's records."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from motwatch.adapters import Checked, Mappings
from motwatch.collector.access import Cors, WriteKeys
from motwatch.collector.metrics import CollectorMetrics
from motwatch.collector.records import Topics, outcome_of
from motwatch.collector.sink import NotStored, Sink
from motwatch.settings import Settings


def now() -> datetime:
    """The server's clock, time-zone aware: every event's arrival time."""
    return datetime.now(UTC)


@dataclass
class Collector:
    """One collector's state; :meth:`store` is the one way a request's events reach Kafka."""

    settings: Settings
    sink: Sink
    keys: WriteKeys
    cors: Cors = field(default_factory=lambda: Cors(()))
    metrics: CollectorMetrics = field(default_factory=CollectorMetrics)
    mappings: Mappings | None = None
    clock: Callable[[], datetime] = now

    def __post_init__(self) -> None:
        if self.mappings is None:
            self.mappings = Mappings.from_settings(self.settings)
        self.topics = Topics(self.settings.touchpoints_topic, self.settings.deadletter_topic)

    async def store(
        self,
        checked: Checked,
        *,
        route: str,
        vendor: str,
        raw_of: Callable[[str], bytes],
        source_extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Produce the request's touchpoints and dead letters and count them once Kafka acknowledged
        all; raise NotStored (counted as a produce failure) when it did not."""
        outcome = outcome_of(
            checked,
            self.topics,
            route=route,
            vendor=vendor,
            raw_of=raw_of,
            received_at=self.clock(),
            raw_limit=self.settings.limits.max_message_bytes,
            source_extra=source_extra,
        )
        started = time.perf_counter()
        try:
            await self.sink.write(outcome.records)
        except NotStored:
            self.metrics.produce_failures.inc()
            raise
        if outcome.records:
            self.metrics.produce_seconds.observe(time.perf_counter() - started)
        self.metrics.events_in_request(vendor, outcome.events)
        self.metrics.accepts(vendor, outcome.accepted)
        for reason, count in outcome.rejected.items():
            self.metrics.rejects(vendor, reason, count)
