"""Ingest: validate every touchpoint as read, dead-letter the rest, and route it to its journey.

A touchpoint read from the partition its journey lives on (the producer keyed
it by journey, as ``motwatch produce`` does) is applied there and then by the
journey agent, which reads the touchpoints topic too: one record consumed and
validated once. Any other touchpoint is re-keyed: sent to the re-keyed topic
with its journey key and its own time as the record timestamp.

Every partition of the re-keyed topic is told how far each source partition
has read, which is what drives event time downstream. Records of one source
reach one journey partition by one path only (directly, or through the
re-keyed topic), so such news never overtakes an event it covers.
"""

from __future__ import annotations

import logging
from typing import Any

from motwatch.streams.app import Motwatch, partition_for_key
from motwatch.streams.records import (
    SOURCE_PROGRESS,
    control_headers,
    encode_body,
    touchpoint_headers,
)

from motwatch.deadletter import dead_letter_record, encode_dead_letter, kafka_source
from motwatch.events import Touchpoint
from motwatch.validation import Rejection, validate_touchpoint

log = logging.getLogger("motwatch.ingest")


class SourceProgress:
    """The latest event time read per source partition, and what was last announced."""

    def __init__(self) -> None:
        self.read: dict[str, int] = {}
        self.announced: dict[str, int] = {}

    def observe(self, source: str, occurred_ms: int) -> int:
        if occurred_ms > self.read.get(source, -(2**62)):
            self.read[source] = occurred_ms
        return self.read[source]

    def unannounced(self) -> dict[str, int]:
        news = {s: t for s, t in self.read.items() if self.announced.get(s) != t}
        self.announced.update(news)
        return news


class Ingest:
    """What becomes of one touchpoint record as read: applied here, re-keyed, or dead-lettered.

    ``direct``: the touchpoints topic is partitioned like the re-keyed topic, so
    the worker that reads a touchpoint partition also owns the journeys of the
    same partition number (Faust assigns topics with equal partition counts
    together). Fixed for the worker's life: were it to change while running,
    a source's records could reach a journey partition by two paths, and its
    progress overtake an event still on its way.
    """

    def __init__(self, mw: Motwatch, *, direct: bool) -> None:
        self.mw = mw
        self.direct = direct
        self.partitions = mw.settings.partitions
        self.progress = SourceProgress()

    async def take(self, event: Any) -> tuple[Touchpoint, str, int] | None:
        """The touchpoint to apply on this partition, with its source and how far that has read.

        None when the record was re-keyed to another partition or dead-lettered.
        """
        mw = self.mw
        metrics = mw.metrics
        metrics.received.inc()
        message = event.message
        raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
        try:
            result = validate_touchpoint(raw)
            if isinstance(result, Rejection):
                await self.reject(raw, result, message, event.key)
                return None
            metrics.accept(result)
            source = f"{message.topic}:{message.partition}"
            read = self.progress.observe(source, result.occurred_ms)
            key = result.journey_key
            if self.direct and partition_for_key(key, self.partitions) == message.partition:
                return result, source, read
            await mw.send(
                mw.settings.by_journey_topic,
                key.encode(),
                raw,
                timestamp=result.occurred_ms / 1000,
                headers=touchpoint_headers(source, read),
            )
        except Exception as exc:  # one bad message never stops the stream
            log.exception("ingest failed on %s[%s]@%s", message.topic, message.partition, message.offset)
            await self.reject(
                raw, Rejection("internal_error", f"{type(exc).__name__}: {exc}"), message, event.key
            )
        return None

    async def reject(self, raw: bytes, reason: Rejection, message: Any, key: bytes | None) -> None:
        record = dead_letter_record(
            raw, reason, kafka_source(message.topic, message.partition, message.offset)
        )
        self.mw.metrics.rejected.labels(reason.reason).inc()
        await self.mw.send(self.mw.settings.deadletter_topic, key, encode_dead_letter(record))


def register(mw: Motwatch, *, direct: bool) -> Ingest:
    """The ingest step the journey agent runs on each touchpoint, and the timer that announces progress."""
    ingest = Ingest(mw, direct=direct)

    @mw.app.timer(interval=mw.settings.progress_interval_s, name="announce_progress")
    async def announce_progress() -> None:
        """Tell every re-keyed partition how far the source partitions read here have got.

        One record per partition for all of them: this runs every few tens of
        milliseconds, since an event waits for it to learn that the other
        sources have passed its time.
        """
        news = ingest.progress.unannounced()
        if not news:
            return
        body = encode_body({"sources": news})
        for partition in range(mw.settings.partitions):
            await mw.by_journey.send(
                key=None, value=body, partition=partition, headers=control_headers(SOURCE_PROGRESS)
            )

    return ingest
