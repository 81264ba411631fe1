"""Ingest: validate every touchpoint as read, dead-letter the rest, and route it to its journey.

A touchpoint read from the partition its journey lives on (the producer keyed
it by journey, as ``motwatch produce`` does) is applied there and then by the
journey agent, which reads the touchpoints topic too: one record consumed and
validated once. Any other touchpoint is re-keyed: sent to the re-keyed topic
with its journey key and its own time as the record timestamp.

Every partition of the re-keyed topic is told how far each source partition
has read, and whether it had more records waiting (a source catching up on a
backlog keeps holding event time back: ``motwatch/clock.py``), which is what
drives event time downstream. Records of one source
reach one journey partition by one path only (directly, or through the
re-keyed topic), so such news never overtakes an event it covers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
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
    """Per source partition: the latest event time read, whether records were still waiting
    to be read after the last one (a backlog), and what was last announced."""

    def __init__(self) -> None:
        self.read: dict[str, int] = {}
        self.behind: dict[str, bool] = {}
        self.announced: dict[str, tuple[int, bool]] = {}

    def observe(self, source: str, occurred_ms: int, behind: bool = False) -> int:
        if occurred_ms > self.read.get(source, -(2**62)):
            self.read[source] = occurred_ms
        self.behind[source] = behind
        return self.read[source]

    def unannounced(self) -> tuple[dict[str, int], list[str]]:
        """The sources with news since the last call: their times, and which of them are behind."""
        news = {s: t for s, t in self.read.items() if self.announced.get(s) != (t, self.behind[s])}
        for source, at in news.items():
            self.announced[source] = (at, self.behind[source])
        return news, sorted(s for s in news if self.behind[s])


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
            # Where the partition ends (its high watermark), as the last fetch saw it.
            highwater = mw.app.consumer.highwater(message.tp)
            read = self.progress.observe(
                source, result.occurred_ms, highwater is not None and message.offset + 1 < highwater
            )
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

    async def announce_progress(self) -> None:
        """Tell every re-keyed partition how far the source partitions read here have got.

        One record per partition for all of them, and only when there is news.
        """
        news, behind = self.progress.unannounced()
        if not news:
            return
        mw = self.mw
        body = encode_body({"sources": news, "behind": behind})
        for partition in range(mw.settings.partitions):
            await mw.by_journey.send(
                key=None, value=body, partition=partition, headers=control_headers(SOURCE_PROGRESS)
            )


async def repeat(app: Any, interval_s: float, action: Callable[[], Awaitable[None]], name: str) -> None:
    """Run ``action`` every ``interval_s`` until the app stops; a failure is logged, not fatal.

    For actions more frequent than the journey agent's batches are long:
    Faust's ``app.timer`` logs a warning each time its action and the tasks
    that ran meanwhile took longer than the interval, which on a busy worker
    is several times a minute for a 20 ms interval, and says nothing wrong.
    """
    while not app.should_stop:
        await app.sleep(interval_s)
        try:
            await action()
        except Exception:
            log.exception("%s failed; trying again in %ss", name, interval_s)


def register(mw: Motwatch, *, direct: bool) -> Ingest:
    """The ingest step the journey agent runs on each touchpoint, and the task that announces progress.

    An event waits for the announcements to learn that the other sources have
    passed its time, so they go out every few tens of milliseconds.
    """
    ingest = Ingest(mw, direct=direct)
    interval_s = mw.settings.progress_interval_s

    @mw.app.task
    async def announce_progress() -> None:
        await repeat(mw.app, interval_s, ingest.announce_progress, "announcing source progress")

    return ingest
