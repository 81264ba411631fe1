"""Prometheus metrics of a worker: what came in, what failed, how far behind we are.

Labels are bounded by construction: channel, type, kind, moment, phase,
severity, owner, status, reason, agent, and the topic and partition of the
worker's own assignment. Never a customer id, a URL or free text: those
belong in moment events, not in time series. The one way from a series to
a single moment is an exemplar: every moment counted in ``motwatch_moments``
and observed in ``motwatch_detection_latency_seconds`` carries its
``moment_id`` (and nothing else) as one, seen in the OpenMetrics exposition
only (``streams/web.py``), for ``motwatch moments --id``. Per-partition series of
partitions the worker no longer holds are removed, so a rebalance leaves no
stale lag or watermark behind.

Every metric the dashboards and alert rules use is declared here; a test
checks that they use nothing else.

What each record does is counted in a :class:`Tally` as it happens and added
to the series once per batch (:meth:`Metrics.add`): the same values as
counting each record, without a lock taken per record and series.
"""

from __future__ import annotations

from collections import Counter as Tallied
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from motwatch.core.engine import Step
from motwatch.core.events import CHANNELS, Touchpoint
from motwatch.streams.prometheus_internals import observe_all

# The channel label of a moment whose touchpoint's channel is not in the contract.
NO_CHANNEL = "none"
_CHANNELS = frozenset(CHANNELS)

LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
PROCESSING_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)
RESPONSE_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 300, 600, 1800, 3600)
CHECKOUT_BUCKETS = (30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200)


class Metrics:
    """The worker's own series, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.received = Counter(
            "motwatch_events_received", "Messages read from the touchpoints topic.", registry=r
        )
        self.accepted = Counter(
            "motwatch_events_accepted",
            "Touchpoints that passed validation and were re-keyed by journey.",
            ["channel", "type"],
            registry=r,
        )
        self.rejected = Counter(
            "motwatch_events_rejected",
            "Messages sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "motwatch_events_duplicate",
            "Touchpoints dropped because their event_id was already seen in the journey.",
            ["channel"],
            registry=r,
        )
        self.late = Counter(
            "motwatch_events_late",
            "Touchpoints older than the watermark when they arrived (still applied).",
            ["channel"],
            registry=r,
        )
        self.moments = Counter(
            "motwatch_moments",
            "Moment events written, by kind, moment of truth, phase, severity, owner, "
            "channel of the touchpoint that caused it, and status.",
            ["kind", "moment", "phase", "severity", "owner", "channel", "status"],
            registry=r,
        )
        self.journeys_reached = Counter(
            "motwatch_journeys_reached",
            "Journeys that reached a moment of truth for the first time (the funnel).",
            ["moment"],
            registry=r,
        )
        self.active_journeys = Gauge(
            "motwatch_active_journeys", "Journeys held in state by this worker.", registry=r
        )
        self.open_timeouts = Gauge(
            "motwatch_open_timeouts",
            "Open deadlines (checkouts, chats, onboardings) waiting for event time.",
            registry=r,
        )
        self.event_lag = Histogram(
            "motwatch_event_lag_seconds",
            "Wall-clock time minus the touchpoint's occurred_at, when the worker processed it.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.detection_latency = Histogram(
            "motwatch_detection_latency_seconds",
            "Wall-clock time from a moment's occurred_at (when its failure became certain; for a "
            "timeout, the deadline) to the worker writing it, by kind.",
            ["kind"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.processing = Histogram(
            "motwatch_processing_seconds",
            "Time spent processing one record: agent=ingest for a touchpoint as read (applied too "
            "when its journey lives on that partition), agent=journeys for a record of the re-keyed topic.",
            ["agent"],
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.chat_first_response = Histogram(
            "motwatch_chat_first_response_seconds",
            "Event time from chat_started to the first agent or bot message.",
            buckets=RESPONSE_BUCKETS,
            registry=r,
        )
        self.checkout_duration = Histogram(
            "motwatch_checkout_duration_seconds",
            "Event time from checkout_started to order_completed.",
            buckets=CHECKOUT_BUCKETS,
            registry=r,
        )
        self.watermark = Gauge(
            "motwatch_watermark_seconds",
            "Event-time watermark of a partition of the re-keyed topic (seconds since the epoch).",
            ["partition"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "motwatch_consumer_lag_messages",
            "Messages not yet read by this worker on the topics its agents read: "
            "end offset minus position, per assigned partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.write_failures = Counter(
            "motwatch_write_failures",
            "Failed tries to write a record, by what it is (moments, deadletter, by_journey, "
            "quarantine, journeys_changelog, clocks_changelog); it is tried again until written.",
            ["stream"],
            registry=r,
        )
        self.write_stalled = Counter(
            "motwatch_write_stalled_seconds",
            "Time input waited for records to be written again after failed tries.",
            registry=r,
        )
        self.quarantined = Counter(
            "motwatch_state_quarantined",
            "Stored records (journey states, partition clocks) that could not be read: sent to the "
            "quarantine topic, their journey or clock started afresh.",
            ["table"],
            registry=r,
        )
        # Kafka as the worker reaches it, probed every second (streams/reachability.py).
        self.kafka_reachable = Gauge(
            "motwatch_kafka_reachable",
            "1 while a broker answers the worker's probe, 0 while none does (NaN before the first probe).",
            registry=r,
        )
        self.kafka_reachable.set(float("nan"))
        self.kafka_unreachable_seconds = Gauge(
            "motwatch_kafka_unreachable_seconds",
            "How long the current Kafka outage has lasted; 0 while a broker answers.",
            registry=r,
        )
        self.kafka_outages = Counter(
            "motwatch_kafka_outages", "Kafka outages: times no broker answered the probe.", registry=r
        )
        self.kafka_last_outage_seconds = Gauge(
            "motwatch_kafka_last_outage_seconds",
            "How long the last finished Kafka outage lasted (0: none yet).",
            registry=r,
        )
        self.kafka_last_outage_end = Gauge(
            "motwatch_kafka_last_outage_end_timestamp_seconds",
            "When the last finished Kafka outage ended (seconds since the epoch; 0: none yet).",
            registry=r,
        )
        # Label values of the per-partition series set so far, to remove those no longer assigned.
        self._watermark_partitions: set[str] = set()
        self._lag_partitions: set[tuple[str, str]] = set()
        self._accepted: dict[tuple[str, str], Any] = {}
        self._durations = {
            "chat_first_response": self.chat_first_response,
            "checkout_duration": self.checkout_duration,
        }

    def tally(self) -> Tally:
        """A tally for the next batch of records, added to the series by :meth:`add`."""
        return Tally(self)

    def add(self, tally: Tally) -> None:
        """Add what a batch's tally counted to the series, and start it afresh."""
        if tally.received:
            self.received.inc(tally.received)
        for (channel, type_), count in tally.accepted.items():
            # One series per (channel, type), a bounded set: kept at hand, as labels() costs a lock.
            series = self._accepted.get((channel, type_))
            if series is None:
                series = self._accepted[(channel, type_)] = self.accepted.labels(channel, type_)
            series.inc(count)
        observe_all(self.event_lag, tally.lags)
        for agent, seconds in tally.processing.items():
            observe_all(self.processing.labels(agent), seconds)
        tally.clear()

    def count_rare(self, step: Step, event: Touchpoint | None, now_s: float) -> None:
        """What few records cause (duplicates, late events, moments): counted as they happen."""
        if event is not None:
            if step.duplicate:
                self.duplicates.labels(event.channel).inc()
            if step.late:
                self.late.labels(event.channel).inc()
        for m in step.moments:
            channel = m.channel if m.channel in _CHANNELS else NO_CHANNEL
            exemplar = {"moment_id": m.moment_id}
            series = self.moments.labels(m.kind, m.moment, m.phase, m.severity, m.owner, channel, m.status)
            series.inc(exemplar=exemplar)
            latency = max(0.0, now_s - m.occurred_ms / 1000)
            self.detection_latency.labels(m.kind).observe(latency, exemplar=exemplar)
        for moment in step.reached:
            self.journeys_reached.labels(moment).inc()
        for name, seconds in step.measurements:
            histogram = self._durations.get(name)
            if histogram is not None:
                histogram.observe(seconds)

    def set_watermark(self, partition: int, seconds: float) -> None:
        label = str(partition)
        self.watermark.labels(label).set(seconds)
        self._watermark_partitions.add(label)

    def keep_watermarks(self, partitions: Iterable[int]) -> None:
        """Drop the watermarks of partitions of the re-keyed topic this worker no longer holds."""
        keep = {str(p) for p in partitions}
        for label in self._watermark_partitions - keep:
            self.watermark.remove(label)
        self._watermark_partitions &= keep

    def set_consumer_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """The lag of every (topic, partition) now assigned; the series of any other one go."""
        current = {(topic, str(partition)): lag for (topic, partition), lag in lags.items()}
        for labels in self._lag_partitions - current.keys():
            self.consumer_lag.remove(*labels)
        for labels, lag in current.items():
            self.consumer_lag.labels(*labels).set(lag)
        self._lag_partitions = set(current)


class Tally:
    """What a batch of records did to the per-record series, until :meth:`Metrics.add` adds it.

    Touchpoints read and accepted, event lag, time spent per record: counted
    here as they happen. What few records cause (duplicates, late events,
    moments with their exemplars) goes to the series at once.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.received = 0
        self.accepted: Tallied[tuple[str, str]] = Tallied()
        self.lags: list[float] = []
        self.processing: dict[str, list[float]] = {}

    def accept(self, event: Touchpoint) -> None:
        self.accepted[(event.channel, event.type)] += 1

    def step(self, step: Step, event: Touchpoint | None, now_s: float) -> None:
        """What one record caused in the journey engine."""
        if event is not None and not step.duplicate:
            self.lags.append(max(0.0, now_s - event.occurred_ms / 1000))
        if step.duplicate or step.late or step.moments or step.reached or step.measurements:
            self.metrics.count_rare(step, event, now_s)

    def took(self, agent: str, seconds: float) -> None:
        """One record of ``agent`` (ingest, journeys) took ``seconds`` to process."""
        durations = self.processing.get(agent)
        if durations is None:
            durations = self.processing[agent] = []
        durations.append(seconds)

    def clear(self) -> None:
        self.received = 0
        self.accepted.clear()
        self.lags.clear()
        self.processing.clear()
