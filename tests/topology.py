"""The worker's topology in memory, for tests of the core: records move only when a test says so.

Journey partitions, each a ``JourneyEngine`` behind one ``JourneyDispatch``;
the input topic's partitions and the re-keyed topic as queues. A test
produces lines to input partitions, then reads, delivers, announces progress
and ticks in any order it likes (a schedule hypothesis draws, say), and
compares the moments with ``motwatch detect`` on the same lines. Kafka
itself is tested against the real broker (``tests/test_differential.py``);
this is the core's contract under every delivery order, in milliseconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from motwatch.commands.detect import run_detect
from motwatch.core.clock import PartitionClock
from motwatch.core.dispatch import Inbound, JourneyDispatch, Outcome
from motwatch.core.engine import JourneyEngine
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

INPUT = "touchpoints"


class Topology:
    """``partitions`` journey partitions reading an input topic of ``input_partitions``."""

    def __init__(self, settings: Settings, partitions: int, input_partitions: int | None = None) -> None:
        self.settings = settings
        self.partitions = partitions
        self.input_partitions = input_partitions or partitions
        self.reads = SourceReads()
        self.reads.set_inputs({INPUT: self.input_partitions})
        self.engines: dict[int, JourneyEngine] = {}
        for p in range(partitions):
            clock = PartitionClock(
                lateness_ms=round(settings.allowed_lateness_s * 1000),
                self_timed=False,
                idle_advance_ms=round(settings.idle_advance_s * 1000),
            )
            clock.learn_inputs(input_sources(self.reads.inputs))
            self.engines[p] = JourneyEngine(settings, clock=clock)
        self.dispatch = JourneyDispatch(
            settings,
            self.engines.__getitem__,
            partitions=partitions,
            direct=self.input_partitions == partitions,
            reads=self.reads,
        )
        self.inputs: dict[int, deque[bytes]] = {p: deque() for p in range(self.input_partitions)}
        self.offsets: dict[int, int] = dict.fromkeys(self.inputs, 0)
        self.rekeyed: dict[int, deque[Inbound]] = {p: deque() for p in range(partitions)}
        self.moments: list[Moment] = []
        self.wall_ms = 0

    # -- producing ---------------------------------------------------------------
    def produce(self, lines: Iterable[bytes], partition_of: Callable[[int, bytes], int]) -> None:
        """Append each line to the input partition ``partition_of(index, line)`` gives it."""
        for index, line in enumerate(lines):
            self.inputs[partition_of(index, line) % self.input_partitions].append(line)

    # -- what a worker does ------------------------------------------------------------
    def read(self, partition: int, count: int) -> None:
        """Read up to ``count`` records of an input partition, as its worker would."""
        queue = self.inputs[partition]
        for _ in range(min(count, len(queue))):
            value = queue.popleft()
            self.offsets[partition] += 1
            record = Inbound(
                value, partition, behind=bool(queue), topic=INPUT, offset=self.offsets[partition] - 1
            )
            self._carry_out(self.dispatch.touchpoint(record))

    def take_over(self) -> None:
        """The worker stops and another takes its partitions over: a reader that has read nothing
        yet, where the last one stopped (what it read is committed); the journeys and clocks as
        stored; the re-keyed records not delivered yet still waiting in their topic."""
        self.reads = SourceReads()
        self.reads.set_inputs({INPUT: self.input_partitions})
        self.dispatch.reads = self.reads

    def announce(self, restate: bool = False) -> None:
        """What was read since the last time, to every journey partition (the worker's 20 ms loop);
        ``restate``: every partition read, as the worker does twice per tick interval."""
        for partition, queue in self.inputs.items():
            self.reads.waiting(source_name(INPUT, partition), behind=bool(queue))
        body = self.reads.news(restate)
        if body is not None:
            headers = header_map(control_headers(SOURCE_PROGRESS))
            for queue in self.rekeyed.values():
                queue.append(Inbound(body, 0, headers=headers))

    def tick(self, step_ms: int = 1000) -> None:
        """The leader's tick, to every journey partition."""
        self.wall_ms += step_ms
        headers = header_map(control_headers(TICK))
        for queue in self.rekeyed.values():
            queue.append(Inbound(tick_body(self.wall_ms), 0, headers=headers))

    def deliver(self, partition: int, count: int) -> None:
        """Up to ``count`` records of the re-keyed topic to the journey partition that reads them."""
        queue = self.rekeyed[partition]
        for _ in range(min(count, len(queue))):
            record = queue.popleft()
            record.partition = partition
            self._carry_out(self.dispatch.journey_record(record))

    def settle(self) -> None:
        """Read and deliver everything; then announce and tick until every quiet source is passed."""
        while any(self.inputs.values()) or any(self.rekeyed.values()):
            for partition in self.inputs:
                self.read(partition, len(self.inputs[partition]))
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
        while any(self.rekeyed.values()):
            for partition in self.rekeyed:
                self.deliver(partition, len(self.rekeyed[partition]))

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
