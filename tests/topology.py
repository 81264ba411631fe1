"""The worker's topology in memory, for tests of the core: records move only when a test says so.

Journey partitions, each a ``JourneyEngine`` behind one ``JourneyDispatch``;
the input topic's partitions and the re-keyed topic as logs. A test
produces lines to input partitions, then reads, delivers, announces progress
and ticks in any order it likes (a schedule hypothesis draws, say), and
compares the moments with ``motwatch detect`` on the same lines. A test may
also commit (the journeys and clocks as they are, with offsets that may lag
what was applied, as acknowledgements do) and crash (a worker that has read
nothing resumes from the last commit, with the topics as the dead one left
them). Kafka itself is tested against the real broker
(``tests/test_differential.py``); this is the core's contract under every
delivery order, in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from motwatch.commands.detect import run_detect
from motwatch.core.clock import PartitionClock
from motwatch.core.dispatch import Inbound, JourneyDispatch, Outcome
from motwatch.core.engine import JourneyEngine
from motwatch.core.journey import JourneyState
from motwatch.core.moments import Moment
from motwatch.core.partitioner import partition_for_key
from motwatch.core.records import (
    SOURCE_PROGRESS,
    TICK,
    control_headers,
    header_map,
    input_sources,
    source_name,
    tick_body,
)
from motwatch.core.sources import SourceReads
from motwatch.settings import Settings


@dataclass(frozen=True)
class Commit:
    """What a commit leaves for the next worker: each journey partition's journeys (packed) and
    clock, and the offsets to read from (input partitions, re-keyed partitions)."""

    journeys: dict[int, dict[str, bytes]]
    clocks: dict[int, bytes]
    inputs: dict[int, int]
    rekeyed: dict[int, int]


class Topology:
    """``partitions`` journey partitions reading an input topic of ``input_partitions``."""

    def __init__(self, settings: Settings, partitions: int, input_partitions: int | None = None) -> None:
        self.settings = settings
        self.partitions = partitions
        # The input topic as the worker names it: the dispatch knows which source is read where.
        self.input = settings.touchpoints_topic
        self.input_partitions = input_partitions or partitions
        self.reads = SourceReads()
        self.reads.set_inputs({self.input: self.input_partitions})
        self.engines: dict[int, JourneyEngine] = {}
        for p in range(partitions):
            self.engines[p] = JourneyEngine(settings, clock=self._fresh_clock())
        self.dispatch = JourneyDispatch(
            settings,
            self.engines.__getitem__,
            partitions=partitions,
            direct=self.input_partitions == partitions,
            reads=self.reads,
        )
        # Each topic partition as a log, and the next offset the worker reads from it.
        self.inputs: dict[int, list[bytes]] = {p: [] for p in range(self.input_partitions)}
        self.offsets: dict[int, int] = dict.fromkeys(self.inputs, 0)
        self.rekeyed: dict[int, list[Inbound]] = {p: [] for p in range(partitions)}
        self.delivered: dict[int, int] = dict.fromkeys(self.rekeyed, 0)
        self.moments: list[Moment] = []
        self.wall_ms = 0
        self.committed = Commit({}, {}, dict(self.offsets), dict(self.delivered))

    def _fresh_clock(self) -> PartitionClock:
        """A journey partition's clock where none was stored, as the worker makes it."""
        clock = PartitionClock(
            lateness_ms=round(self.settings.allowed_lateness_s * 1000),
            self_timed=False,
            idle_advance_ms=round(self.settings.idle_advance_s * 1000),
        )
        clock.learn_inputs(input_sources(self.reads.inputs))
        return clock

    def unread(self, partition: int) -> int:
        """Records of an input partition the worker has not read yet."""
        return len(self.inputs[partition]) - self.offsets[partition]

    def undelivered(self, partition: int) -> int:
        """Records of a re-keyed partition its journey partition has not taken yet."""
        return len(self.rekeyed[partition]) - self.delivered[partition]

    # -- producing ---------------------------------------------------------------
    def produce(self, lines: Iterable[bytes], partition_of: Callable[[int, bytes], int]) -> None:
        """Append each line to the input partition ``partition_of(index, line)`` gives it."""
        for index, line in enumerate(lines):
            self.inputs[partition_of(index, line) % self.input_partitions].append(line)

    # -- what a worker does ------------------------------------------------------------
    def read(self, partition: int, count: int) -> None:
        """Read up to ``count`` records of an input partition, as its worker would."""
        log = self.inputs[partition]
        for _ in range(min(count, self.unread(partition))):
            offset = self.offsets[partition]
            self.offsets[partition] += 1
            record = Inbound(
                log[offset], partition, behind=offset + 1 < len(log), topic=self.input, offset=offset
            )
            self._carry_out(self.dispatch.touchpoint(record))

    def take_over(self) -> None:
        """The worker stops and another takes its partitions over: a reader that has read nothing
        yet, where the last one stopped (what it read is committed); the journeys and clocks as
        stored; the re-keyed records not delivered yet still waiting in their topic."""
        self.reads = SourceReads()
        self.reads.set_inputs({self.input: self.input_partitions})
        self.dispatch.reads = self.reads

    def commit(self, lag: Mapping[int, int] | None = None) -> None:
        """Store every journey and clock as they are, and commit the offsets read so far, less
        ``lag`` records of each input partition (records applied but not acknowledged yet are read
        again after a crash); never behind the last commit."""
        lag = lag or {}
        last = self.committed
        self.committed = Commit(
            {p: {k: s.pack() for k, s in e.store.items()} for p, e in self.engines.items()},
            {p: e.clock.to_json() for p, e in self.engines.items()},
            {p: max(last.inputs[p], at - lag.get(p, 0)) for p, at in self.offsets.items()},
            dict(self.delivered),
        )

    def crash(self) -> None:
        """The worker dies; a new one takes over from the last commit: the journeys and clocks it
        stored, the input and re-keyed partitions read again from the committed offsets (with
        whatever the dead one wrote to the re-keyed topic after them), a reader that has read
        nothing yet."""
        committed = self.committed
        for p in self.engines:
            if p in committed.clocks:
                clock = PartitionClock.from_json(committed.clocks[p])
                clock.taken_over()  # as the worker resumes a stored clock
            else:
                clock = self._fresh_clock()
            store = {k: JourneyState.unpack(raw) for k, raw in committed.journeys.get(p, {}).items()}
            self.engines[p] = JourneyEngine(self.settings, store=store, clock=clock)
            self.engines[p].restore()
        self.offsets = dict(committed.inputs)
        self.delivered = dict(committed.rekeyed)
        self.take_over()

    def announce(self, restate: bool = False) -> None:
        """What was read since the last time, to every journey partition (the worker's 20 ms loop);
        ``restate``: every partition read, as the worker does twice per tick interval."""
        for partition in self.inputs:
            self.reads.waiting(source_name(self.input, partition), behind=self.unread(partition) > 0)
        body = self.reads.news(restate)
        if body is not None:
            headers = header_map(control_headers(SOURCE_PROGRESS))
            for log in self.rekeyed.values():
                log.append(Inbound(body, 0, headers=headers))

    def tick(self, step_ms: int = 1000) -> None:
        """The leader's tick, to every journey partition."""
        self.wall_ms += step_ms
        headers = header_map(control_headers(TICK))
        for log in self.rekeyed.values():
            log.append(Inbound(tick_body(self.wall_ms), 0, headers=headers))

    def deliver(self, partition: int, count: int) -> None:
        """Up to ``count`` records of the re-keyed topic to the journey partition that reads them."""
        log = self.rekeyed[partition]
        for _ in range(min(count, self.undelivered(partition))):
            record = log[self.delivered[partition]]
            self.delivered[partition] += 1
            record.partition = partition
            self._carry_out(self.dispatch.journey_record(record))

    def settle(self) -> None:
        """Read and deliver everything; then announce and tick until every quiet source is passed."""
        while any(map(self.unread, self.inputs)) or any(map(self.undelivered, self.rekeyed)):
            for partition in self.inputs:
                self.read(partition, self.unread(partition))
            self.announce()
            self.catch_up()
        for _ in range(3):
            self.announce(restate=True)
            self.catch_up()
            self.tick()
            self.announce(restate=True)
            self.tick()
            self.catch_up()

    def catch_up(self) -> None:
        """Deliver every record of the re-keyed topic, and those they send on."""
        while any(map(self.undelivered, self.rekeyed)):
            for partition in self.rekeyed:
                self.deliver(partition, self.undelivered(partition))

    def _carry_out(self, outcome: Outcome) -> None:
        for step in outcome.steps:
            self.moments.extend(step.moments)
        for send in outcome.sends:
            if send.partition is not None:
                target = send.partition
            else:
                target = partition_for_key((send.key or b"").decode(), self.partitions)
            headers = header_map(send.headers)
            self.rekeyed[target].append(
                Inbound(send.value, target, key=send.key, headers=headers, timestamp_ms=send.timestamp_ms)
            )


def detect(lines: list[bytes], settings: Settings) -> list[Moment]:
    """What ``motwatch detect`` reports for the lines."""
    found: list[Moment] = []
    run_detect(lines, settings, found.append, lambda _: None)
    return found
