"""The Faust app: topics under the configured prefix, the journey tables, the agents.

All topics carry raw bytes: validation happens in our code, so Faust never
meets a message it cannot decode (it would ack it and crash the agent).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.serializers import codecs
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, CollectionT, EventT, Message, PendingMessage, ProducerT, StreamT
from faust.types.tuples import RecordMetadata as FaustRecordMetadata

from motwatch.kafka.security import Endpoint, endpoint_of
from motwatch.settings import Settings
from motwatch.streams.assignor import RejoiningAssignor
from motwatch.streams.consumer import CommitGuard, PromptConsumer, guard_commits
from motwatch.streams.delivery import Deliveries
from motwatch.streams.faust_internals import aiokafka_producer, codec_type, restart_idempotence
from motwatch.streams.metrics import Metrics
from motwatch.streams.reachability import watch_kafka

if TYPE_CHECKING:
    from motwatch.agents.journeys import PartitionEngines


class TextCodec(codecs.Codec):
    """Table keys as UTF-8 text both ways (Faust's raw codec would return bytes on recovery).

    A stored key that is not UTF-8 comes back with its bytes escaped (and goes
    out as they were), so that Faust's recovery never fails on one: the
    journey agent sets such a key's record aside.
    """

    def _dumps(self, s: Any) -> bytes:
        return s.encode("utf-8", "surrogateescape")

    def _loads(self, s: bytes) -> Any:
        return s.decode("utf-8", "surrogateescape")


log = logging.getLogger("motwatch.app")

codecs.register("text", TextCodec())


class IdempotentProducer(aiokafka_driver.Producer):
    """Faust's producer, idempotent and waiting for every in-sync replica (``acks=all``).

    Faust asks that only inside transactions; idempotence keeps a retried
    produce request from writing a record twice or out of order.
    """

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


# The tables, by name: Faust names each one's changelog topic ``{app id}-{name}-changelog``.
TABLES = ("journeys", "clocks")


class LeanPrometheusMonitor(PrometheusMonitor):
    """Faust's Prometheus monitor, cut to the series our dashboards read.

    The full monitor times and counts every message, event, send and table
    access in Python, which cost more than our own processing; per record
    this keeps only ``messages_received``. Commits, end offsets, rebalances
    and send errors are recorded as before.
    """

    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(metrics=metrics, **kwargs)
        self.faust_metrics = metrics

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        self.faust_metrics.messages_received.inc()

    def on_stream_event_in(self, tp: TP, offset: int, stream: StreamT, event: EventT) -> None:
        return None

    def on_stream_event_out(
        self, tp: TP, offset: int, stream: StreamT, event: EventT, state: dict | None = None
    ) -> None:
        pass

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_table_get(self, table: CollectionT, key: Any) -> None:
        pass

    def on_table_set(self, table: CollectionT, key: Any, value: Any) -> None:
        pass

    def on_table_del(self, table: CollectionT, key: Any) -> None:
        pass

    def on_send_initiated(
        self, producer: ProducerT, topic: str, message: PendingMessage, keysize: int, valsize: int
    ) -> Any:
        return None

    def on_send_completed(self, producer: ProducerT, state: Any, metadata: FaustRecordMetadata) -> None:
        pass

    def on_send_error(self, producer: ProducerT, exc: BaseException, state: Any) -> None:
        self.faust_metrics.total_error_messages_sent.inc()


@dataclass
class Motwatch:
    """The app and everything the agents share."""

    settings: Settings
    app: faust.App
    by_journey: faust.TopicT
    # What the journey agent reads: the touchpoints as produced and the re-keyed records.
    journey_inputs: faust.TopicT
    moments: faust.TopicT
    deadletter: faust.TopicT
    # Journey states as the changelog's bytes (JourneyState.pack), by journey key.
    journeys: faust.Table[str, bytes]
    # Each journey partition's clock (PartitionClock.to_json), by partition number.
    clocks: faust.Table[str, bytes]
    metrics: Metrics
    # What was sent and is not yet known written: ``written()`` waits for it.
    deliveries: Deliveries = field(init=False)
    # What a topic's records are, for the write-failure counter's label.
    stream_of: Callable[[str], str] = field(init=False)
    # The journey agent's engines, for /journeys/{key} (streams/journey_view.py).
    journey_engines: PartitionEngines | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        s = self.settings
        streams = {
            s.moments_topic: "moments",
            s.deadletter_topic: "deadletter",
            s.by_journey_topic: "by_journey",
            s.quarantine_topic: "quarantine",
            **{s.changelog_topic(table): f"{table}_changelog" for table in TABLES},
        }
        self.stream_of = lambda topic: streams.get(topic, "other")
        failures = self.metrics.write_failures
        self.deliveries = Deliveries(
            on_failure=lambda stream, exc: failures.labels(stream).inc(),
            on_settled=self.metrics.write_stalled.inc,
            before_resend=self._restart_idempotence,
        )

    def _restart_idempotence(self) -> None:
        """Failed writes are about to be sent again: the producer's sequence starts afresh."""
        try:
            producer = aiokafka_producer(self.app)
        except faust.exceptions.NotReady:
            return
        if restart_idempotence(producer):
            log.info("the producer takes a new producer id, its sequence broken by failed writes")

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Hand a record straight to the producer, without Faust's per-send topic machinery.

        Same key partitioning and timestamps as ``topic.send``. :meth:`written`
        returns once it is on the broker (sent again until it is).
        """
        producer = self.app.producer

        def attempt() -> Awaitable[asyncio.Future[object]]:
            return producer.send(topic, key, value, partition, timestamp, headers)

        await self.deliveries.send(self.stream_of(topic), attempt)

    async def written(self, topic: str | None = None) -> None:
        """Return once every record sent so far (to ``topic``, if given) is on the broker, sending
        failed ones again."""
        await self.deliveries.settle(None if topic is None else self.stream_of(topic))

    def writes_failing(self) -> bool:
        """Whether a write failed and waits to be sent again (``Deliveries.failing``)."""
        return self.deliveries.failing

    def guard_commits(self, guard: CommitGuard) -> None:
        """Every offset commit of the worker's consumer goes through ``guard()`` (``streams/consumer.py``)."""
        guard_commits(self.app, guard)

    async def send_batch(
        self,
        topic: str,
        partition: int,
        records: Iterable[tuple[bytes | None, bytes | None]],
        on_written: Callable[[int], None],
    ) -> None:
        """Hand (key, value) records for one partition to the producer in as few batches as fit.

        A table's changelog gets every journey a batch changed at once; built
        into produce batches here, a record costs a fraction of a ``send`` (no
        future, no partitioner, no accumulator lookup each). ``on_written``
        gets the offset of each batch's last record once the broker has it.
        Like ``send``, :meth:`written` returns once every batch is written.
        """
        producer = aiokafka_producer(self.app)
        stream = self.stream_of(topic)
        chunk: list[tuple[bytes | None, bytes | None]] = []
        batch = producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:  # full
                await self.deliveries.send(stream, _submission(producer, chunk, topic, partition, on_written))
                chunk, batch = [], producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)  # a batch takes its first record
            chunk.append((key, value))
        if chunk:
            await self.deliveries.send(stream, _submission(producer, chunk, topic, partition, on_written))

    def topic_names(self) -> list[str]:
        s = self.settings
        return [
            s.touchpoints_topic,
            s.by_journey_topic,
            s.moments_topic,
            s.deadletter_topic,
            s.quarantine_topic,
        ]


def _submission(
    producer: AIOKafkaProducer,
    records: list[tuple[bytes | None, bytes | None]],
    topic: str,
    partition: int,
    on_written: Callable[[int], None],
) -> Callable[[], Awaitable[asyncio.Future[object]]]:
    """How to write ``records`` (one produce batch's worth) to one partition; each try builds the batch."""
    count = len(records)

    async def attempt() -> asyncio.Future[object]:
        batch = producer.create_batch()
        for key, value in records:
            batch.append(key=key, value=value, timestamp=None)
        written: asyncio.Future[RecordMetadata] = await producer.send_batch(batch, topic, partition=partition)

        def done(fut: asyncio.Future[RecordMetadata]) -> None:
            if not fut.cancelled() and fut.exception() is None:
                on_written(fut.result().offset + count - 1)  # the batch's base offset + its records

        written.add_done_callback(done)
        return cast("asyncio.Future[object]", written)

    return attempt


def _raw_topic(app: faust.App, *names: str, partitions: int) -> faust.TopicT:
    return app.topic(*names, key_serializer="raw", value_serializer="raw", partitions=partitions)


def _table(app: faust.App, name: str, partitions: int, value_codec: str) -> faust.Table[str, Any]:
    """A table with text keys and values in ``value_codec`` (as Faust's app builds it: a faust.Table)."""
    table = app.Table(
        name, partitions=partitions, key_type=codec_type("text"), value_type=codec_type(value_codec)
    )
    return cast("faust.Table[str, Any]", table)


def credentials_of(where: Endpoint) -> faust.types.auth.CredentialsT | None:
    """The endpoint's security as Faust's credentials (None: PLAINTEXT), for its clients to connect with."""
    if where.uses_sasl:
        return faust.SASLCredentials(
            username=where.username,
            password=where.password,
            ssl_context=where.ssl_context(),
            mechanism=where.sasl_mechanism,
        )
    if where.uses_tls:
        return faust.SSLCredentials(where.ssl_context())
    return None


def create_app(
    settings: Settings,
    *,
    input_partitions: int | None = None,
    web_port: int | None = None,
    instance_id: str | None = None,
) -> Motwatch:
    """Build the app with all agents registered.

    ``input_partitions``: the touchpoints topic's partition count (default:
    the worker's own). Equal to the re-keyed topic's, touchpoints already on
    their journey's partition are applied without the re-keying hop
    (``agents/input_topic.py``). ``web_port``: the port the worker's web
    server listens on (default: the settings', unless 0), for the URL Faust
    advertises; the app serves nothing itself (``streams/web.py`` does).
    ``instance_id``: the worker's static name in its consumer group (none:
    a dynamic member, which a restart replaces only after the session timeout).
    """
    app = faust.App(
        settings.worker_app_id,
        broker=f"kafka://{settings.broker}",
        broker_credentials=credentials_of(endpoint_of(settings)),
        store=settings.store,
        datadir=str(Path(settings.data_dir) / settings.worker_app_id),
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=settings.auto_create_topics,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval_s,
        broker_commit_every=settings.commit_every_events,
        broker_session_timeout=settings.session_timeout_s,
        consumer_group_instance_id=instance_id,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        # Partitions added to the input topic are found (and assigned) within this.
        consumer_metadata_max_age_ms=round(settings.metadata_refresh_s * 1000),
        producer_acks=-1,
        producer_request_timeout=30.0,
        # Fuller produce requests: less CPU for the broker and the sender on every record.
        producer_linger=0.005,
        table_standby_replicas=0,
        # Faust's web server stays off: the worker serves /metrics and /health itself
        # (streams/web.py), on the port given here for the URL Faust advertises.
        web_enabled=False,
        web_port=web_port or settings.web_port or None,
        web_bind=settings.web_bind,
        web_host=settings.web_bind,
        # Customer state is not for the network, should Faust's web server ever run.
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_router_enabled=False,
        stream_wait_empty=False,
        # A static member restarted with another web port takes its assignment back (streams/assignor.py).
        PartitionAssignor=RejoiningAssignor,
    )
    # Records reach the streams without four tasks each (streams/consumer.py).
    app.transport.Consumer = PromptConsumer
    app.transport.Producer = IdempotentProducer
    partitions = settings.partitions
    mw = Motwatch(
        settings=settings,
        app=app,
        by_journey=_raw_topic(app, settings.by_journey_topic, partitions=partitions),
        journey_inputs=_raw_topic(
            app, settings.touchpoints_topic, settings.by_journey_topic, partitions=partitions
        ),
        moments=_raw_topic(app, settings.moments_topic, partitions=partitions),
        deadletter=_raw_topic(app, settings.deadletter_topic, partitions=partitions),
        # Journey states stay the changelog's bytes (JourneyState.pack) in the store;
        # the journey agent unpacks the ones it works on (streams/writebehind.py).
        journeys=_table(app, "journeys", partitions, "raw"),
        clocks=_table(app, "clocks", partitions, "raw"),
        metrics=Metrics(),
    )
    # /metrics serves our series and Faust's own (offsets, commits, sends) from one registry.
    app.monitor = LeanPrometheusMonitor(metrics=FaustMetrics.create(mw.metrics.registry, "faust"))
    from motwatch.agents import input_topic, journeys

    partitions = settings.partitions if input_partitions is None else input_partitions
    mw.journey_engines = journeys.register(mw, input_topic.register(mw, partitions=partitions)).engines
    watch_kafka(app, mw.metrics)  # motwatch_kafka_* gauges: a probe every second
    return mw
