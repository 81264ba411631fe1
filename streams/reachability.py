"""Whether the worker reaches Kafka: probed every second, kept as gauges, logged once each way.

A probe asks the brokers the worker's producer knows for their metadata (no
topics: the cheapest request there is), one broker at a time, each within
three seconds, with the producer's client and security but on connections of
their own: a broker answers a connection's requests in order, so behind a
produce request waiting for its replicas a probe would wait too. Kafka is
reachable while one broker answers. One broker down is no outage; every
broker silent is. :class:`KafkaReachability` turns probe results into the
metrics (``motwatch_kafka_reachable``, ``motwatch_kafka_unreachable_seconds``,
``motwatch_kafka_outages_total``, ``motwatch_kafka_last_outage_seconds``,
``motwatch_kafka_last_outage_end_timestamp_seconds``) and two log lines per
outage, "Kafka unreachable since …" and "Kafka reachable again after …";
it knows nothing of Kafka itself, so a test drives it with a fake probe and
a fake clock.

An outage is two probes in a row that found no broker (one lost on a busy
machine is none); it starts when the first of them was sent and ends when a
probe is answered again: probes a second apart measure it to within a couple
of seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import faust
from aiokafka.client import ConnectionGroup
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest
from faust.exceptions import NotReady

from motwatch.streams.faust_internals import aiokafka_producer
from motwatch.streams.metrics import Metrics

log = logging.getLogger("motwatch.kafka")

PROBE_INTERVAL_S = 1.0
# One broker's answer, and the whole probe (every broker in turn).
BROKER_TIMEOUT_S = 3.0
PROBE_TIMEOUT_S = 10.0
# Probes in a row without an answer that make an outage: one lost on a loaded machine does not.
UNANSWERED_FOR_OUTAGE = 2

# Returns once Kafka answered; raises when it did not (NotAsked: when it could not ask).
Probe = Callable[[], Awaitable[object]]


class NotAsked(Exception):
    """A probe could not ask Kafka at all (its client has not started): no answer either way."""


class NoBrokerAnswered(Exception):
    """Every broker the worker knows failed to answer the probe."""


class KafkaReachability:
    """Kafka's outages as probes find them: :meth:`check` runs one probe and updates the metrics.

    An outage is ``unanswered_for_outage`` probes in a row without an answer;
    it is dated from the first of them. ``monotonic`` measures outages,
    ``wall`` dates them (seconds since the epoch). Before the first probe
    ``motwatch_kafka_reachable`` stays NaN: not known.
    """

    def __init__(
        self,
        metrics: Metrics,
        probe: Probe,
        *,
        timeout_s: float = PROBE_TIMEOUT_S,
        unanswered_for_outage: int = UNANSWERED_FOR_OUTAGE,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.probe = probe
        self.timeout_s = timeout_s
        self.unanswered_for_outage = unanswered_for_outage
        self.monotonic = monotonic
        self.wall = wall
        # When the current outage began (monotonic); None while Kafka answers.
        self.down_since: float | None = None
        self.reachable: bool | None = None
        # Probes unanswered since the last answer: when the first was sent (monotonic, wall), and how many.
        self.first_unanswered: tuple[float, float] | None = None
        self.unanswered = 0
        metrics.kafka_unreachable_seconds.set_function(self.unreachable_s)

    def unreachable_s(self) -> float:
        """How long the current outage has lasted so far; 0 while Kafka answers."""
        return 0.0 if self.down_since is None else max(0.0, self.monotonic() - self.down_since)

    async def check(self) -> bool | None:
        """Probe once (within ``timeout_s``) and record the answer: True, False, None if not asked."""
        sent, sent_wall = self.monotonic(), self.wall()
        try:
            await asyncio.wait_for(self.probe(), self.timeout_s)
        except NotAsked:
            return None
        except Exception as exc:  # any failure, the timeout included, is no answer
            self.failed(sent, sent_wall, exc)
            return False
        self.answered()
        return True

    def failed(self, sent: float, sent_wall: float, exc: BaseException) -> None:
        """A probe sent at ``sent`` (``sent_wall`` on the wall clock) got no answer."""
        if self.first_unanswered is None:
            self.first_unanswered = (sent, sent_wall)
        self.unanswered += 1
        if self.down_since is not None or self.unanswered < self.unanswered_for_outage:
            return
        self.reachable = False
        self.metrics.kafka_reachable.set(0)
        self.down_since, since_wall = self.first_unanswered
        self.metrics.kafka_outages.inc()
        why = str(exc) if isinstance(exc, NoBrokerAnswered) else type(exc).__name__
        log.warning("Kafka unreachable since %s (%s)", _iso(since_wall), why)

    def answered(self) -> None:
        """A probe was answered: an outage under way has ended now."""
        self.reachable = True
        self.metrics.kafka_reachable.set(1)
        self.first_unanswered, self.unanswered = None, 0
        if self.down_since is None:
            return
        lasted = max(0.0, self.monotonic() - self.down_since)
        self.down_since = None
        self.metrics.kafka_last_outage_seconds.set(lasted)
        self.metrics.kafka_last_outage_end.set(self.wall())
        log.info("Kafka reachable again after %.1fs", lasted)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def metadata_probe(app: faust.App, broker_timeout_s: float = BROKER_TIMEOUT_S) -> Probe:
    """A probe that asks each broker Faust's producer knows for its metadata, the last to answer first.

    It sends on the client's coordination connections, which a producer
    outside transactions never uses, not behind produce requests.

    Returns at the first answer; raises :class:`NoBrokerAnswered` when none
    answers, :class:`NotAsked` before the producer has started.
    """
    preferred: list[int] = []

    async def probe() -> None:
        try:
            client = aiokafka_producer(app).client
        except NotReady:
            raise NotAsked("the producer has not started") from None
        nodes = sorted(broker.nodeId for broker in client.cluster.brokers())
        nodes.sort(key=lambda node: node not in preferred)
        failures: list[str] = []
        for node in nodes:
            try:
                asked = client.send(node, MetadataRequest([]), group=ConnectionGroup.COORDINATION)
                await asyncio.wait_for(asked, broker_timeout_s)
            except (KafkaError, OSError, TimeoutError) as exc:
                failures.append(type(exc).__name__)
                continue
            preferred[:] = [node]
            return
        if not nodes:
            raise NoBrokerAnswered("no broker known")
        raise NoBrokerAnswered(f"none of {len(nodes)} brokers answered: {', '.join(sorted(set(failures)))}")

    return probe


def watch_kafka(app: faust.App, metrics: Metrics) -> KafkaReachability:
    """Probe Kafka from a task of ``app`` (on every worker), ``PROBE_INTERVAL_S`` after each probe ended.

    Not a Faust timer: a probe that waits for silent brokers would overlap
    the next tick, and Faust would log every one.
    """
    reachability = KafkaReachability(metrics, metadata_probe(app))

    @app.task
    async def probe_kafka() -> None:
        while not app.should_stop:
            await reachability.check()
            await app.sleep(PROBE_INTERVAL_S)

    return reachability
