"""The journey agent's Kafka side, without a broker: batches, tables, announcements.

The agent is driven through ``JourneysAgent.process`` with stand-ins for the
producer, the consumer and the two tables: small classes that implement the
Protocols of ``agents/protocols.py`` (where records go, and what they do to
the engines, is the dispatch's: ``tests/core/test_dispatch.py``). A tick
that fires timeouts must send their moments even when saving the
partition's clock fails (as it did when the clocks changelog was not yet
known to the consumer); the journeys must reach the table once per batch,
with the partition's clock; progress is announced only when there is news.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import orjson
import pytest
from faust.types import TP

from motwatch.agents import input_topic, journeys
from motwatch.commands.detect import run_detect
from motwatch.core.clock import PartitionClock
from motwatch.core.journey import JourneyState
from motwatch.core.partitioner import partition_for_key
from motwatch.core.records import SOURCE_PROGRESS, TICK, control_headers, encode_body
from motwatch.core.validation import journey_key_of
from motwatch.settings import Settings
from motwatch.simulation import SimulationConfig, simulate
from motwatch.streams.app import TextCodec
from motwatch.streams.delivery import Deliveries
from motwatch.streams.metrics import Metrics
from tests.event_loop import run_steps, until

CLOCKS_CHANGELOG = "clocks-changelog"
FLUSHED = "(acknowledged)"

V = TypeVar("V")
F = TypeVar("F")


class Written(NamedTuple):
    """What the broker says of a record it has (aiokafka's ``RecordMetadata``, as far as it is read)."""

    offset: int


class Producer:
    """The worker's producer: records sent are kept, in order (``AgentProducer``, and what
    ``send`` and ``send_batch`` hand records to).

    Faults on demand: ``refuse[topic]`` sends to ``topic`` raise (as a producer with no
    metadata for it does), ``fail[topic]`` writes are reported failed (as a request
    that timed out is); ``hold`` keeps writes to its topics unacknowledged until
    ``release``. A failed or refused record is not kept in ``sent``. ``room[topic]``:
    a keyed record sent to ``topic`` waits until the event is set before the producer
    takes it (as aiokafka's does while its buffer is full); ``waiting`` counts them.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self.headers: list[list[tuple[str, bytes]]] = []
        self.refuse: dict[str, int] = {}
        self.fail: dict[str, int] = {}
        self.hold: set[str] = set()
        self.held: list[tuple[asyncio.Future[Written], int]] = []
        self.room: dict[str, asyncio.Event] = {}
        self.waiting = 0

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> asyncio.Future[Written]:
        if self.refuse.get(topic):
            self.refuse[topic] -= 1
            raise RuntimeError(f"{topic} has 0 partitions")
        if key is not None and topic in self.room:
            self.waiting += 1
            await self.room[topic].wait()
            self.waiting -= 1
        fut: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
        if self.fail.get(topic):
            self.fail[topic] -= 1
            fut.set_exception(RuntimeError(f"request to {topic} timed out"))
            return fut
        self.sent.append((topic, key, value, partition))
        self.headers.append(list(headers or ()))
        if topic in self.hold:
            self.held.append((fut, len(self.sent)))
        else:
            fut.set_result(Written(offset=len(self.sent)))
        return fut

    def release(self) -> None:
        """Acknowledge every held write."""
        for fut, offset in self.held:
            fut.set_result(Written(offset=offset))
        self.held.clear()

    async def flush(self) -> None:
        """Every record sent so far is acknowledged: marked in the order of sends."""
        self.sent.append((FLUSHED, None, None, None))
        self.headers.append([])

    def to(self, topic: str) -> list[tuple[bytes | None, bytes | None]]:
        return [(k, v) for t, k, v, _ in self.sent if t == topic]


class Changelog:
    """A table's changelog topic, as far as its name (``ChangelogTopic``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def get_topic_name(self) -> str:
        return self.name


class Table(dict[str, V]):
    """A table as the agent uses it (``AgentTable``): a dict that is also its own store (``TableStore``)."""

    def __init__(self, name: str, value_serializer: str) -> None:
        super().__init__()
        self.data = self
        self.key_serializer = TextCodec()  # the app's tables' keys: text
        self.value_serializer = value_serializer
        self.changelog_topic = Changelog(f"{name}-changelog")

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        pass


class Consumer:
    """The consumer as the agent asks it (``AgentConsumer``): partition ends (high watermarks)."""

    def __init__(self, ends: dict[tuple[str, int], int]) -> None:
        self.ends = ends
        # Faust's committed offsets, which motwatch.streams.faust_internals.committed_offsets reads.
        self._committed_offset: dict[TP, int | None] = {}
        # Fetch responses so far: each ask finds a newer one (the ends are always current), unless
        # ``fetching`` is off (the last fetch's ends stand, however old).
        self.fetches = 0
        self.fetching = True

    def highwater(self, tp: TP) -> int | None:
        return self.ends.get(tp)

    def last_fetched(self, tp: TP) -> int | None:
        if self.fetching:
            self.fetches += 1
        return self.fetches

    def assignment(self) -> list[TP]:
        return [TP(t, p) for t, p in self.ends]

    async def position(self, tp: TP) -> int | None:
        return None  # not known: only the gauges' timer asks, and timers do not run here

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 0)

    def topic_partitions(self, topic: str) -> int | None:
        return None


class Signal:
    """A rebalance signal (``RebalanceSignal``): handlers connect; ``send`` calls them."""

    def __init__(self) -> None:
        self.handlers: list[Callable[..., Any]] = []

    def connect(self, fun: F) -> F:
        self.handlers.append(fun)  # type: ignore[arg-type]
        return fun

    async def send(self, partitions: set[TP]) -> None:
        for handler in self.handlers:
            await handler(None, partitions)


def _registered(fun: F) -> F:
    return fun


class FaustApp:
    """The Faust app as the agents use it (``AgentRuntime``): agents, timers and tasks are
    registered and never run; the tests call what they run."""

    def __init__(self, producer: Producer, consumer: Consumer) -> None:
        self.producer = producer
        self.consumer = consumer
        self.on_partitions_assigned = Signal()
        self.on_partitions_revoked = Signal()
        self.should_stop = False
        self.timers: dict[str, Callable[[], Any]] = {}

    async def sleep(self, n: float) -> None:
        pass

    def agent(self, channel: Any, *, name: str) -> Callable[[F], F]:
        return _registered

    def timer(self, interval: float, on_leader: bool = False, *, name: str) -> Callable[[F], F]:
        def registered(fun: F) -> F:
            self.timers[name] = fun
            return fun

        return registered

    def task(self, fun: F) -> F:
        return fun


class ByJourney:
    """The re-keyed topic (``RecordTopic``): what is sent to it goes to the producer."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def send(
        self, *, key: bytes | None, value: bytes, partition: int, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Written]:
        return await self.producer.send(self.topic, key, value, partition, None, headers)


class Shell:
    """Everything the agents share (``AgentApp``), over one producer."""

    def __init__(self, settings: Settings, producer: Producer) -> None:
        self.settings = settings
        self.producer = producer
        self.app = FaustApp(producer, Consumer({}))
        self.journey_inputs: object = None
        self.by_journey = ByJourney(producer, settings.by_journey_topic)
        self.journeys: Table[bytes] = Table("journeys", "raw")
        self.clocks: Table[bytes] = Table("clocks", "raw")
        self.metrics = Metrics()
        failures = self.metrics.write_failures
        self.deliveries = Deliveries(lambda stream, exc: failures.labels(stream).inc(), sleep=_no_pause)
        self.commit_guard: Callable[[], Any] | None = None

    def guard_commits(self, guard: Callable[[], Any]) -> None:
        self.commit_guard = guard

    async def commit(self) -> None:
        """What the consumer does for an offset commit: choose the offsets inside the guard, write
        what it staged, then commit."""
        assert self.commit_guard is not None
        async with self.commit_guard() as write_state:
            pass
        await write_state()
        self.producer.sent.append(("(committed)", None, None, None))

    def writes_failing(self) -> bool:
        return self.deliveries.failing

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        producer = self.producer
        await self.deliveries.send(
            topic, lambda: producer.send(topic, key, value, partition, timestamp, headers)
        )

    async def send_batch(
        self,
        topic: str,
        partition: int,
        records: list[tuple[bytes, bytes | None]],
        on_written: Callable[[int], None],
    ) -> None:
        for key, value in records:
            await self.send(topic, key, value, partition=partition)
        on_written(len(self.producer.sent) - 1)

    async def written(self, topic: str | None = None) -> None:
        """As the app's: every record sent so far (to ``topic``) acknowledged (sent again if it
        failed); then, if there were any, the producer marks the point."""
        if self.deliveries:
            await self.deliveries.settle(topic)
            await self.producer.flush()


async def _no_pause(seconds: float) -> None:
    """The pause between tries, not taken: the test's faults need no time to pass."""


@dataclass(frozen=True)
class Message:
    """Where a record was read (``AgentMessage``)."""

    topic: str
    partition: int
    offset: int
    timestamp: float | None = None

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass(frozen=True)
class Event:
    """A record as the agent's stream hands it out (``AgentEvent``)."""

    message: Message
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def _agent(
    producer: Producer,
    partitions: int = 1,
    direct: bool = True,
    lateness_s: float = 0,
    cache: int = 0,
    spill_mib: float = 64,
) -> tuple[journeys.JourneysAgent, Shell]:
    """The agent over stand-ins; ``cache``: changed journeys that may wait for the commit as
    objects (0: none, and none packed either); ``spill_mib``: packed ones that may."""
    settings = Settings(
        partitions=partitions,
        allowed_lateness_s=lateness_s,
        idle_advance_s=0,
        state_cache_journeys=cache,
        state_cache_mib=0 if cache == 0 else spill_mib,
    )
    mw = Shell(settings, producer)
    return _register(mw, direct), mw


def _register(mw: Shell, direct: bool = True) -> journeys.JourneysAgent:
    partitions = mw.settings.partitions if direct else mw.settings.partitions + 1
    return journeys.register(mw, input_topic.register(mw, partitions=partitions))


def _record(
    offset: int,
    value: bytes,
    key: bytes | None,
    headers: list[tuple[str, bytes]],
    topic: str = "touchpoints-by-journey",
    partition: int = 0,
) -> Event:
    return Event(Message(topic, partition, offset), key=key, value=value, headers=headers)


def _batches() -> list[list[Event]]:
    """Touchpoints, their source's progress, then two ticks far apart, the source restated by its
    reader between them: the second fires the rest."""
    lines = simulate(SimulationConfig(journeys=40, seed=3)).lines
    touchpoints = []
    for i, line in enumerate(lines):
        event = orjson.loads(line)
        key = (event.get("customer_id") or event["anonymous_id"]).encode()
        touchpoints.append(_record(i, line, key, []))
    # The source has read half way: the rest waits for the watermark, which the second tick moves on.
    by_time = sorted(lines, key=lambda line: orjson.loads(line)["occurred_at"])
    halfway = by_time[len(by_time) // 2]
    halfway_ms = int(datetime.fromisoformat(orjson.loads(halfway)["occurred_at"]).timestamp() * 1000)
    n = len(lines)
    source = Settings().touchpoints_topic
    progress = encode_body({"sources": {f"{source}:0": halfway_ms}})
    # The news is this worker's own: its reader has read the source that far (the event read
    # there again is a duplicate, dropped). News of a source read here is taken only so far.
    read = _record(n, halfway, journey_key_of(halfway).encode(), [], topic=source)
    return [
        touchpoints,
        [read, _record(n, progress, None, control_headers(SOURCE_PROGRESS))],
        [_record(n + 1, encode_body({"wall_ms": 1_000}), None, control_headers(TICK))],
        [
            _record(n + 2, progress, None, control_headers(SOURCE_PROGRESS)),
            _record(n + 3, encode_body({"wall_ms": 10**12}), None, control_headers(TICK)),
        ],
    ]


async def _run(producer: Producer) -> tuple[list[tuple[bytes | None, bytes | None]], Shell]:
    agent, mw = _agent(producer)
    topic = mw.settings.moments_topic
    *batches, last_tick = _batches()
    for batch in batches:
        await agent.process(batch)
    before_tick = len(producer.to(topic))
    await agent.process(last_tick)
    moments = producer.to(topic)
    assert len(moments) > before_tick, "the last tick should fire timeouts"
    return moments, mw


async def test_a_tick_sends_its_moments_even_when_the_clock_cannot_be_saved_at_first() -> None:
    """Writes that fail are tried again until the broker has them, the moments first."""
    expected, calm = await _run(Producer())
    faulty = Producer()
    faulty.refuse[CLOCKS_CHANGELOG] = 2
    faulty.fail[CLOCKS_CHANGELOG] = 2
    got, mw = await _run(faulty)
    assert got == expected
    assert mw.metrics.write_failures.labels(CLOCKS_CHANGELOG)._value.get() == 4
    assert PartitionClock.from_json(mw.clocks["0"]) == PartitionClock.from_json(calm.clocks["0"])


async def test_no_journey_is_written_while_a_moment_it_reported_is_unacknowledged() -> None:
    """Moment before state, with the moments' writes held back: the journeys wait for them."""
    producer = Producer()
    agent, mw = _agent(producer)
    *batches, last_tick = _batches()
    for batch in batches:
        await agent.process(batch)
    producer.sent.clear()
    producer.hold.add(mw.settings.moments_topic)
    tick = asyncio.ensure_future(agent.process(last_tick))
    await until(lambda: bool(producer.held))
    await run_steps(20)  # whatever else the agent could do, it does not write a journey
    assert not tick.done()
    assert producer.to(mw.settings.moments_topic)
    assert not producer.to("journeys-changelog")
    producer.hold.clear()
    producer.release()
    await tick
    topics = [topic for topic, *_ in producer.sent]
    assert topics.index("journeys-changelog") > topics.index(FLUSHED)


async def test_a_moment_whose_write_failed_is_sent_again_before_any_journey_is_written() -> None:
    """Moment before state, with the moments' first writes failing (a timed-out request)."""
    expected, _ = await _run(Producer())
    producer = Producer()
    agent, mw = _agent(producer)
    *batches, last_tick = _batches()
    for batch in batches:
        await agent.process(batch)
    producer.sent.clear()
    moments = mw.settings.moments_topic
    producer.fail[moments] = 3
    await agent.process(last_tick)
    topics = [topic for topic, *_ in producer.sent]
    assert set(topics[: topics.index(FLUSHED)]) == {moments}
    assert mw.metrics.write_failures.labels(moments)._value.get() == 3
    assert sorted(producer.to(moments)) == sorted(expected[-len(producer.to(moments)) :])


async def test_what_a_batch_sent_is_acknowledged_before_its_journeys_and_they_before_its_clock() -> None:
    """A journey marking a moment reported must not reach the changelog while the moment itself
    may still be lost (a SIGKILL): the restarted worker would find it reported and never send it.
    Nor a clock before the journeys it has seen: restored, it would find their events late."""
    producer = Producer()
    agent, mw = _agent(producer)
    *batches, last_tick = _batches()
    for batch in batches:
        await agent.process(batch)
    producer.sent.clear()
    await agent.process(last_tick)
    topics = [topic for topic, *_ in producer.sent]
    assert mw.settings.moments_topic in topics and "journeys-changelog" in topics
    first = topics.index(FLUSHED)
    second = topics.index(FLUSHED, first + 1)
    assert set(topics[:first]) == {mw.settings.moments_topic}
    assert set(topics[first + 1 : second]) == {"journeys-changelog"}
    third = topics.index(FLUSHED, second + 1)
    assert set(topics[second + 1 : third]) == {CLOCKS_CHANGELOG}
    assert third == len(topics) - 1  # the clock acknowledged too, before the batch is done


async def test_each_changed_journey_is_written_once_per_batch() -> None:
    producer = Producer()
    agent, mw = _agent(producer)
    touchpoints = _batches()[0]
    await agent.process(touchpoints)
    written = [k for k, _ in producer.to("journeys-changelog")]
    assert len(written) == len(set(written)) > 0
    assert set(mw.journeys) == {k.decode() for k in written}
    assert len(written) < len(touchpoints)
    assert PartitionClock.from_json(mw.clocks["0"]) == agent.engines.engines[0].clock  # saved with the batch


async def test_a_stored_clock_is_resumed_with_no_source_reported_since_its_last_tick() -> None:
    """A worker that takes a partition over resumes its stored clock, but not the last holder's
    reports since the last tick: those may predate records the new one has still to read
    (``PartitionClock.taken_over``)."""
    producer = Producer()
    agent, mw = _agent(producer)
    touchpoints = _batches()[0]
    await agent.process(touchpoints)
    stored = PartitionClock.from_json(mw.clocks["0"])
    stored.reported = [Settings().touchpoints_topic + ":0"]
    mw.clocks["0"] = stored.to_json()
    successor = _register(mw)
    await successor.process([])
    resumed = successor.engines.get(0).clock
    assert resumed.reported == [] and resumed.sources == stored.sources
    assert resumed.watermark_ms == stored.watermark_ms


async def test_a_journey_changed_by_many_batches_is_written_once_at_the_commit() -> None:
    producer = Producer()
    agent, mw = _agent(producer, cache=10_000)
    touchpoints = _batches()[0]
    half = len(touchpoints) // 2
    await agent.process(touchpoints[:half])
    await agent.process(touchpoints[half:])
    assert producer.to("journeys-changelog") == [] and producer.to(CLOCKS_CHANGELOG) == []
    await mw.commit()
    written = [k for k, _ in producer.to("journeys-changelog")]
    keys = {(e.key or b"").decode() for e in touchpoints}
    assert len(written) == len(set(written)) == len(keys)  # each once, though both batches changed many
    assert set(mw.journeys) == keys
    # written, acknowledged and the clock saved, all before the offsets are committed
    topics = [topic for topic, *_ in producer.sent]
    assert topics[-1] == "(committed)" and topics[-2] == FLUSHED
    assert topics.index(CLOCKS_CHANGELOG) < len(topics) - 2
    assert PartitionClock.from_json(mw.clocks["0"]) == agent.engines.engines[0].clock


async def test_past_the_cache_limit_a_batch_packs_its_journeys_to_wait_for_the_commit() -> None:
    """Past ``state_cache_journeys`` the changed journeys are packed, not written: the commit
    writes each once, the state of the last batch that changed it."""
    producer = Producer()
    touchpoints = _batches()[0]
    half = len(touchpoints) // 2
    first, second = touchpoints[:half], touchpoints[half:]
    agent, mw = _agent(producer, cache=len({e.key for e in first}) - 1)
    await agent.process(first)
    engine = agent.engines.engines[0]
    store = engine.store
    assert agent.engines.waiting() == 0 and producer.to("journeys-changelog") == []
    assert set(store.unsent) == {(e.key or b"").decode() for e in first}
    assert store.unsent_bytes == sum(len(v) for v in store.unsent.values()) > 0
    before = {key: JourneyState.pack(store[key]) for key in store.unsent}  # read back from the packed bytes
    assert before == store.unsent
    await agent.process(second)
    await mw.commit()
    written = producer.to("journeys-changelog")
    keys = {(e.key or b"").decode() for e in touchpoints}
    assert sorted(k.decode() for k, _ in written) == sorted(keys)  # each once
    assert {k.decode(): v for k, v in written} == {key: JourneyState.pack(store[key]) for key in keys}
    assert store.unsent == {} and store.unsent_bytes == 0
    assert dict(mw.journeys) == {k.decode(): v for k, v in written}


async def test_past_the_packed_limit_a_batch_writes_at_once() -> None:
    producer = Producer()
    touchpoints = _batches()[0]
    keys = {e.key for e in touchpoints}
    agent, _ = _agent(producer, cache=len(keys) - 1, spill_mib=1e-6)  # a few bytes
    await agent.process(touchpoints)
    assert len(producer.to("journeys-changelog")) == len(keys)
    assert agent.engines.engines[0].store.unsent == {}


async def test_no_batch_is_applied_while_offsets_are_committed() -> None:
    """A batch taken while the commit runs waits: its records must not be acknowledged into
    the offsets being committed with their journeys unwritten."""
    producer = Producer()
    agent, mw = _agent(producer, cache=10_000)
    touchpoints = _batches()[0]
    assert mw.commit_guard is not None
    async with mw.commit_guard():
        applying = asyncio.ensure_future(agent.process(touchpoints))
        await run_steps(20)
        assert not applying.done() and agent.engines.waiting() == 0
    await applying
    assert agent.engines.waiting() > 0


async def test_batches_are_applied_while_a_commit_writes_what_it_staged() -> None:
    """The commit stages the journeys changed so far and writes them without holding the agent:
    a batch taken meanwhile is applied at once, its changes wait for the next commit, and the
    changelog gets each journey's states in the order they were staged."""
    producer = Producer()
    agent, mw = _agent(producer, cache=10_000)
    touchpoints = _batches()[0]
    half = len(touchpoints) // 2
    first, second = touchpoints[:half], touchpoints[half:]
    await agent.process(first)
    staged_keys = {(e.key or b"").decode() for e in first}
    producer.hold.add("journeys-changelog")
    commit = asyncio.ensure_future(mw.commit())
    await until(lambda: bool(producer.held))
    applying = asyncio.ensure_future(agent.process(second))
    await until(applying.done)  # not held by the commit waiting for the broker
    assert not commit.done()
    assert {k.decode() for k, _ in producer.to("journeys-changelog")} == staged_keys
    assert agent.engines.waiting() == len({e.key for e in second})
    producer.hold.clear()
    producer.release()
    await commit
    topics = [topic for topic, *_ in producer.sent]
    assert topics[-1] == "(committed)"
    assert "journeys-changelog" not in topics[topics.index(CLOCKS_CHANGELOG) :]  # the second batch's wait
    await mw.commit()
    written = producer.to("journeys-changelog")
    assert len(written) == len(staged_keys) + len({e.key for e in second})
    last = {k.decode(): v for k, v in written}  # a changelog keeps each key's last record
    assert last == dict(mw.journeys)
    for key in last:
        assert last[key] == JourneyState.pack(agent.engines.engines[0].store[key])


async def test_what_was_staged_first_is_written_first_whoever_writes() -> None:
    """A commit stages journeys, and before its write starts a later flush (a rebalance, the cache
    limit) stages newer states of some of them: the flush writes both in the order staged, and the
    commit's write finds its part done. A changelog keeps each key's last record: the newest."""
    producer = Producer()
    agent, mw = _agent(producer, cache=10_000)
    touchpoints = _batches()[0]
    half = len(touchpoints) // 2
    first, second = touchpoints[:half], touchpoints[half:]
    assert {e.key for e in first} & {e.key for e in second}  # journeys both change
    await agent.process(first)
    assert mw.commit_guard is not None
    async with mw.commit_guard() as write_state:
        pass
    await agent.process(second)
    await agent.engines.flush()
    written = len(producer.to("journeys-changelog"))
    assert written == len({e.key for e in first}) + len({e.key for e in second})
    await write_state()
    assert len(producer.to("journeys-changelog")) == written
    last = dict(producer.to("journeys-changelog"))
    for key, value in last.items():
        assert value == JourneyState.pack(agent.engines.engines[0].store[key.decode()])


async def test_after_a_failed_write_the_next_batch_waits_until_everything_is_written() -> None:
    """Input stops where output cannot be written: once a moment's write failed, the agent takes
    no more records until it is written (commits alone would let input pile up meanwhile)."""
    producer = Producer()
    agent, mw = _agent(producer, cache=10_000)
    *batches, last_tick = _batches()
    for batch in batches:
        await agent.process(batch)
    moments = mw.settings.moments_topic
    producer.fail[moments] = 1
    producer.hold.add(moments)
    await agent.process(last_tick)  # its moments: the first write fails, the others are held
    await until(mw.writes_failing)
    sent = len(producer.to(moments))
    more = [_record(10**6, encode_body({"wall_ms": 10**12 + 1}), None, control_headers(TICK))]
    applying = asyncio.ensure_future(agent.process(more))
    await run_steps(20)  # it waits for the broker, not for time
    assert not applying.done()
    producer.hold.clear()
    producer.release()
    await applying
    assert len(producer.to(moments)) == sent + 1  # the failed one, sent again before the batch
    assert not mw.writes_failing() and not mw.deliveries


async def test_a_batch_stopped_midway_writes_what_it_changed() -> None:
    producer = Producer()
    agent, _ = _agent(producer, cache=10_000)
    touchpoints = _batches()[0]
    stop_after = 5

    async def handle_then_stop(event: Any, handle: Any = agent.handle) -> None:
        if event.message.offset == stop_after:
            raise asyncio.CancelledError
        await handle(event)

    agent.handle = handle_then_stop
    try:
        await agent.process(touchpoints)
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the batch was not stopped")
    written = {k.decode() for k, _ in producer.to("journeys-changelog")}
    assert written == {(e.key or b"").decode() for e in touchpoints[:stop_after]}


async def test_a_tick_that_cannot_be_sent_is_given_up_not_fatal(caplog) -> None:
    producer = Producer()
    _, mw = _agent(producer, partitions=2)
    producer.refuse[mw.settings.by_journey_topic] = 1
    await mw.app.timers["tick"]()  # raises nothing: a crashed timer stops the worker
    assert "could not tick the journey partitions" in caplog.text
    await mw.app.timers["tick"]()
    assert [p for topic, _, _, p in producer.sent if topic == mw.settings.by_journey_topic] == [0, 1]


async def test_journeys_rest_in_the_table_as_their_changelog_bytes() -> None:
    producer = Producer()
    agent, mw = _agent(producer)
    touchpoints, progress, *_ = _batches()
    await agent.process(touchpoints)
    await agent.process(progress)  # journeys whose events all came before it are applied
    last_written = dict(producer.to("journeys-changelog"))
    assert mw.journeys and all(isinstance(v, bytes) for v in mw.journeys.values())
    assert {k.encode(): v for k, v in mw.journeys.items()} == last_written
    store = agent.engines.stores[0]
    # Journeys with events waiting for the watermark stay objects too; the rest are unpacked afresh.
    assert store.hot and set(store.hot) < set(mw.journeys)
    for key, state in store.hot.items():
        assert state.pending and store[key] is state and state.pack() == mw.journeys[key]
    key = next(k for k in mw.journeys if k not in store.hot)
    first, second = store[key], store.get(key)
    assert first is not second and first.pack() == second.pack() == mw.journeys[key]
    assert not first.pending


async def test_open_timeouts_are_counted_without_unpacking_every_journey() -> None:
    agent, mw = _agent(Producer())
    touchpoints, progress, *_ = _batches()
    await agent.process(touchpoints)
    await agent.process(progress)  # the first half is applied: checkouts and chats are open

    def truth() -> int:
        return sum(JourneyState.unpack(v).open_timeouts() for v in mw.journeys.values())

    assert agent.engines.stores[0].total() == truth() > 0
    # A restarted worker: a fresh agent over the same table counts them as it restores.
    again = _register(mw)
    again.engines.get(0)
    assert again.engines.stores[0].total() == truth()
    # Deleting a journey forgets its count.
    store = again.engines.stores[0]
    key = max(store.counts, key=store.counts.__getitem__)
    expected = truth() - store.counts[key]
    del store[key]
    await store.flush()
    assert store.total() == truth() == expected


async def test_a_batch_that_read_input_announces_it_at_once() -> None:
    """What a batch read from the input topic reaches every journey partition right after the
    batch, not at the announcer's next turn (an hour away here), and without the agent waiting
    for it; a batch of the re-keyed topic alone, or one that read nothing new, sends nothing."""
    producer = Producer()
    mw = Shell(Settings(partitions=2, allowed_lateness_s=0, idle_advance_s=0), producer)
    topic = mw.settings.touchpoints_topic
    records = [
        _record(i, line, None, [], topic=topic, partition=i % 2)
        for i, line in enumerate(simulate(SimulationConfig(journeys=5, seed=4)).lines)
    ]
    mw.app.consumer = Consumer({(topic, p): 10**6 for p in (0, 1)})
    inputs = input_topic.InputTopic(mw, partitions=2)
    inputs.restate_every_s = float("inf")
    agent = journeys.register(mw, inputs)
    progress = control_headers(SOURCE_PROGRESS)

    def announced() -> list[int | None]:
        sent = zip(producer.sent, producer.headers, strict=True)
        out = [p for (_, _, _, p), headers in sent if headers == progress]
        producer.sent.clear()
        producer.headers.clear()
        return out

    announcer = asyncio.ensure_future(
        input_topic.repeat(mw.app, 3600, inputs.announce_progress, "announcing", inputs.wake)
    )
    await agent.take(records)
    assert inputs.wake.is_set() and announced() == [], "the agent does not wait for the news"
    await until(lambda: not inputs.wake.is_set())
    await until(lambda: len(producer.headers) > 0 and producer.headers[-1] == progress)
    assert sorted(announced()) == [0, 1]
    await agent.take(records[-1:])  # read again: no news
    await until(lambda: not inputs.wake.is_set())
    await run_steps(100)
    assert announced() == []
    tick = _record(10**6, encode_body({"wall_ms": 1_000}), None, control_headers(TICK))
    await agent.take([tick])
    assert not inputs.wake.is_set()
    mw.app.should_stop = True
    inputs.wake.set()
    await announcer


async def test_news_of_a_read_never_goes_out_ahead_of_the_touchpoint_it_sends_on() -> None:
    """The announcement timer may turn while a touchpoint waits for room in the producer: the
    news of its read waits for it, and reaches the touchpoint's journey partition after it (out
    first, it moved event time past the touchpoint before the touchpoint was applied there)."""
    producer, mw, inputs, agent, record = _rekeying()
    producer.room[mw.settings.by_journey_topic] = room = asyncio.Event()
    processing = asyncio.ensure_future(agent.process([record]))
    await until(lambda: producer.waiting == 1)
    announcing = asyncio.ensure_future(inputs.announce_progress())
    await run_steps(100)  # the timer's turn, as long as it likes
    room.set()
    await asyncio.gather(processing, announcing)
    touchpoint, news = _touchpoint_and_news(producer, mw)
    assert news, "the read is announced once the touchpoint is out"
    assert touchpoint < news[0]


def _rekeying() -> tuple[Producer, Shell, input_topic.InputTopic, journeys.JourneysAgent, Event]:
    """An agent reading an input topic not partitioned like its journeys (every touchpoint is
    re-keyed), and one touchpoint of that topic: (producer, app, input topic, agent, record)."""
    producer = Producer()
    mw = Shell(Settings(partitions=2, allowed_lateness_s=0, idle_advance_s=0), producer)
    topic = mw.settings.touchpoints_topic
    mw.app.consumer = Consumer({(topic, p): 10**6 for p in range(3)})
    inputs = input_topic.InputTopic(mw, partitions=3)
    inputs.restate_every_s = float("inf")
    agent = journeys.register(mw, inputs)
    line = simulate(SimulationConfig(journeys=1, seed=4)).lines[0]
    return producer, mw, inputs, agent, _record(0, line, None, [], topic=topic)


def _touchpoint_and_news(producer: Producer, mw: Shell) -> tuple[int, list[int]]:
    """Where, among the re-keyed topic's records, the touchpoint went, and the progress records
    sent to its journey partition."""
    sent = [
        (key, partition, headers)
        for (t, key, _, partition), headers in zip(producer.sent, producer.headers, strict=True)
        if t == mw.settings.by_journey_topic
    ]
    touchpoint = next(i for i, (key, _, _) in enumerate(sent) if key is not None)
    home = partition_for_key(sent[touchpoint][0].decode(), 2)  # the producer's choice, by its key
    progress = control_headers(SOURCE_PROGRESS)
    return touchpoint, [i for i, (_, at, headers) in enumerate(sent) if headers == progress and at == home]


async def test_news_of_a_read_waits_until_the_touchpoint_it_sent_on_is_written() -> None:
    """The re-keyed touchpoint's write fails (a batch that waited through an outage for a leader
    that never came back in time); the news of its read goes out only once it is written again,
    so it reaches the touchpoint's journey partition after it (out first, its event time passed
    the touchpoint: the chat's reply found the chat reported unanswered, then recovered)."""
    producer, mw, inputs, agent, record = _rekeying()
    producer.fail[mw.settings.by_journey_topic] = 1
    await agent.process([record])
    await until(mw.writes_failing)  # the failure is known once its callback ran
    await inputs.announce_progress()
    touchpoint, news = _touchpoint_and_news(producer, mw)
    assert news and touchpoint < news[0]
    assert not mw.writes_failing()


async def test_what_waits_in_each_partition_is_noted_when_the_news_is_taken() -> None:
    """Records reach an empty input partition while the announcement waits for a touchpoint to be
    handed on: the news says that partition is behind (noted before the wait, it said it had
    nothing to read, beside reads made after, and event time went past its records)."""
    producer = Producer()
    mw = Shell(Settings(partitions=2, allowed_lateness_s=0, idle_advance_s=0), producer)
    topic, by_journey = mw.settings.touchpoints_topic, mw.settings.by_journey_topic
    ends = {(topic, 0): 10**6, (topic, 1): 0, (topic, 2): 0}
    mw.app.consumer = Consumer(ends)
    inputs = input_topic.InputTopic(mw, partitions=3)
    inputs.restate_every_s = float("inf")
    agent = journeys.register(mw, inputs)
    await inputs.learn_first_offsets()
    line = simulate(SimulationConfig(journeys=1, seed=4)).lines[0]
    producer.room[by_journey] = room = asyncio.Event()
    processing = asyncio.ensure_future(agent.process([_record(0, line, None, [], topic=topic)]))
    await until(lambda: producer.waiting == 1)
    announcing = asyncio.ensure_future(inputs.announce_progress())
    await run_steps(100)
    ends[(topic, 1)] = 5  # records arrive at partition 1 meanwhile
    room.set()
    await asyncio.gather(processing, announcing)
    progress = control_headers(SOURCE_PROGRESS)
    bodies = [
        orjson.loads(v)
        for (_, _, v, _), h in zip(producer.sent, producer.headers, strict=True)
        if h == progress
    ]
    assert bodies, "the news went out"
    assert all(f"{topic}:1" in body["behind"] for body in bodies)


async def test_progress_is_announced_to_every_partition_only_when_a_source_has_news() -> None:
    """News: a source read further in event time, or caught up with (or fell behind) its partition's
    end; a partition nothing was read from yet is told about with every news; every partition read
    here is restated twice per tick interval."""
    producer = Producer()
    agent, mw = _agent(producer, partitions=3)
    topic = mw.settings.touchpoints_topic
    records = [
        _record(i, line, None, [], topic=topic, partition=i % 2)
        for i, line in enumerate(simulate(SimulationConfig(journeys=10, seed=4)).lines)
    ]
    last = {p: max(r.message.offset for r in records if r.message.partition == p) for p in (0, 1)}
    # Partition 0 has more records waiting than these; partition 1 ends with them; 2 is empty.
    ends = {(topic, 0): last[0] + 100, (topic, 1): last[1] + 1, (topic, 2): 0}
    mw.app.consumer = Consumer(ends)
    inputs = input_topic.InputTopic(mw, partitions=3)
    inputs.restate_every_s = float("inf")  # restated below, when the test says
    agent = journeys.register(mw, inputs)
    await inputs.learn_first_offsets()
    await agent.process(records)
    producer.sent.clear()
    producer.headers.clear()

    def announced() -> list[tuple[int | None, dict[str, Any]]]:
        """The progress records sent since the last call (re-keyed touchpoints aside)."""
        progress = control_headers(SOURCE_PROGRESS)
        sent = zip(producer.sent, producer.headers, strict=True)
        out = [(p, orjson.loads(v)) for (_, _, v, p), headers in sent if headers == progress]
        producer.sent.clear()
        producer.headers.clear()
        return out

    await inputs.announce_progress()
    latest: dict[str, int | None] = {f"{topic}:{p}": 0 for p in (0, 1)}
    for record in records:
        name = f"{topic}:{record.message.partition}"
        at = orjson.loads(record.value)["occurred_at"]
        latest[name] = max(latest[name] or 0, int(datetime.fromisoformat(at).timestamp() * 1000))
    latest[f"{topic}:2"] = None
    body = {"sources": latest, "behind": [f"{topic}:0"], "inputs": {topic: 3}}
    assert announced() == [(p, body) for p in range(3)]
    await inputs.announce_progress()
    assert announced() == [], "nothing new: nothing sent"
    await agent.process(records[-1:])  # read again: no progress
    await inputs.announce_progress()
    assert announced() == []
    # Partition 0 read to its end: no later event time, but news all the same.
    ends[(topic, 0)] = last[0] + 1
    await agent.process([next(r for r in records if r.message.offset == last[0])])
    await inputs.announce_progress()
    expected = {"sources": {f"{topic}:0": latest[f"{topic}:0"], f"{topic}:2": None}, "behind": []}
    assert announced() == [(p, expected) for p in range(3)]
    # Records arrive at partition 1, read to its end before: it is behind again, before any is read.
    ends[(topic, 1)] = last[1] + 5
    await inputs.announce_progress()
    expected = {"sources": {f"{topic}:1": latest[f"{topic}:1"], f"{topic}:2": None}, "behind": [f"{topic}:1"]}
    assert announced() == [(p, expected) for p in range(3)]
    # Twice per tick interval every partition read here is restated, news or not.
    await inputs.announce_progress()
    assert announced() == []
    inputs.restate_every_s = 0
    await inputs.announce_progress()
    body = {"sources": latest, "behind": [f"{topic}:1"]}
    assert announced() == [(p, body) for p in range(3)]


async def test_the_repeated_action_survives_a_failure_and_ends_with_the_app(caplog) -> None:
    calls: list[int] = []
    waits: list[float] = []

    class App:
        """The app as the repeated action asks it (``Sleeper``)."""

        should_stop = False

        async def sleep(self, n: float) -> None:  # which the loop awaits between runs
            waits.append(n)

    app = App()

    async def action() -> None:
        calls.append(len(calls))
        if len(calls) == 2:
            raise RuntimeError("broker gone")
        if len(calls) == 4:
            app.should_stop = True

    await asyncio.wait_for(input_topic.repeat(app, 0.02, action, "announcing"), 5)
    assert calls == [0, 1, 2, 3]
    assert waits == [0.02] * 4
    assert "announcing failed" in caplog.text and "broker gone" in caplog.text


@pytest.mark.parametrize("fetched", ["all", "up_to_the_read"])
async def test_a_source_catching_up_on_a_backlog_holds_event_time_back(fetched: str) -> None:
    """One source partition is read in full while another still has most of its records waiting:
    ticks in between must not treat the waiting one as idle, or its events come in late.

    ``up_to_the_read``: the consumer's last fetch of the waiting partition
    ended where the agent stopped reading it, and it has made none since (its
    high watermark is the next offset, and as old as the read): not the word
    that nothing waits there.
    """
    producer = Producer()
    # One journey partition, no idle advance, a day of lateness: the sources span three weeks.
    _, mw = _agent(producer, lateness_s=86_400)
    touchpoints = mw.settings.touchpoints_topic
    lines = simulate(SimulationConfig(journeys=60, seed=5)).lines
    by_source: dict[int, list[bytes]] = {0: [], 1: []}
    for line in lines:
        event = orjson.loads(line)
        by_source[partition_for_key(event.get("customer_id") or event["anonymous_id"], 2)].append(line)
    ends = {(touchpoints, p): len(records) for p, records in by_source.items()}
    mw.app.consumer = Consumer(ends)
    source = input_topic.InputTopic(mw, partitions=2)
    agent = journeys.register(mw, source)
    await source.learn_first_offsets()
    delivered = 0
    offsets = iter(range(10**6))

    async def read(partition: int, start: int, stop: int) -> None:
        """Records of one source partition as the worker reads them, a few at a time, each
        batch followed by what it sent on."""
        for first in range(start, stop, 5):
            chunk = by_source[partition][first : min(first + 5, stop)]
            await agent.process(
                [
                    _record(offset, line, None, [], topic=touchpoints, partition=partition)
                    for offset, line in enumerate(chunk, start=first)
                ]
            )
            await source.announce_progress()
            await deliver()

    async def deliver() -> None:
        """The re-keyed topic's new records to the agent, until it sends no more (identifies
        send records on to the journeys they join)."""
        nonlocal delivered
        while delivered < len(producer.sent):
            sent = list(zip(producer.sent[delivered:], producer.headers[delivered:], strict=True))
            delivered = len(producer.sent)
            await agent.process(
                [
                    _record(next(offsets), value, key, headers)
                    for (topic, key, value, _), headers in sent
                    if topic == mw.settings.by_journey_topic
                ]
            )

    async def tick(wall_ms: int) -> None:
        """The reader restates every partition it reads (as it does twice per tick interval),
        then the tick."""
        source.restated_at = -float("inf")
        await source.announce_progress()
        await deliver()
        body = encode_body({"wall_ms": wall_ms})
        await agent.process([_record(next(offsets), body, None, control_headers(TICK))])

    third = len(by_source[1]) // 3
    if fetched == "up_to_the_read":
        mw.app.consumer.ends[(touchpoints, 1)] = third
        mw.app.consumer.fetching = False
    await read(1, 0, 3)
    await read(0, 0, 3)
    await read(1, 3, third)  # source 1 has most of its records still to read
    await read(0, 3, len(by_source[0]))  # source 0: all of them, weeks ahead in event time
    await tick(1_000)
    await tick(2_000)  # source 1 made no progress since the last tick, but it is behind
    await tick(3_000)
    mw.app.consumer.ends[(touchpoints, 1)] = len(by_source[1])
    mw.app.consumer.fetching = True
    await read(1, third, len(by_source[1]))
    engine = agent.engines.engines[0]
    assert engine.stats["late"] == 0
    got = [v for k, v in producer.to(mw.settings.moments_topic)]
    got += [m.to_json() for m in engine.advance(2**62).moments]
    expected: list[bytes] = []
    run_detect(lines, mw.settings, lambda m: expected.append(m.to_json()), lambda r: None, flush=True)
    assert sorted(got) == sorted(expected)


async def test_stored_records_that_cannot_be_read_are_set_aside_and_start_afresh() -> None:
    """Poison state: a journey state and a clock that do not read go to the quarantine topic
    (acknowledged before anything replaces them), are counted, and their journey and clock
    start afresh; the worker goes on with every other journey as if nothing happened."""
    expected, _ = await _run(Producer())
    producer = Producer()
    agent, mw = _agent(producer)
    touchpoints, *rest = _batches()
    poisoned = touchpoints[0].key.decode()
    mw.journeys[poisoned] = b"\x01not a journey state"
    mw.journeys["someone-else"] = b'{"v": 99, "key": "someone-else"}'  # a newer motwatch's
    mw.clocks["0"] = b"\xff{torn"
    not_text = b"\xffkey".decode("utf-8", "surrogateescape")  # as the table's key codec reads it
    mw.journeys[not_text] = JourneyState("stored-as-key").pack()
    await agent.process(touchpoints)
    assert JourneyState.unpack(mw.journeys[poisoned]).key == poisoned  # started afresh
    for batch in rest:
        await agent.process(batch)
    quarantine = mw.settings.quarantine_topic
    assert sorted(producer.to(quarantine)) == sorted(
        [
            (poisoned.encode(), b"\x01not a journey state"),
            (b"someone-else", b'{"v": 99, "key": "someone-else"}'),
            (b"0", b"\xff{torn"),
            (b"\xffkey", JourneyState("stored-as-key").pack()),
        ]
    )
    tables = sorted(
        dict(h)["mw-table"]
        for (t, *_), h in zip(producer.sent, producer.headers, strict=True)
        if t == quarantine
    )
    assert tables == [b"clocks", b"journeys", b"journeys", b"journeys"]
    assert mw.metrics.quarantined.labels("journeys")._value.get() == 3
    assert mw.metrics.quarantined.labels("clocks")._value.get() == 1
    topics = [t for t, *_ in producer.sent]
    assert topics.index("journeys-changelog") > topics.index(FLUSHED) > topics.index(quarantine)
    assert (b"someone-else", None) in producer.to("journeys-changelog")  # deleted: met once only
    assert "someone-else" not in mw.journeys
    assert sorted(v for _, v in producer.to(mw.settings.moments_topic)) == sorted(v for _, v in expected)


async def test_records_still_buffered_when_partitions_are_given_up_are_left_to_their_next_reader() -> None:
    """Between giving partitions up and getting new ones, a batch is not applied: it would rebuild
    engines of partitions another worker now holds and write their journeys after it read them."""
    producer = Producer()
    agent, mw = _agent(producer)
    touchpoints = _batches()[0]
    await agent.process(touchpoints[:50])
    assert agent.engines.engines
    await mw.app.on_partitions_revoked.send({TP("touchpoints-by-journey", 0)})
    assert not agent.engines.engines
    sent = len(producer.sent)
    await agent.process(touchpoints[50:100])
    assert not agent.engines.engines and len(producer.sent) == sent
    await mw.app.on_partitions_assigned.send({TP("touchpoints-by-journey", 0)})
    await agent.process(touchpoints[50:100])
    assert agent.engines.engines and len(producer.sent) > sent


async def test_the_gauges_skip_a_partition_a_rebalance_took_while_they_asked() -> None:
    """aiokafka raises for the position of a partition no longer assigned; raised from the timer,
    it crashed the worker. The partitions still held are gauged."""
    producer = Producer()
    _, mw = _agent(producer, partitions=2)
    topic = mw.settings.touchpoints_topic
    taken = TP(topic, 1)

    class Rebalanced(Consumer):
        async def position(self, tp: TP) -> int | None:
            if tp == taken:
                raise RuntimeError(f"Partition {tp} is not assigned")
            return 3

    mw.app.consumer = Rebalanced({(topic, 0): 10, (topic, 1): 10})
    await mw.app.timers["journey_gauges"]()
    lags = {
        s.labels["partition"]: s.value
        for m in mw.metrics.registry.collect()
        for s in m.samples
        if s.name == "motwatch_consumer_lag_messages"
    }
    assert lags == {"0": 7.0}
