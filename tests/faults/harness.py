"""What every fault test does: a seeded simulation, produced in bursts, real workers, and
``motwatch detect`` as the judge.

The input is ``motwatch simulate --seed`` output; ``motwatch detect`` on the
same file says which moments a correct worker writes, ids included. Workers
are ``motwatch worker`` processes, each with its own data directory and its
own web port (``web_port = 0``: the URL it picks is read from its
``web.url``), so that several can run side by side and a new one never finds
an old one's files. Touchpoints go in with confluent-kafka's producer, keyed
by journey, one burst at a time: what a worker has to read at any moment is
known, and a fault can be made while it reads. Every wait polls a condition
against a deadline, and fails at once when a worker it needs has died.

Set ``FAULTS_LONG=1`` for the long variants (bigger simulations, more faults).
The variable is not ``MOTWATCH_``-prefixed, since every ``MOTWATCH_*``
variable is a motwatch setting.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from motwatch.core.records import FORWARDED, SOURCE, header_map
from motwatch.kafka.admin import create_topics
from tests.clients import produce_with_librdkafka
from tests.workers import (
    READY_MARK,
    WorkerProcess,
    committed_to_the_end,
    detect_moments,
    end_offsets,
    motwatch_env,
    read_topic,
    read_until_quiet,
    run_cli,
)

LONG = os.environ.get("FAULTS_LONG") == "1"

# Only the stream moves event time (no wall-clock ticks fire timeouts in a test).
IDLE_ADVANCE_S = 36000
# After a worker has committed the whole input: the last timeouts fire on the next records.
QUIET_S = 4.0
# A worker's metrics, from streams/metrics.py: touchpoints read from the input topic; and
# Faust's count of every record its streams took (the input and the re-keyed topic).
RECEIVED = "motwatch_events_received_total"
STREAMED = "faust_messages_received_total"
# Each journey partition's event-time watermark (seconds since the epoch), by partition.
WATERMARK = "motwatch_watermark_seconds"


@dataclass(frozen=True)
class FaultKafka:
    """The Kafka the fault tests run against: its address and how many brokers it has; ``cluster``,
    the KafkaCluster itself when it is one (to kill, stop and start its nodes), else None."""

    bootstrap: str
    nodes: int
    cluster: Any = field(default=None, compare=False, repr=False)

    @property
    def replication(self) -> int:
        return min(self.nodes, 3)


@dataclass(frozen=True)
class Simulation:
    """A seeded simulation's lines (file order) and the moments ``motwatch detect`` reports for them."""

    path: Path
    lines: list[bytes]
    expected: list[dict[str, Any]]


def simulation(directory: Path, journeys: int, seed: int, **settings: Any) -> Simulation:
    """``motwatch simulate --journeys N --seed S``, and ``motwatch detect`` on it with ``settings``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"journeys-{journeys}-{seed}.jsonl"
    env = motwatch_env("127.0.0.1:9", "offline.", idle_advance_s=IDLE_ADVANCE_S, **settings)
    made = run_cli("simulate", "--journeys", str(journeys), "--seed", str(seed), "--out", str(path), env=env)
    assert made.returncode == 0, made.stderr.decode()
    lines = path.read_bytes().splitlines()
    expected = detect_moments(path, env)
    assert len(expected) >= journeys // 10, f"too few moments to judge by: {len(expected)}"
    assert len({m["moment_id"] for m in expected}) == len(expected), "detect reports each moment once"
    return Simulation(path, lines, expected)


def bursts(lines: list[bytes], count: int, rng: random.Random) -> list[list[bytes]]:
    """``lines`` cut in file order into ``count`` bursts of seeded sizes (each at least a
    third of an even share), every line in exactly one."""
    share = len(lines) / count
    sizes = [rng.uniform(share / 3, share * 5 / 3) for _ in range(count)]
    scale = len(lines) / sum(sizes)
    cuts = sorted({min(len(lines) - 1, max(1, round(sum(sizes[:n]) * scale))) for n in range(1, count)})
    edges = [0, *cuts, len(lines)]
    out = [lines[a:b] for a, b in itertools.pairwise(edges)]
    assert [line for burst in out for line in burst] == lines and len(out) == count
    return out


async def create_input(kafka: FaultKafka, prefix: str, partitions: int) -> str:
    """The touchpoints topic with ``partitions``, replicated as the cluster allows; its name."""
    topic = f"{prefix}touchpoints"
    await create_topics(kafka.bootstrap, [topic], partitions, kafka.replication)
    return topic


async def produce(kafka: FaultKafka, topic: str, lines: list[bytes]) -> None:
    """One burst, keyed by journey, by confluent-kafka's producer; returns once every record is acked."""
    if lines:
        await asyncio.to_thread(produce_with_librdkafka, kafka.bootstrap, topic, lines, keyed=True)


def worker_env(kafka: FaultKafka, prefix: str, data_dir: Path, **settings: Any) -> dict[str, str]:
    """A worker's environment: its own data directory, a web port of its own choosing."""
    return motwatch_env(
        kafka.bootstrap,
        prefix,
        replication_factor=kafka.replication,
        idle_advance_s=IDLE_ADVANCE_S,
        data_dir=data_dir,
        web_port=0,
        **settings,
    )


class FaultWorker(WorkerProcess):
    """``motwatch worker`` with its own data directory and web port, killed or stopped by its PID."""

    def __init__(self, kafka: FaultKafka, prefix: str, workdir: Path, **settings: Any) -> None:
        self.data_dir = workdir / "data"
        super().__init__(worker_env(kafka, prefix, self.data_dir, **settings), workdir)
        self.url_path = self.data_dir / f"{prefix}motwatch" / "web.url"

    def check_alive(self) -> None:
        if not self.alive():
            code = None if self.proc is None else self.proc.returncode
            raise AssertionError(f"{self.workdir.name} exited with {code}:\n{self.log()[-3000:]}")

    def launch(self) -> FaultWorker:
        """Start the process and return at once: it joins its group while the test goes on."""
        self.spawn([sys.executable, "-m", "motwatch.cli", "worker"], self.env)
        return self

    def ready(self) -> bool:
        """Has it started (tables recovered, agents running)? Fails if it died."""
        self.check_alive()
        return READY_MARK in self.log()

    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def metrics_text(self) -> str:
        """The worker's /metrics now, as served."""
        url = self.url_path.read_text(encoding="utf-8").strip()
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.read().decode()

    def metrics(self) -> dict[str, float]:
        """The worker's /metrics now: each series without labels, by name."""
        text = self.metrics_text()
        values = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if line and not line.startswith("#") and "{" not in name:
                values[name] = float(value)
        return values

    def watermarks(self) -> dict[int, float]:
        """The event-time watermark of each journey partition this worker ticks, in epoch seconds."""
        marks = {}
        for line in self.metrics_text().splitlines():
            series, _, value = line.rpartition(" ")
            if series.startswith(WATERMARK + "{"):
                marks[int(series.split('partition="', 1)[1].split('"', 1)[0])] = float(value)
        return marks

    async def received(self) -> int:
        """Touchpoints this process has read from the input topic."""
        self.check_alive()
        return round((await asyncio.to_thread(self.metrics))[RECEIVED])

    async def reads(self) -> tuple[int, int]:
        """Records this process has read: from the input topic, and from the re-keyed topic."""
        self.check_alive()
        values = await asyncio.to_thread(self.metrics)
        received = round(values[RECEIVED])
        return received, round(values[STREAMED]) - received

    def kill9(self) -> None:
        """SIGKILL by PID: no flush, no commit, no goodbye to the group."""
        os.kill(self.pid(), signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(30)

    async def terminate(self, deadline_s: float) -> tuple[int, float]:
        """SIGTERM by PID and wait, never SIGKILL unless it outlives ``deadline_s`` (then fail):
        its exit code and the seconds it took."""
        assert self.proc is not None
        started = time.monotonic()
        os.kill(self.pid(), signal.SIGTERM)
        try:
            code = await asyncio.to_thread(self.proc.wait, deadline_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            late = f"still running {deadline_s:.0f}s after SIGTERM:\n{self.log()[-3000:]}"
            raise AssertionError(late) from None
        return code, time.monotonic() - started


async def until(
    condition: Callable[[], Awaitable[bool]], timeout: float, what: str, *workers: FaultWorker
) -> None:
    """Poll ``condition`` until it holds; fail at the deadline or as soon as one of ``workers`` dies."""
    deadline = time.monotonic() + timeout
    while True:
        for worker in workers:
            worker.check_alive()
        if await condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


class Feed:
    """A simulation's lines, produced in file order, as much at a time as the test says."""

    def __init__(self, kafka: FaultKafka, topic: str, lines: list[bytes], rng: random.Random) -> None:
        self.kafka = kafka
        self.topic = topic
        self.lines = lines
        self.rng = rng
        self.sent = 0

    @property
    def left(self) -> int:
        return len(self.lines) - self.sent

    async def send(self, count: int) -> int:
        """The next ``count`` lines (fewer at the end) as one burst; how many went."""
        chunk = self.lines[self.sent : self.sent + count]
        await produce(self.kafka, self.topic, chunk)
        self.sent += len(chunk)
        return len(chunk)

    async def read_into(self, count: int, *readers: FaultWorker) -> None:
        """Send ``count`` lines; return once ``readers`` have read a seeded share of them (mid-burst)."""
        base = sum([await w.received() for w in readers])
        sent = await self.send(count)
        at = self.rng.randint(max(1, sent // 10), max(1, sent // 2))

        async def reading() -> bool:
            return sum([await w.received() for w in readers]) >= base + at

        await until(reading, 120, f"{at} of {sent} new touchpoints to be read", *readers)

    async def trickle_until(
        self, condition: Callable[[], Awaitable[bool]], what: str, *readers: FaultWorker, timeout: float = 180
    ) -> int:
        """Keep ``readers`` reading while the group changes: a small seeded chunk, the next once
        they have read from it, until ``condition`` holds (or the lines run out: then only wait).
        Returns the lines sent."""
        deadline = time.monotonic() + timeout
        sent = 0
        while not await condition():
            left_s = deadline - time.monotonic()
            if left_s < 0:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            if not self.left:
                await until(condition, left_s, what, *readers)
                break
            base = sum([await w.received() for w in readers])
            sent += await self.send(self.rng.randint(40, 120))

            async def moved(base: int = base) -> bool:
                return await condition() or sum([await w.received() for w in readers]) > base

            await until(moved, left_s, what, *readers)
        return sent


class Group:
    """The workers' consumer group as the broker has it: committed offsets, end offsets, members."""

    def __init__(self, kafka: FaultKafka, prefix: str) -> None:
        self.bootstrap = kafka.bootstrap
        self.name = f"{prefix}motwatch"
        self.touchpoints = f"{prefix}touchpoints"
        self.rekeyed = f"{prefix}touchpoints-by-journey"
        self.admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)

    async def __aenter__(self) -> Group:
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def committed(self, topic: str) -> dict[int, int]:
        """Each partition of ``topic`` the group has committed, and the offset."""
        offsets = await self.admin.list_consumer_group_offsets(self.name)
        return {tp.partition: m.offset for tp, m in offsets.items() if tp.topic == topic and m.offset >= 0}

    async def ends(self, topic: str) -> dict[int, int]:
        return {tp.partition: end for tp, end in (await end_offsets(self.consumer, topic)).items()}

    async def unread(self, topic: str, committed: dict[int, int]) -> int:
        """Records of ``topic`` past ``committed`` (from the first record where none is)."""
        return sum(end - committed.get(p, 0) for p, end in (await self.ends(topic)).items())

    async def caught_up(self) -> bool:
        """Has the group committed every partition of the input topic to its end?"""
        ends = await self.ends(self.touchpoints)
        committed = await self.committed(self.touchpoints)
        return bool(ends) and all(end == 0 or committed.get(p, -1) >= end for p, end in ends.items())

    async def members(self) -> list[set[int]]:
        """The input topic's partitions each member of the group holds (an empty list: no member)."""
        described = await self.admin.describe_consumer_groups([self.name])
        held = []
        for response in described:
            for group in response.groups:
                for member in group[-1]:
                    assignment = ConsumerProtocolMemberAssignment.decode(member[-1]) if member[-1] else None
                    topics = dict(assignment.assignment) if assignment else {}
                    held.append(set(topics.get(self.touchpoints, ())))
        return held


@dataclass
class Resumption:
    """What a worker that takes over from a killed or stopped one must read, and what it read."""

    unread_input: int  # input records past the group's committed offsets when the other stopped
    rekeyed_committed: int  # records of the re-keyed topic the group had committed then
    read_input: int = -1
    read_rekeyed: int = -1
    rekeyed_bound: int = -1  # re-keyed records past the committed offsets when its reads were taken


async def after_stop(group: Group) -> tuple[Resumption, dict[int, int]]:
    """Right after a worker stopped: how much input is left past the group's committed offsets,
    and the re-keyed topic's committed offsets."""
    committed = await group.committed(group.touchpoints)
    rekeyed = await group.committed(group.rekeyed)
    return Resumption(await group.unread(group.touchpoints, committed), sum(rekeyed.values())), rekeyed


async def resumed(group: Group, worker: FaultWorker, left: Resumption, rekeyed: dict[int, int]) -> Resumption:
    """Once ``worker`` has committed the input to its end (no more produced meanwhile): what it read.

    It must have read exactly the input past the committed offsets, and no more of
    the re-keyed topic than lies past the committed offsets there: it resumed
    where the group was, it did not read from the first record and drop repeats.
    """
    await until(group.caught_up, 180, f"{worker.workdir.name} to commit the input to its end", worker)
    left.read_input, left.read_rekeyed = await worker.reads()
    # Read after the worker's count: the end only grows, so this bound holds whatever came since.
    left.rekeyed_bound = await group.unread(group.rekeyed, rekeyed)
    assert left.read_input == left.unread_input, (
        f"{worker.workdir.name} read {left.read_input} touchpoints; "
        f"{left.unread_input} were past the group's committed offsets"
    )
    assert left.read_rekeyed <= left.rekeyed_bound, (
        f"{worker.workdir.name} read {left.read_rekeyed} re-keyed records; "
        f"only {left.rekeyed_bound} lie past the committed offsets (it re-read the topic)"
    )
    return left


async def kill_while_reading(
    worker: FaultWorker, group: Group, kafka: FaultKafka, burst: list[bytes], at: int
) -> None:
    """Produce ``burst`` and SIGKILL ``worker`` once it has read ``at`` of its records: mid-stream,
    with its partitions held, offsets committed before and moments flowing."""
    base = await worker.received()
    assert await group.committed(group.touchpoints), "the group has committed offsets before the fault"
    await produce(kafka, group.touchpoints, burst)

    async def reading() -> bool:
        return await worker.received() >= base + at

    await until(reading, 120, f"{worker.workdir.name} to read {at} of {len(burst)} new touchpoints", worker)
    worker.kill9()


async def event_time_past(worker: FaultWorker, partitions: int, expected: list[dict[str, Any]]) -> None:
    """Until ``worker``'s watermark on every one of the ``partitions`` journey partitions has passed
    the last moment ``detect`` reports: a slow worker is waited for, one whose event time stopped
    fails, saying where it stopped."""
    last = max(datetime.fromisoformat(m["occurred_at"]).timestamp() for m in expected)
    marks: dict[int, float] = {}

    async def past() -> bool:
        marks.update(await asyncio.to_thread(worker.watermarks))
        return len(marks) == partitions and min(marks.values()) > last

    try:
        await until(past, 240, f"{worker.workdir.name}'s event time to pass the last moment", worker)
    except AssertionError as exc:
        at = {p: datetime.fromtimestamp(t, UTC).isoformat() for p, t in sorted(marks.items())}
        last_at = datetime.fromtimestamp(last, UTC).isoformat()
        raise AssertionError(f"{exc}: watermarks {at}, the last moment at {last_at}") from None


async def collect_moments(kafka: FaultKafka, prefix: str) -> list[dict[str, Any]]:
    """The moments topic, read once the group has committed the whole input and then nothing came."""
    async with committed_to_the_end(kafka.bootstrap, f"{prefix}motwatch", f"{prefix}touchpoints") as done:
        records = await read_until_quiet(kafka.bootstrap, f"{prefix}moments", quiet_s=QUIET_S, ready=done)
    return [orjson.loads(r.value) for r in records]


def judge(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> int:
    """The moments written must be detect's: none lost, no id detect does not report, and every
    repeat the very record of its first emission (same id, same content). Returns the repeats."""
    first: dict[str, dict[str, Any]] = {}
    changed = []
    for moment in got:
        seen = first.setdefault(moment["moment_id"], moment)
        if seen != moment:
            changed.append((seen, moment))
    assert not changed, f"a repeat differs from its first emission: {changed[:2]}"
    wanted = {m["moment_id"]: m for m in expected}

    def brief(m: dict[str, Any]) -> str:
        return f"{m['kind']} {m['status']} {m['journey_key']} at {m['occurred_at']} ({m['moment_id']})"

    extra = [brief(m) for i, m in first.items() if i not in wanted]
    missing = [brief(m) for i, m in wanted.items() if i not in first]
    differ = [brief(m) for i, m in first.items() if i in wanted and wanted[i] != m]
    assert not (extra or missing or differ), (
        f"{len(extra)} not from detect: {extra[:5]}\n{len(missing)} lost: {missing[:5]}\n"
        f"{len(differ)} differ from detect's: {differ[:5]}"
    )
    return len(got) - len(first)


async def rekeyed_repeats(kafka: FaultKafka, prefix: str, lines: list[bytes]) -> int:
    """Touchpoints the workers re-keyed more than once to the same journey (producers' originals,
    not forwarded ones; an ``identify`` goes to each of its two journeys once)."""
    topic = f"{prefix}touchpoints-by-journey"
    async with Group(kafka, prefix) as group:
        total = sum((await group.ends(topic)).values())
    records = await read_topic(kafka.bootstrap, topic, lambda got: len(got) >= total, timeout=120)
    wanted = set(lines)
    copies = Counter(
        (r.key, r.value)
        for r in records
        if r.value in wanted and SOURCE in (h := header_map(r.headers)) and FORWARDED not in h
    )
    return sum(n - 1 for n in copies.values())


# Lines of a worker's log: the consumer gives its partitions up; Faust hands it new ones; the journey
# agent builds a partition's journeys (on the first record it applies there since the last rebalance).
REVOKING = "Revoking previously assigned partitions"
ASSIGNED = "Executing _on_partitions_assigned"
BUILT = "journeys indexed"


def built_between_assignments(worker: FaultWorker) -> list[str]:
    """Where ``worker``'s log says it built a partition's journeys after giving its partitions up
    and before being given new ones: it applied records of a partition it no longer held."""
    found, between = [], False
    for line in worker.log().splitlines():
        if REVOKING in line:
            between = True
        elif ASSIGNED in line:
            between = False
        elif between and BUILT in line:
            found.append(line.strip())
    return found


def report(record_property: Callable[[str, object], None], **figures: object) -> None:
    """Figures of a run, in the JUnit report and on stdout (``pytest -s``)."""
    for name, value in figures.items():
        record_property(name, value)
    print(" ".join(f"{name}={value}" for name, value in figures.items()))


@asynccontextmanager
async def workers() -> AsyncIterator[list[FaultWorker]]:
    """A list to put started workers in; those still running at the end are stopped by their PID."""
    started: list[FaultWorker] = []
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()
