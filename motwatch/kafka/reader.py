"""Reading a topic without a consumer group: all of it, or a time or offset range, partition by partition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from motwatch.kafka.admin import partition_ids
from motwatch.kafka.connection import TransportError, one_line_errors, preflight
from motwatch.kafka.security import Target, address, client_options


@dataclass(frozen=True)
class Selection:
    """Which records of a topic to read: a time range and/or offset ranges per partition.

    ``since_ms``/``until_ms`` bound the record timestamps (until is inclusive);
    ``offsets`` maps a partition to an inclusive (first, last) offset range,
    either end open (None); partitions it does not name are not read. With an
    upper bound (``until_ms`` or a last offset) the read ends by itself once
    every partition reached it, or the end it had when the read began.
    """

    since_ms: int | None = None
    until_ms: int | None = None
    offsets: dict[int, tuple[int | None, int | None]] | None = None
    # Stop each partition at its first record stamped after ``until_ms``, found by the broker's
    # time index, rather than reading on to the end: right where timestamps grow with offsets
    # (the moments topic, stamped when written); a producer's own stamps may be out of order.
    until_ends_read: bool = False

    @property
    def bounded(self) -> bool:
        return self.until_ms is not None or (
            self.offsets is not None and all(last is not None for _, last in self.offsets.values())
        )

    def keeps(self, message: Any) -> bool:
        if self.since_ms is not None and message.timestamp < self.since_ms:
            return False
        if self.until_ms is not None and message.timestamp > self.until_ms:
            return False
        if self.offsets is not None:
            first, last = self.offsets.get(message.partition, (None, None))
            if first is not None and message.offset < first:
                return False
            if last is not None and message.offset > last:
                return False
        return True


async def _start_positions(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], from_beginning: bool, selection: Selection
) -> dict[TopicPartition, int]:
    """Seek every partition to where the selection starts; return where each must stop (exclusive)."""
    if from_beginning or selection.since_ms is not None or selection.offsets is not None:
        await consumer.seek_to_beginning(*tps)
    else:
        await consumer.seek_to_end(*tps)
    if selection.since_ms is not None:
        found = await consumer.offsets_for_times({tp: selection.since_ms for tp in tps})
        for tp in tps:
            stamp = found.get(tp)
            if stamp is None:
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, stamp.offset)
    ends = await consumer.end_offsets(tps)
    past: dict[TopicPartition, Any] = {}
    if selection.until_ends_read and selection.until_ms is not None:
        past = await consumer.offsets_for_times({tp: selection.until_ms + 1 for tp in tps})
    stops: dict[TopicPartition, int] = {}
    for tp in tps:
        stop = ends[tp]
        if past.get(tp) is not None:
            stop = min(stop, past[tp].offset)
        if selection.offsets is not None:
            first, last = selection.offsets.get(tp.partition, (None, None))
            if first is not None:
                consumer.seek(tp, max(first, await consumer.position(tp)))
            if last is not None:
                stop = min(stop, last + 1)
        stops[tp] = stop
        await consumer.position(tp)  # resolve "end" now, not at the first fetch
    return stops


async def read_records(
    target: Target,
    topic: str,
    *,
    from_beginning: bool,
    idle_s: float | None,
    max_messages: int | None = None,
    selection: Selection | None = None,
    ready: asyncio.Event | None = None,
    seen: Callable[[Any], None] | None = None,
) -> AsyncIterator[Any]:
    """Yield the topic's records (aiokafka ConsumerRecords) in each partition's order.

    Reads every partition without a consumer group (nothing is committed, no
    rebalance). Stops after ``idle_s`` seconds without a new message (None:
    never), after ``max_messages``, or, for a bounded selection, at its end.
    ``ready`` is set once the start positions are fixed, so a caller can
    produce afterwards without racing a from-the-end read. ``seen`` is called
    with every record read, the selection's or not (to count what a read cost).
    """
    selection = selection or Selection()
    if max_messages is not None and max_messages <= 0:
        if ready is not None:
            ready.set()
        return
    count = 0
    bootstrap = address(target)
    async with one_line_errors(target):
        await preflight(target)
        partitions = await partition_ids(target, topic)
        if not partitions:
            raise TransportError(f"topic {topic} does not exist on {bootstrap}")
        if selection.offsets is not None:
            unknown = sorted(set(selection.offsets) - set(partitions))
            if unknown:
                raise TransportError(f"topic {topic} has no partition {unknown[0]}")
            partitions = [p for p in partitions if p in selection.offsets]
        consumer = AIOKafkaConsumer(
            **client_options(target),
            client_id="motwatch-record",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            stops = await _start_positions(consumer, tps, from_beginning, selection)
            if ready is not None:
                ready.set()
            open_tps = (
                {tp for tp in tps if await consumer.position(tp) < stops[tp]}
                if selection.bounded
                else set(tps)
            )
            last = time.monotonic()
            while open_tps and (max_messages is None or count < max_messages):
                wait_s = 1.0
                if idle_s is not None:
                    remaining = idle_s - (time.monotonic() - last)
                    if remaining <= 0:
                        break
                    wait_s = min(remaining, wait_s)
                limit = None if max_messages is None else max_messages - count
                batches = await consumer.getmany(
                    *open_tps, timeout_ms=max(int(wait_s * 1000), 1), max_records=limit
                )
                got = 0
                for tp, messages in batches.items():
                    for message in messages:
                        if selection.bounded and message.offset >= stops[tp]:
                            open_tps.discard(tp)
                            break
                        got += 1
                        if seen is not None:
                            seen(message)
                        if selection.keeps(message):
                            count += 1
                            yield message
                            if max_messages is not None and count >= max_messages:
                                return
                    if selection.bounded and tp in open_tps and await consumer.position(tp) >= stops[tp]:
                        open_tps.discard(tp)
                if got:
                    last = time.monotonic()
        finally:
            await consumer.stop()
