"""Journey agent: the Kafka side of the core's dispatch, one JourneyEngine per journey partition.

It reads the touchpoints as produced and the re-keyed records, both
partitioned alike, hands each to the core's ``JourneyDispatch``
(``motwatch/dispatch.py``: the same path ``motwatch detect`` takes) and sends
what it returns: moments, records for other journey partitions, dead letters.
Journey state lives in a changelog-backed table, so a restarted or
rebalanced worker resumes with the same journeys and open timeouts; the
timer index is rebuilt from the table when a partition is (re)assigned.
Records are taken in batches; each changed journey, and the clock of each
partition that had records, is written once per offset commit (the
consumer's commit guard, ``streams/consumer.py``), right before the offsets
it covers are committed, however many batches changed it; past
``state_cache_journeys`` changed journeys a batch packs them to wait unsent,
and past ``state_cache_mib`` of those it writes them at once; and before
partitions are given up.
A leader timer ticks every partition so quiet ones still move on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from faust.types import TP

from motwatch.adapters.records import input_format
from motwatch.agents.input_topic import InputTopic
from motwatch.agents.protocols import AgentApp, AgentEvent, EventStream
from motwatch.core.clock import NEVER, PartitionClock
from motwatch.core.deadletter import dead_letter_record, encode_dead_letter, kafka_source
from motwatch.core.dispatch import Inbound, JourneyDispatch, Outcome
from motwatch.core.engine import JourneyEngine
from motwatch.core.journey import JourneyState, UnreadableStateError
from motwatch.core.records import RECORD, TICK, control_headers, header_map, tick_body
from motwatch.core.validation import Rejection
from motwatch.streams.partitionstore import partition_table, restore_index
from motwatch.streams.writebehind import PackedWriteBehind, Staged, Unreadable, WriteBehind

log = logging.getLogger("motwatch.journeys")

# Gauges that walk the state are refreshed at this pace, not per record.
GAUGE_INTERVAL_S = 15.0
# Records taken at a time, and the longest wait for a batch to fill.
BATCH_MAX = 1000
BATCH_WITHIN_S = 0.01


class PartitionEngines:
    """One engine per assigned partition, created on its first record.

    Each engine writes its journeys through a write-behind view of the table,
    so a batch writes each changed journey's changelog record once;
    ``flush`` writes them, and the clocks of the partitions that had records.
    """

    def __init__(self, mw: AgentApp, inputs: Callable[[], list[str]] = list) -> None:
        self.mw = mw
        # The source partitions of the input topic: every new engine's clock waits for them.
        self.inputs = inputs
        self.engines: dict[int, JourneyEngine] = {}
        self.stores: dict[int, PackedWriteBehind] = {}
        self.clocks: dict[int, WriteBehind] = {}
        # Partitions that had records since the last flush: their clocks are saved with it.
        self.touched: set[int] = set()
        # Stored clocks that could not be read, to set aside at the next flush: (table, partition, record).
        self.unreadable: list[tuple[str, int, Unreadable]] = []
        # Staged for the changelogs and not yet handed to the producer, oldest first: records set
        # aside, journeys, each partition's latest clock. Written one write at a time.
        self.to_quarantine: list[tuple[str, int, Unreadable]] = []
        self.staged: list[tuple[PackedWriteBehind, Staged]] = []
        self.staged_clocks: dict[int, tuple[WriteBehind, bytes]] = {}
        self.writing = asyncio.Lock()

    def get(self, partition: int) -> JourneyEngine:
        self.touched.add(partition)
        engine = self.engines.get(partition)
        if engine is None:
            settings = self.mw.settings
            clock = self._saved_clock(partition) or PartitionClock(
                lateness_ms=round(settings.allowed_lateness_s * 1000),
                self_timed=False,
                idle_advance_ms=round(settings.idle_advance_s * 1000),
            )
            store = self.stores[partition] = PackedWriteBehind(
                # On RocksDB: the partition's own database, and the journeys' due times kept beside it.
                partition_table(self.mw.journeys, partition, keep_due_times=settings),
                partition,
                self.mw.send_batch,
                pack=JourneyState.pack,
                unpack=JourneyState.unpack,
                count=JourneyState.open_timeouts,
                hot=_waits_for_the_watermark,
                unreadable=UnreadableStateError,
            )
            self.clocks[partition] = WriteBehind(
                partition_table(self.mw.clocks, partition), partition, self.mw.send_batch
            )
            clock.learn_inputs(self.inputs())
            engine = JourneyEngine(settings, store=store, clock=clock)
            restore_index(engine, store, partition, settings.partitions)
            self.engines[partition] = engine
            log.info("partition %s: %d journeys indexed", partition, engine.journey_count())
        return engine

    def _saved_clock(self, partition: int) -> PartitionClock | None:
        """The partition's clock as last saved; None if none was, or it cannot be read (then quarantined)."""
        key = str(partition)
        saved = partition_table(self.mw.clocks, partition).data.get(key, None)
        if not saved:
            return None
        try:
            clock = PartitionClock.from_json(saved)
        except ValueError as exc:
            self.unreadable.append(("clocks", partition, Unreadable(key, bytes(saved), str(exc))))
            return None
        clock.taken_over()
        return clock

    def _unreadable(self) -> list[tuple[str, int, Unreadable]]:
        """The stored records found unreadable since the last look: (table, partition, record)."""
        found = list(self.unreadable)
        self.unreadable.clear()
        for partition, store in self.stores.items():
            found.extend(("journeys", partition, u) for u in store.quarantined)
            store.quarantined.clear()
        return found

    async def _quarantine(self, found: tuple[str, int, Unreadable]) -> None:
        """Set aside a stored record that could not be read, before its replacement is written."""
        mw = self.mw
        table, partition, unreadable = found
        mw.metrics.quarantined.labels(table).inc()
        log.warning(
            "a stored %s record of partition %s could not be read (%s): set aside in %s; it starts afresh",
            table,
            partition,
            unreadable.reason,
            mw.settings.quarantine_topic,
        )
        await mw.send(
            mw.settings.quarantine_topic,
            unreadable.key.encode("utf-8", "surrogateescape"),
            unreadable.raw,
            headers=_quarantine_headers(table, partition, unreadable.reason),
        )

    def waiting(self) -> int:
        """Changed journeys held as objects, not yet packed or written."""
        return sum(len(store.pending) for store in self.stores.values())

    def spill(self) -> int:
        """Pack the changed journeys to wait unsent for the next write; the bytes that wait so."""
        return sum(store.spill() for store in self.stores.values())

    def stage(self) -> None:
        """Take every changed journey, and the clock of each partition that had records, as
        they are now, for :meth:`write_staged`.

        Called where no record is being applied; the write may run while
        later batches are (what they change waits for the next stage).
        """
        self.to_quarantine.extend(self._unreadable())
        self.staged.extend((store, staged) for store in self.stores.values() if (staged := store.stage()))
        touched, self.touched = self.touched, set()
        for partition in touched:
            engine, view = self.engines.get(partition), self.clocks.get(partition)
            if engine is not None and view is not None:
                self.staged_clocks[partition] = (view, engine.clock.to_json())

    async def write_staged(self) -> None:
        """Write everything staged so far, in the order it was staged.

        One write at a time, so a changelog never gets a journey's older
        state after its newer one; a write finds done what an earlier one
        wrote, and takes up what one stopped midway left. Each step waits
        for the broker to acknowledge the one before (sending again whatever
        failed, for as long as it takes). What the batches sent (moments,
        records for other journey partitions, dead letters, quarantined
        records) comes first: a journey state that marks a moment reported,
        or a journey handed over to another, must never reach the changelog
        without the moment or the hand-over itself. The journeys come before
        the clocks: a clock restored ahead of the journeys it has seen would
        find their events late when they are applied again. Killed in
        between, the worker that takes over applies the batches again and
        sends what they sent again (repeats, with the same ids), rather than
        finding them done and never sending it.
        """
        async with self.writing:
            # What is staged now, journeys and clocks alike: what is staged meanwhile waits.
            journeys, clocks = len(self.staged), list(self.staged_clocks.items())
            while self.to_quarantine:
                await self._quarantine(self.to_quarantine[0])
                del self.to_quarantine[0]
            await self.mw.written()
            if journeys:
                for _ in range(journeys):
                    store, staged = self.staged[0]
                    await store.write(staged)
                    del self.staged[0]
                await self.mw.written()
            for partition, entry in clocks:
                view, clock = entry
                view[str(partition)] = clock
                await view.flush()
                if self.staged_clocks.get(partition) is entry:
                    del self.staged_clocks[partition]
            await self.mw.written()

    async def flush(self) -> None:
        """Write every changed journey and clock now (:meth:`stage`, then :meth:`write_staged`)."""
        self.stage()
        await self.write_staged()

    async def hold_back(self) -> None:
        """While a write failed and waits to be sent again, wait until everything sent is written:
        input stops where output cannot be written, rather than piling up."""
        if self.mw.writes_failing():
            await self.mw.written()

    async def forget(self) -> None:
        await self.flush()
        self.engines.clear()
        self.stores.clear()
        self.clocks.clear()


def _quarantine_headers(table: str, partition: int, reason: str) -> list[tuple[str, bytes]]:
    """What a quarantined record says of itself: the table, its changelog partition, why it was set aside."""
    return [
        ("mw-table", table.encode()),
        ("mw-partition", str(partition).encode()),
        ("mw-reason", reason.encode("utf-8", "replace")[:1000]),
    ]


def _waits_for_the_watermark(state: JourneyState) -> bool:
    return bool(state.pending)


@dataclass
class JourneysAgent:
    """What the agent does with each batch of records (tests drive it without a broker)."""

    engines: PartitionEngines
    handle: Callable[[AgentEvent], Awaitable[None]]
    # Held while a batch is applied: partitions are given up only between batches.
    busy: asyncio.Lock = field(default_factory=asyncio.Lock)
    # From giving partitions up until new ones are assigned: records still buffered are not applied.
    between_assignments: bool = False
    # Changed journeys that may wait for the next commit as objects; past it, a batch packs them.
    cache_limit: int = 0
    # Bytes of packed journeys that may wait for the next commit; past it (or if 0), a batch writes them.
    spill_limit: int = 0
    # Called once a batch is done (or stopped): its records' metrics are added at once.
    counted: Callable[[], None] = lambda: None
    # After a batch that read input: what was read is to be announced to every journey partition.
    announce: Callable[[], None] | None = None
    reads_input: Callable[[AgentEvent], bool] = lambda event: False

    async def take(self, batch: Sequence[AgentEvent]) -> None:
        """Process a batch; if it read the input topic, have what was read announced at once.

        An event waits until every input partition has been read past its
        time; announced right after the batch that read it, rather than at
        the announcement timer's next turn, it is released that much sooner.
        The announcer waits for the batch's writes, the agent does not.
        """
        await self.process(batch)
        if self.announce is not None and any(self.reads_input(event) for event in batch):
            self.announce()

    async def process(self, batch: Iterable[AgentEvent]) -> None:
        """Handle each record; pack the changed journeys if more than ``cache_limit`` wait, and
        write them if that makes more than ``spill_limit`` bytes wait.

        Otherwise they are written at the next offset commit (:meth:`committing`).
        Faust acks a batch when the next one is asked for, or when the agent
        stops mid-batch (it acks the whole batch then): stopped mid-batch, the
        batch's journeys are written at once.
        """
        async with self.busy:
            if self.between_assignments:
                # Their partitions are another worker's now, or will be read again from their
                # committed offsets: applied here, they would rebuild engines of partitions given up.
                log.info(
                    "partitions given up: %d buffered records left for their next reader", len(list(batch))
                )
                return
            await self.engines.hold_back()
            try:
                for event in batch:
                    await self.handle(event)
            except BaseException:
                await self.engines.flush()
                raise
            finally:
                self.counted()
            if self.engines.waiting() > self.cache_limit:
                unsent = self.engines.spill()
                if unsent > self.spill_limit or not self.spill_limit:
                    await self.engines.flush()

    @asynccontextmanager
    async def committing(self) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """Around the choice of the offsets to commit: no batch is being applied (none is
        half-acknowledged into them), and every journey changed so far is staged; what it gives
        writes them, and is awaited before the offsets are committed, with batches applied again
        meanwhile."""
        async with self.busy:
            self.engines.stage()
            yield self.engines.write_staged

    async def give_up_partitions(self) -> None:
        """Once the batch being applied is written, forget every engine (a rebalance took partitions).

        Forgotten in the middle of a batch, the rest of it rebuilt the
        engines of partitions this worker no longer held, wrote their
        journeys and clocks after the new owner had read them, and kept the
        stale engines should the partitions come back.
        """
        async with self.busy:
            self.between_assignments = True
            await self.engines.forget()


def register(mw: AgentApp, inputs: InputTopic) -> JourneysAgent:
    engines = PartitionEngines(mw, inputs.sources)
    # The input topic in a vendor's format is read through the collector's adapters.
    vendor_format = input_format(mw.settings)
    dispatch = JourneyDispatch(
        mw.settings,
        engines.get,
        partitions=mw.settings.partitions,
        direct=inputs.direct,
        reads=inputs.reads,
        input_format=vendor_format,
    )

    def set_direct(direct: bool) -> None:
        dispatch.direct = direct

    inputs.on_direct = set_direct

    @mw.app.on_partitions_revoked.connect
    async def _revoked(app: object, revoked: set[TP], **kwargs: Any) -> None:
        await shell.give_up_partitions()

    @mw.app.on_partitions_assigned.connect
    async def _assigned(app: object, assigned: set[TP], **kwargs: Any) -> None:
        shell.between_assignments = False

    send = mw.send
    metrics = mw.metrics
    # What each record of a batch did, added to the metrics once the batch is done.
    tally = metrics.tally()
    moments_topic = mw.settings.moments_topic
    by_journey_topic = mw.settings.by_journey_topic
    deadletter_topic = mw.settings.deadletter_topic

    async def carry_out(outcome: Outcome, key: bytes | None) -> None:
        """Send what the dispatch said: dead letter, moments, records for journey partitions."""
        if outcome.dead_letter is not None:
            await send(deadletter_topic, key, encode_dead_letter(outcome.dead_letter))
        if outcome.steps:
            now = time.time()
            for step in outcome.steps:
                tally.step(step, outcome.event, now)
                for moment in step.moments:
                    await send(moments_topic, moment.journey_key.encode(), moment.to_json())
        for out in outcome.sends:
            await send(
                by_journey_topic,
                out.key,
                out.value,
                partition=out.partition,
                timestamp=None if out.timestamp_ms is None else out.timestamp_ms / 1000,
                headers=out.headers,
            )

    def inbound(event: AgentEvent, **extra: Any) -> Inbound:
        message = event.message
        value = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
        stamp = message.timestamp
        return Inbound(
            value,
            message.partition,
            key=event.key,
            timestamp_ms=None if not stamp else round(stamp * 1000),
            topic=message.topic,
            offset=message.offset,
            **extra,
        )

    async def take_touchpoint(event: AgentEvent) -> None:
        """A touchpoint as produced: validated, applied here or re-keyed, or dead-lettered."""
        tally.received += 1
        # A vendor's message may carry several touchpoints, and its headers say what it is.
        headers = None if vendor_format is None else header_map(event.headers)
        async with inputs.handing_on:  # read and handed on: only then is the read news
            for outcome in dispatch.touchpoints(
                inbound(event, behind=inputs.behind(event.message), headers=headers)
            ):
                if outcome.rejection is not None:
                    metrics.rejected.labels(outcome.rejection.reason).inc()
                elif outcome.event is not None:
                    tally.accept(outcome.event)
                await carry_out(outcome, event.key)

    async def handle(event: AgentEvent) -> None:
        """A record of the re-keyed topic: a touchpoint, or a record the worker itself wrote."""
        headers = header_map(event.headers)
        outcome = dispatch.journey_record(inbound(event, headers=headers))
        await carry_out(outcome, event.key)
        if headers.get(RECORD) == TICK:
            partition = event.message.partition
            watermark = engines.get(partition).clock.watermark_ms
            if watermark > NEVER:
                metrics.set_watermark(partition, watermark / 1000)

    touchpoints_topic = mw.settings.touchpoints_topic

    async def handle_safely(event: AgentEvent) -> None:
        produced = event.message.topic == touchpoints_topic
        stage = "ingest" if produced else "journeys"
        began = perf_counter()
        try:
            if produced:
                await take_touchpoint(event)
            else:
                await handle(event)
            tally.took(stage, perf_counter() - began)
        except Exception as exc:  # one bad record never stops the stream, nor is lost
            tally.took(stage, perf_counter() - began)
            message = event.message
            log.exception(
                "journey agent failed on %s[%s]@%s", message.topic, message.partition, message.offset
            )
            if produced or RECORD not in header_map(event.headers):
                reason = "internal_error" if produced else "processing_error"
                if produced:
                    metrics.rejected.labels(reason).inc()
                record = dead_letter_record(
                    event.value or b"",
                    Rejection(reason, f"{type(exc).__name__}: {exc}"),
                    kafka_source(message.topic, message.partition, message.offset),
                )
                await send(deadletter_topic, event.key, encode_dead_letter(record))

    shell = JourneysAgent(
        engines,
        handle_safely,
        counted=lambda: metrics.add(tally),
        cache_limit=mw.settings.state_cache_journeys,
        spill_limit=round(mw.settings.state_cache_mib * 2**20),
        announce=inputs.announce_soon,
        reads_input=lambda event: event.message.topic == touchpoints_topic,
    )
    mw.guard_commits(shell.committing)

    @mw.app.agent(mw.journey_inputs, name="journeys")
    async def journeys(stream: EventStream) -> None:
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            await shell.take(batch)

    @mw.app.timer(interval=mw.settings.tick_interval_s, on_leader=True, name="tick")
    async def tick() -> None:
        """Tick every partition so quiet ones follow the wall clock; a tick that cannot be sent
        (Kafka unreachable for longer than a send may wait) is given up, the next one carries a
        later time."""
        body = tick_body(int(time.time() * 1000))
        try:
            for partition in range(mw.settings.partitions):
                await mw.by_journey.send(
                    key=None, value=body, partition=partition, headers=control_headers(TICK)
                )
        except Exception as exc:  # a crashed timer would stop the whole worker
            log.warning("could not tick the journey partitions (%s); the next tick will", exc)

    by_journey = mw.settings.by_journey_topic
    sources = {mw.settings.touchpoints_topic, by_journey}

    @mw.app.timer(interval=GAUGE_INTERVAL_S, name="journey_gauges")
    async def journey_gauges() -> None:
        """Journeys in state, open timeouts, and how far behind the agents' consumer is.

        Only the topics the agents read count: table changelogs and Faust's own
        topics are assigned too, but sit paused. Series of partitions no longer
        assigned are dropped.
        """
        mw.metrics.active_journeys.set(sum(e.journey_count() for e in engines.engines.values()))
        # Counted as journeys are read and written (the store keeps them packed).
        mw.metrics.open_timeouts.set(sum(s.total() for s in engines.stores.values()))
        consumer = mw.app.consumer
        assigned = [tp for tp in consumer.assignment() if tp.topic in sources]
        lags: dict[tuple[str, int], int] = {}
        for tp in assigned:
            try:
                position = await consumer.position(tp)
            except Exception:  # given up by a rebalance meanwhile: no gauge (a raising timer crashes the app)
                continue
            highwater = consumer.highwater(tp)
            if position is not None and highwater is not None:
                lags[(tp.topic, tp.partition)] = max(0, highwater - position)
        mw.metrics.set_consumer_lag(lags)
        mw.metrics.keep_watermarks(tp.partition for tp in assigned if tp.topic == by_journey)

    return shell
