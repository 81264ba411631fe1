"""Journey agent: drives one JourneyEngine per partition of the re-keyed topic.

It reads the touchpoints as produced and the re-keyed records, both
partitioned alike: a touchpoint already on its journey's partition is applied
at once, any other is re-keyed (``agents/ingest.py``) and applied when it
comes back on the re-keyed topic. Journey state lives in a changelog-backed
table, so a restarted or rebalanced worker resumes with the same journeys and
open timeouts; the timer index is rebuilt from the table when a partition is
(re)assigned. Records are taken in batches: each changed journey, and the
clock of each partition that had records, is written once per batch, before
the batch's offsets can be committed. A leader timer ticks every partition so
quiet ones still move on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from motwatch.agents.ingest import Ingest
from motwatch.streams.app import Motwatch, partition_for_key
from motwatch.streams.records import (
    MERGE,
    MERGE_REQUEST,
    PROGRESS,
    RECORD,
    SOURCE,
    SOURCE_PROGRESS,
    TICK,
    control_headers,
    decode_body,
    encode_body,
    forwarded_headers,
    header_map,
)
from motwatch.streams.writebehind import PackedWriteBehind, WriteBehind

from motwatch.clock import NEVER, PartitionClock
from motwatch.deadletter import dead_letter_record, encode_dead_letter, kafka_source
from motwatch.engine import JourneyEngine, Step
from motwatch.events import Touchpoint
from motwatch.journey import JourneyState
from motwatch.validation import Rejection, validate_touchpoint

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

    def __init__(self, mw: Motwatch) -> None:
        self.mw = mw
        self.engines: dict[int, JourneyEngine] = {}
        self.stores: dict[int, PackedWriteBehind] = {}
        self.clocks: dict[int, WriteBehind] = {}
        # Partitions that had records since the last flush: their clocks are saved with it.
        self.touched: set[int] = set()

    def get(self, partition: int) -> JourneyEngine:
        self.touched.add(partition)
        engine = self.engines.get(partition)
        if engine is None:
            settings = self.mw.settings
            saved = self.mw.clocks.get(str(partition))
            clock = (
                PartitionClock.from_dict(saved)
                if saved
                else PartitionClock(
                    lateness_ms=round(settings.allowed_lateness_s * 1000),
                    self_timed=False,
                    idle_advance_ms=round(settings.idle_advance_s * 1000),
                )
            )
            store = self.stores[partition] = PackedWriteBehind(
                self.mw.journeys,
                partition,
                self.mw.send_batch,
                pack=JourneyState.pack,
                unpack=JourneyState.unpack,
                count=JourneyState.open_timeouts,
                hot=_waits_for_the_watermark,
            )
            self.clocks[partition] = WriteBehind(self.mw.clocks, partition, self.mw.send_batch)
            engine = JourneyEngine(settings, store=store, clock=clock)
            engine.restore(
                k
                for k in list(self.mw.journeys.keys())
                if partition_for_key(k, settings.partitions) == partition
            )
            self.engines[partition] = engine
        return engine

    async def flush(self) -> None:
        """Write the pending journeys, then the clocks of the partitions that had records.

        The clocks go last and a failure to save one is only logged: whatever a
        record fired is sent by then, and the next flush saves the clock again.
        """
        for store in self.stores.values():
            await store.flush()
        touched, self.touched = self.touched, set()
        for partition in touched:
            engine, clocks = self.engines.get(partition), self.clocks.get(partition)
            if engine is None or clocks is None:
                continue
            clocks[str(partition)] = engine.clock.to_dict()
            try:
                await clocks.flush()
            except Exception:
                log.exception("could not save the clock of partition %s; the next batch saves it", partition)

    async def forget(self) -> None:
        await self.flush()
        self.engines.clear()
        self.stores.clear()
        self.clocks.clear()


def _waits_for_the_watermark(state: JourneyState) -> bool:
    return bool(state.pending)


@dataclass
class JourneysAgent:
    """What the agent does with each batch of records (tests drive it without a broker)."""

    engines: PartitionEngines
    handle: Callable[[Any], Awaitable[None]]

    async def process(self, batch: Iterable[Any]) -> None:
        """Handle each record, then write the changed journeys.

        Faust acks a batch when the next one is asked for, or when the agent
        stops mid-batch (it acks the whole batch then), so its journeys are
        written before its offsets can be committed, on every way out.
        """
        try:
            for event in batch:
                await self.handle(event)
        finally:
            await self.engines.flush()


def register(mw: Motwatch, ingest: Ingest) -> JourneysAgent:
    engines = PartitionEngines(mw)

    @mw.app.on_partitions_revoked.connect
    async def _revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        await engines.forget()

    send = mw.send
    moments_topic = mw.settings.moments_topic
    by_journey_topic = mw.settings.by_journey_topic
    deadletter_topic = mw.settings.deadletter_topic

    async def emit(step: Step, raw: bytes | None) -> None:
        for moment in step.moments:
            await send(moments_topic, moment.journey_key.encode(), moment.to_json())
        for fwd in step.forwards:
            if fwd.kind == "event":
                await send(
                    by_journey_topic,
                    fwd.key.encode(),
                    raw,
                    timestamp=fwd.event.occurred_ms / 1000 if fwd.event else None,
                    headers=forwarded_headers(),
                )
            else:
                await send(
                    by_journey_topic,
                    fwd.key.encode(),
                    encode_body(fwd.payload or {}),
                    headers=control_headers(fwd.kind),
                )

    async def apply(
        partition: int, event: Touchpoint, key: str, raw: bytes, source: str | None, read: int
    ) -> None:
        engine = engines.get(partition)
        if source is not None:
            engine.clock.source_progress(source, read)
        step = engine.process(event, key=key)
        mw.metrics.observe_step(step, event, time.time())
        await emit(step, raw)

    async def take_touchpoint(event: Any) -> None:
        """A touchpoint as produced: applied here if its journey lives on this partition."""
        taken = await ingest.take(event)
        if taken is not None:
            touchpoint, source, read = taken
            await apply(
                event.message.partition, touchpoint, touchpoint.journey_key, event.value, source, read
            )

    async def handle(event: Any) -> None:
        """A record of the re-keyed topic: a touchpoint, or a record the worker itself wrote."""
        message = event.message
        headers = header_map(event.headers)
        kind = headers.get(RECORD)
        raw = event.value
        if kind is None:
            result = validate_touchpoint(raw)
            if isinstance(result, Rejection):
                record = dead_letter_record(
                    raw, result, kafka_source(message.topic, message.partition, message.offset)
                )
                await send(deadletter_topic, event.key, encode_dead_letter(record))
                return
            source = headers.get(SOURCE)
            read = int(headers[PROGRESS]) if source is not None else 0
            await apply(message.partition, result, event.key.decode(), raw, source, read)
            return
        engine = engines.get(message.partition)
        if kind == SOURCE_PROGRESS:
            body = decode_body(raw)
            # Every source one worker reads, in one record; or, as written before 2026-11-23, one.
            reads = body["sources"] if "sources" in body else {body["source"]: body["max_seen_ms"]}
            # Which of them have records waiting to be read (not told before 2026-11-23).
            behind = body.get("behind")
            step = engine.sources_progress(
                {source: int(ms) for source, ms in reads.items()}, None if behind is None else set(behind)
            )
        elif kind == TICK:
            step = engine.tick(int(decode_body(raw)["wall_ms"]))
            watermark = engine.clock.watermark_ms
            if watermark > NEVER:
                mw.metrics.set_watermark(message.partition, watermark / 1000)
            # The clock is saved with the batch, after the moments the tick fired are sent:
            # a failed save loses none.
        elif kind in (MERGE_REQUEST, MERGE):
            step = engine.control(event.key.decode(), kind, decode_body(raw))
        else:
            log.warning(
                "unknown record %r on %s[%s]@%s", kind, message.topic, message.partition, message.offset
            )
            return
        mw.metrics.observe_step(step, None, time.time())
        await emit(step, raw)

    touchpoints_topic = mw.settings.touchpoints_topic
    ingest_timer = mw.metrics.processing.labels("ingest").time
    journeys_timer = mw.metrics.processing.labels("journeys").time

    async def handle_safely(event: Any) -> None:
        try:
            if event.message.topic == touchpoints_topic:
                with ingest_timer():
                    await take_touchpoint(event)
            else:
                with journeys_timer():
                    await handle(event)
        except Exception as exc:  # one bad record never stops the stream, nor is lost
            message = event.message
            log.exception(
                "journey agent failed on %s[%s]@%s", message.topic, message.partition, message.offset
            )
            if RECORD not in header_map(event.headers):
                record = dead_letter_record(
                    event.value,
                    Rejection("processing_error", f"{type(exc).__name__}: {exc}"),
                    kafka_source(message.topic, message.partition, message.offset),
                )
                await send(deadletter_topic, event.key, encode_dead_letter(record))

    shell = JourneysAgent(engines, handle_safely)

    @mw.app.agent(mw.journey_inputs, name="journeys")
    async def journeys(stream: Any) -> None:
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            await shell.process(batch)

    @mw.app.timer(interval=mw.settings.tick_interval_s, on_leader=True, name="tick")
    async def tick() -> None:
        """Tick every partition so quiet ones follow the wall clock."""
        body = encode_body({"wall_ms": int(time.time() * 1000)})
        for partition in range(mw.settings.partitions):
            await mw.by_journey.send(key=None, value=body, partition=partition, headers=control_headers(TICK))

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
            position = await consumer.position(tp)
            highwater = consumer.highwater(tp)
            if position is not None and highwater is not None:
                lags[(tp.topic, tp.partition)] = max(0, highwater - position)
        mw.metrics.set_consumer_lag(lags)
        mw.metrics.keep_watermarks(tp.partition for tp in assigned if tp.topic == by_journey)

    return shell
