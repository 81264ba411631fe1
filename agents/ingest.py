"""Ingest agent: validate every touchpoint, re-key it by journey, dead-letter the rest.

It sends to the re-keyed topic itself, with an explicit key and the event's
own time as the record timestamp (``group_by`` would drop the timestamp), and
tells each re-keyed partition how far its source partition has read, which
is what drives event time downstream.
"""

from __future__ import annotations

import logging
from typing import Any

from motwatch.streams.app import Motwatch
from motwatch.streams.records import (
    SOURCE_PROGRESS,
    control_headers,
    encode_body,
    touchpoint_headers,
)

from motwatch.deadletter import dead_letter_record, encode_dead_letter, kafka_source
from motwatch.validation import Rejection, validate_touchpoint

log = logging.getLogger("motwatch.ingest")

# Records taken at a time, and the longest wait for a batch to fill.
BATCH_MAX = 1000
BATCH_WITHIN_S = 0.01


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


def register(mw: Motwatch) -> None:
    progress = SourceProgress()
    send = mw.send
    deadletter_topic = mw.settings.deadletter_topic
    by_journey_topic = mw.settings.by_journey_topic

    async def reject(raw: bytes, reason: Rejection, message: Any, key: bytes | None) -> None:
        record = dead_letter_record(
            raw, reason, kafka_source(message.topic, message.partition, message.offset)
        )
        mw.metrics.rejected.labels(reason.reason).inc()
        await send(deadletter_topic, key, encode_dead_letter(record))

    metrics = mw.metrics
    timer = metrics.processing.labels("ingest").time

    async def handle(event: Any) -> None:
        metrics.received.inc()
        message = event.message
        raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
        try:
            result = validate_touchpoint(raw)
            if isinstance(result, Rejection):
                await reject(raw, result, message, event.key)
                return
            metrics.accept(result)
            source = f"{message.topic}:{message.partition}"
            read = progress.observe(source, result.occurred_ms)
            await send(
                by_journey_topic,
                result.journey_key.encode(),
                raw,
                timestamp=result.occurred_ms / 1000,
                headers=touchpoint_headers(source, read),
            )
        except Exception as exc:  # one bad message never stops the stream
            log.exception("ingest failed on %s[%s]@%s", message.topic, message.partition, message.offset)
            await reject(raw, Rejection("internal_error", f"{type(exc).__name__}: {exc}"), message, event.key)

    @mw.app.agent(mw.touchpoints, name="ingest")
    async def ingest(stream: Any) -> None:
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            for event in batch:
                with timer():
                    await handle(event)

    @mw.app.timer(interval=mw.settings.progress_interval_s, name="announce_progress")
    async def announce_progress() -> None:
        """Tell every re-keyed partition how far each source partition has read."""
        for source, read in progress.unannounced().items():
            body = encode_body({"source": source, "max_seen_ms": read})
            for partition in range(mw.settings.partitions):
                await mw.by_journey.send(
                    key=None, value=body, partition=partition, headers=control_headers(SOURCE_PROGRESS)
                )
