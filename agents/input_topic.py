"""The input topic as this worker reads it: its partitions, and how far each has been read.

Touchpoints are validated, routed and applied by the journey agent through
the core's dispatch (``motwatch/dispatch.py``); what the worker adds here is
what only a Kafka consumer knows. Right after each batch of the journey
agent that read input, and every ``progress_interval_s``, each partition of
the re-keyed topic is told, in one record, what this worker has read from
each source partition since the last time: the latest event time,
whether records were still waiting to be read (a source catching up on a
backlog keeps holding event time back: ``motwatch/clock.py``), and, for a
partition it reads and has read nothing from yet, whether records wait there.
Twice per ``tick_interval_s`` it restates every partition it reads, changed
or not: a tick finds a partition idle only when its reader said so since the
tick before, never because nobody is reading it (a takeover).

The input topic's partitions are known up front: its partition count at start,
and again whenever the consumer's assignment changes (the consumer refreshes
its metadata every ``metadata_refresh_s`` and rebalances when a topic grows).
A new count reaches every journey partition with the next progress record.
Touchpoints read on their journey's partition skip the re-keying hop only
while the input topic has exactly as many partitions as the journey topics
(Faust assigns equal-count topics together); once it has not, every
touchpoint is re-keyed, for the rest of the worker's life.

Records of one source reach one journey partition by one path only (directly,
or through the re-keyed topic) before progress that covers them, so such news
never overtakes an event it covers: a progress record is handed to the
producer only once every record sent to the re-keyed topic before the news
was taken is on the broker (sent again, if it failed). A write can fail
while later ones to the same partition succeed (a batch that waited for a
leader through an outage, then those behind it refused as out of
sequence), and a touchpoint sent again after news that covers it found its
journey partition's event time past it. Touchpoints themselves carry no
progress, for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from faust.types import TP

from motwatch.agents.protocols import AgentApp, AgentMessage, Sleeper
from motwatch.core.records import SOURCE_PROGRESS, control_headers, input_sources, source_name
from motwatch.core.sources import SourceReads
from motwatch.streams.faust_internals import committed_offsets

log = logging.getLogger("motwatch.ingest")


class InputTopic:
    """The input topic's partitions as this worker sees them, and what it has read from each.

    ``partitions``: the input topic's partition count when the worker started.
    ``direct``: touchpoints read on their journey's partition are applied
    there (the topic is partitioned like the journey topics).
    """

    def __init__(self, mw: AgentApp, *, partitions: int) -> None:
        self.mw = mw
        self.topic = mw.settings.touchpoints_topic
        self.reads = SourceReads()
        self.reads.set_inputs({self.topic: partitions})
        self.direct = partitions == mw.settings.partitions
        # Called with the new value when ``direct`` is switched off.
        self.on_direct: Callable[[bool], None] | None = None
        # Each assigned input partition's first offset, where reading starts when none is committed.
        self.first_offsets: dict[TP, int] = {}
        self.restate_every_s = mw.settings.tick_interval_s / 2
        self.restated_at = -float("inf")
        # Set to announce now rather than at the end of the interval (``announce_soon``).
        self.wake = asyncio.Event()
        # Held while a record read here is handed on (applied, or re-keyed to the producer): news
        # of a read must not reach a journey partition before the touchpoint it sends there.
        self.handing_on = asyncio.Lock()
        # Per input partition read here: the fetch response that had told its high watermark when
        # its last record was read (``last_fetched``), to tell a later one from it (``_waiting``).
        self.fetched_when_read: dict[TP, int | None] = {}

    def sources(self) -> list[str]:
        """Every source partition of the input topic, named."""
        return input_sources(self.reads.inputs)

    def partitions_are(self, count: int | None) -> None:
        """The input topic's partition count, as the consumer's metadata now has it."""
        if count is None or count <= self.reads.inputs.get(self.topic, 0):
            return
        self.reads.set_inputs({self.topic: count})
        log.warning(
            "%s now has %d partitions: every journey partition waits for the new ones", self.topic, count
        )
        if self.direct and count != self.mw.settings.partitions:
            self.direct = False
            log.warning(
                "%s has %d partitions, the worker %d: from now on every touchpoint is re-keyed",
                self.topic,
                count,
                self.mw.settings.partitions,
            )
            if self.on_direct is not None:
                self.on_direct(False)

    def behind(self, message: AgentMessage) -> bool:
        """Whether records may still wait in the message's partition after it (a backlog): yes,
        once the partition has been fetched at all, since as it is read no fetch made after it
        has answered yet (``_waiting``); the announcements say otherwise once one has."""
        consumer = self.mw.app.consumer
        tp = message.tp
        self.fetched_when_read[tp] = consumer.last_fetched(tp)
        return consumer.highwater(tp) is not None

    def _waiting(self, tp: TP, next_offset: int, highwater: int) -> bool:
        """Whether records wait past ``next_offset``, or may: the high watermark says so, or it
        is the word of a fetch made before the partition's last record here was read.

        The consumer fetches a partition again only once it has handed out
        every record it fetched, and keeps the high watermark of the last
        fetch meanwhile. A partition whose records wait in the consumer while
        the agent is busy (a backlog read unevenly, output blocked) can be
        read to that fetch's end, its high watermark equal to the next offset,
        with the partition's next fetch not made or not answered yet: taken
        at its word, the partition had nothing to read, and a tick found it
        idle while the rest of its backlog waited, and event time passed
        it. Only a fetch answered after the read speaks for what came since.
        """
        if next_offset < highwater:
            return True
        if tp not in self.fetched_when_read:
            return False  # nothing read here yet: any fetch tells what waits past where reading starts
        return self.mw.app.consumer.last_fetched(tp) == self.fetched_when_read[tp]

    def forget_reads(self) -> None:
        """The partitions were given up: what was read of them is read again from their
        committed offsets, by whoever takes them (``SourceReads.forget_reads``)."""
        self.reads.forget_reads()
        self.fetched_when_read.clear()

    def note_waiting(self) -> None:
        """For each input partition assigned here: are records waiting past what was read?

        Asked every announcement, not only as records are read: a partition
        read to its end may receive more, and one not read from yet may have
        a backlog; either holds event time back until it is read. Where
        reading starts in a partition not read from yet is its committed
        offset, or its first offset; while neither is known nothing is said,
        and the journey partitions keep waiting for it. (The consumer's
        ``position`` is not asked: a call that waits for a position holds
        one of the consumer thread's two workers, and with them the fetches.)
        """
        consumer = self.mw.app.consumer
        reads = self.reads
        committed = committed_offsets(consumer)
        for tp in consumer.assignment():
            if tp.topic != self.topic:
                continue
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue  # not fetched yet: not known
            source = source_name(tp.topic, tp.partition)
            next_offset = reads.next_offset.get(source)
            if next_offset is None:
                next_offset = committed.get(tp) or self.first_offsets.get(tp)
                if next_offset is None:
                    continue
            reads.waiting(source, behind=self._waiting(tp, next_offset, highwater))

    async def learn_first_offsets(self) -> None:
        """The first offset of each input partition assigned here (once per assignment)."""
        consumer = self.mw.app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic == self.topic]
        if tps:
            self.first_offsets.update(await consumer.earliest_offsets(*tps))

    def announce_soon(self) -> None:
        """Have the announcer announce now, without waiting for it (``register``)."""
        self.wake.set()

    async def announce_progress(self) -> None:
        """Tell every journey partition what was read here since the last time, if anything;
        every partition read here, twice per tick interval.

        The news is taken between records (``handing_on``): taken while a
        record's touchpoint waited for room in the producer, it went out
        ahead of the touchpoint, and the journey partition's event time
        passed the touchpoint before it arrived (a deadline fired that the
        touchpoint would have met). What waits in each partition is noted
        at the same moment: noted before waiting for the record, it said a
        partition that had just received records had none, beside reads of
        the others made after they arrived. Then it waits until every record
        sent to the re-keyed topic so far is written (module docstring).
        """
        now = time.monotonic()
        restate = now - self.restated_at >= self.restate_every_s
        if restate:
            self.restated_at = now
        async with self.handing_on:
            # What waits in each partition, and what was read, as of one moment.
            self.note_waiting()
            body = self.reads.news(restate)
        if body is None:
            return
        mw = self.mw
        await mw.written(mw.settings.by_journey_topic)
        for partition in range(mw.settings.partitions):
            await mw.by_journey.send(
                key=None, value=body, partition=partition, headers=control_headers(SOURCE_PROGRESS)
            )


async def repeat(
    app: Sleeper,
    interval_s: float,
    action: Callable[[], Awaitable[None]],
    name: str,
    wake: asyncio.Event | None = None,
) -> None:
    """Run ``action`` every ``interval_s`` until the app stops, or as soon as ``wake`` is set;
    a failure is logged, not fatal.

    For actions more frequent than the journey agent's batches are long:
    Faust's ``app.timer`` logs a warning each time its action and the tasks
    that ran meanwhile took longer than the interval, which on a busy worker
    is several times a minute for a 20 ms interval, and says nothing wrong.
    """
    while not app.should_stop:
        if wake is None:
            await app.sleep(interval_s)
        elif not wake.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), interval_s)
        if wake is not None:
            wake.clear()
        try:
            await action()
        except Exception:
            log.exception("%s failed; trying again in %ss", name, interval_s)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not learn where the input partitions start: %s", task.exception())


def register(mw: AgentApp, *, partitions: int) -> InputTopic:
    """The input topic's view, the task that announces progress, and the watch on its partitions.

    An event waits for the announcements to learn that the other sources have
    passed its time, so they go out every few tens of milliseconds.
    """
    inputs = InputTopic(mw, partitions=partitions)
    interval_s = mw.settings.progress_interval_s

    @mw.app.task
    async def announce_progress() -> None:
        await repeat(mw.app, interval_s, inputs.announce_progress, "announcing source progress", inputs.wake)

    @mw.app.on_partitions_revoked.connect
    async def _revoked(app: object, revoked: set[TP], **kwargs: Any) -> None:
        # Read again from the committed offsets after the rebalance: news of what was read before
        # it, still unread in the re-keyed topic, must not count as this reader's (core/dispatch.py).
        inputs.forget_reads()

    @mw.app.on_partitions_assigned.connect
    async def _assigned(app: object, assigned: set[TP], **kwargs: Any) -> None:
        inputs.partitions_are(mw.app.consumer.topic_partitions(inputs.topic))
        # Not awaited here: the rebalance must not wait on a request of its own consumer.
        task = asyncio.ensure_future(inputs.learn_first_offsets())
        task.add_done_callback(_log_failure)

    return inputs
