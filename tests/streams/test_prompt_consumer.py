"""The consumer that delivers records without tasks gives the outcomes Faust's ``wait_first`` gives."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka.protocol.commit import OffsetFetchResponse_v3
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from motwatch.settings import Settings
from motwatch.streams.app import create_app
from motwatch.streams.consumer import PromptConsumer, guard_commits
from tests.event_loop import until


def make_consumer() -> Any:
    """A worker's consumer, made on the running loop (its tasks run there), never started."""
    made = create_app(Settings()).app.consumer
    assert isinstance(made, PromptConsumer)
    return made


async def test_a_delivery_that_need_not_wait_is_done_at_once() -> None:
    consumer = make_consumer()
    steps: list[str] = []

    async def deliver() -> int:
        steps.append("delivered")
        return 7

    delivery, other = deliver(), consumer.suspend_flow.wait()
    outcome = consumer.wait_first(delivery, other)
    # Nothing was scheduled: one step of the awaiting coroutine finishes it.
    with pytest.raises(StopIteration) as finished:
        outcome.send(None)
    result = finished.value.value
    assert result.done == [delivery] and result.results == [7] and not result.stopped
    assert steps == ["delivered"]
    assert inspect.getcoroutinestate(other) == inspect.CORO_CLOSED


async def test_a_delivery_that_waits_is_resumed_and_reported_as_itself() -> None:
    consumer = make_consumer()
    gate, at_gate = asyncio.Event(), asyncio.Event()
    steps: list[str] = []

    async def deliver() -> int:
        steps.append("started")
        at_gate.set()
        await gate.wait()
        steps.append("resumed")
        await asyncio.sleep(0)  # suspends once more: the resumed delivery is driven to its end
        return 8

    delivery = deliver()
    waiting = asyncio.ensure_future(consumer.wait_first(delivery, consumer.suspend_flow.wait()))
    await asyncio.wait_for(at_gate.wait(), 5)
    assert steps == ["started"] and not waiting.done()
    gate.set()
    result = await asyncio.wait_for(waiting, 5)
    assert steps == ["started", "resumed"]
    assert result.done == [delivery] and result.results == [8] and not result.stopped


async def test_suspending_the_flow_abandons_a_waiting_delivery() -> None:
    consumer = make_consumer()
    blocked, cancelled = asyncio.Event(), asyncio.Event()

    async def deliver() -> None:
        try:
            blocked.set()
            await asyncio.Event().wait()  # a stream buffer that never drains
        except asyncio.CancelledError:
            cancelled.set()
            raise

    suspended = consumer.suspend_flow.wait()
    waiting = asyncio.ensure_future(consumer.wait_first(deliver(), suspended))
    await asyncio.wait_for(blocked.wait(), 5)
    consumer.suspend_flow.set()
    result = await asyncio.wait_for(waiting, 5)
    assert result.done == [suspended]
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_errors_of_a_delivery_reach_the_fetch_loop_either_way() -> None:
    consumer = make_consumer()

    async def fails_at_once() -> None:
        raise ValueError("bad at once")

    other = consumer.suspend_flow.wait()
    with pytest.raises(ValueError, match="bad at once"):
        await consumer.wait_first(fails_at_once(), other)
    assert inspect.getcoroutinestate(other) == inspect.CORO_CLOSED

    async def fails_later() -> None:
        await asyncio.sleep(0)  # suspends: the error comes from the resumed delivery
        raise ValueError("bad later")

    with pytest.raises(ValueError, match="bad later"):
        await consumer.wait_first(fails_later(), consumer.suspend_flow.wait())


async def test_a_stopped_consumer_reports_stopped_as_faust_does() -> None:
    consumer = make_consumer()
    consumer._stopped.set()

    async def deliver() -> int:
        await asyncio.sleep(0)  # suspends: a delivery still under way when the consumer stops
        return 1

    result = await consumer.wait_first(deliver(), consumer.suspend_flow.wait())
    assert result.stopped and result.done == []


class ScriptedThread:
    """The consumer thread's seeks, scripted: committed offsets given (what aiokafka found, and
    what the group coordinator answers when asked again), seeks recorded."""

    def __init__(
        self,
        committed: dict[Any, int | None],
        pause: asyncio.Event | None = None,
        asked_again: dict[Any, int] | None = None,
    ) -> None:
        self.committed = committed
        self.pause = pause
        self.asked_again = asked_again or {}
        self.to_beginning: list[Any] = []
        self.sought: dict[Any, int] = {}
        # Set once a seek has reached the thread.
        self.seeking = asyncio.Event()
        self._coordinator = self

    async def seek_to_committed(self) -> dict[Any, int | None]:
        self.seeking.set()
        if self.pause is not None:
            await self.pause.wait()
        return dict(self.committed)

    async def seek_to_beginning(self, *partitions: Any) -> None:
        self.to_beginning.extend(partitions)

    def seek(self, tp: Any, offset: int) -> None:
        self.sought[tp] = offset

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        return await fun(*args)

    def _ensure_consumer(self) -> ScriptedThread:
        return self  # aiokafka's consumer: its seeks and its group coordinator, scripted here too

    # The group coordinator, asked again for what aiokafka found nothing committed for.
    group_id = "motwatch"

    async def ensure_coordinator_known(self) -> None:
        return None

    async def _send_req(self, request: Any) -> Any:
        (topic, partitions), *_ = vars(request)["_partitions"]
        answers = [(p, self.asked_again.get(TP(topic, p), -1), "", 0) for p in partitions]
        return OffsetFetchResponse_v3(0, [(topic, answers)], 0)


class ScriptedFetches(PromptConsumer):
    """The worker's consumer with its fetches given instead of read from a broker."""

    def __init__(self, *args: Any, fetches: list[dict[Any, list[Any]]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetches = fetches

    async def _wait_next_records(self, timeout: float) -> Any:
        records = self.fetches.pop(0)
        return records, set(records)

    def highwater(self, tp: Any) -> int:
        return 100


def scripted(fetches: list[dict[Any, list[Any]]], thread: ScriptedThread) -> ScriptedFetches:
    app = create_app(Settings()).app
    consumer = ScriptedFetches(
        app.transport,
        callback=app.consumer.callback,
        on_partitions_revoked=app.consumer._on_partitions_revoked,
        on_partitions_assigned=app.consumer._on_partitions_assigned,
        fetches=fetches,
    )
    consumer._thread = thread
    return consumer


def _records(partition: int, offsets: range) -> list[ConsumerRecord]:
    return [ConsumerRecord("touchpoints", partition, o, 0, 0, None, b"v", None, 0, 1, ()) for o in offsets]


async def test_a_partition_with_no_committed_offset_is_sought_to_its_first_record() -> None:
    """aiokafka seeks only partitions committed above zero; the others go back to their start
    too, or what was fetched from them before the seek would never be fetched again."""
    changelog = create_app(Settings()).app.tables.changelog_topics
    committed = {TP("touchpoints", 0): None, TP("touchpoints", 1): 0, TP("touchpoints", 2): 7}
    committed |= {TP(topic, 0): None for topic in changelog}
    assert changelog, "the worker's tables have changelogs, which recovery seeks itself"
    thread = ScriptedThread(committed)
    consumer = scripted([], thread)
    # The consumer's own app has the same tables as the one the changelog names came from.
    assert await consumer.seek_to_committed() == committed
    assert sorted(thread.to_beginning) == [TP("touchpoints", 0), TP("touchpoints", 1)]
    assert thread.sought == {}


async def test_a_partition_aiokafka_found_nothing_committed_for_is_asked_again() -> None:
    """A coordinator that moved answers with an error aiokafka takes for "nothing committed": the
    partitions asked again start at their committed offsets, not at their first records."""
    committed = {TP("touchpoints", 0): None, TP("touchpoints", 1): None, TP("touchpoints", 2): 7}
    thread = ScriptedThread(committed, asked_again={TP("touchpoints", 0): 812})
    consumer = scripted([], thread)
    got = await consumer.seek_to_committed()
    assert got == {TP("touchpoints", 0): 812, TP("touchpoints", 1): None, TP("touchpoints", 2): 7}
    assert thread.sought == {TP("touchpoints", 0): 812}
    assert thread.to_beginning == [TP("touchpoints", 1)]


async def test_nothing_is_handed_out_from_when_a_seek_begins_until_faust_resumes_the_flow() -> None:
    """Recovery seeks with the flow on, then clears the streams' buffers and resumes it: a
    record handed out in between would be cleared after its partition's position moved past."""
    pause = asyncio.Event()
    fetch = {TP("touchpoints", p): _records(p, range(10, 14)) for p in (0, 1)}
    thread = ScriptedThread({TP("touchpoints", 0): 10}, pause)
    consumer = scripted([fetch, dict(fetch)], thread)
    consumer.resume_flow()
    handed: list[tuple[int, int]] = []
    seeking: asyncio.Task[Any] | None = None
    async for tp, message in consumer.getmany(timeout=1.0):
        handed.append((tp.partition, message.offset))
        if len(handed) == 2:
            seeking = asyncio.ensure_future(consumer.perform_seek())
            await asyncio.wait_for(thread.seeking.wait(), 5)  # the seek waits on the thread
    assert len(handed) == 2 and seeking is not None and not seeking.done()
    assert not consumer.flow_active
    pause.set()
    await seeking
    assert not consumer.flow_active, "Faust resumes it, after clearing the buffers"
    assert consumer._read_offset[TP("touchpoints", 0)] == 10
    consumer.resume_flow()
    assert len([m async for _, m in consumer.getmany(timeout=1.0)]) == 8


async def test_a_seek_that_fails_leaves_the_flow_as_it_was() -> None:
    class Failing(ScriptedThread):
        async def seek_to_committed(self) -> dict[Any, int | None]:
            raise RuntimeError("the broker went away")

    consumer = scripted([], Failing({}))
    consumer.resume_flow()
    with pytest.raises(RuntimeError):
        await consumer.perform_seek()
    assert consumer.flow_active


class FetchingThread(ScriptedThread):
    """The consumer thread's fetch, scripted: it waits there until let go, and brings what it is
    given; the partitions it was asked for are kept."""

    def __init__(self, assigned: set[Any]) -> None:
        super().__init__({})
        self.assigned = assigned
        self.asked: Any = None
        self.fetching, self.let_go = asyncio.Event(), asyncio.Event()
        self.brings: dict[Any, list[ConsumerRecord]] = {}

    async def getmany(self, active_partitions: Any, timeout: float) -> dict[Any, list[ConsumerRecord]]:
        self.asked = active_partitions
        self.fetching.set()
        await self.let_go.wait()
        self.let_go.clear()
        return self.brings

    def assignment(self) -> set[Any]:
        return set(self.assigned)


def _changelog_partition() -> TP:
    return TP(sorted(create_app(Settings()).app.tables.changelog_topics)[0], 0)


async def test_a_changelog_s_records_that_faust_drops_are_fetched_again() -> None:
    """Faust drops what a fetch brings back to a stopped flow, or from a partition no longer
    active (a rebalance emptied the set the fetch was given, which aiokafka takes for every
    partition), and seeks only the streams' partitions back: a changelog partition is sought
    back to the first record it brought; with the flow on and the partition active, nothing is."""
    stream, changelog = TP("touchpoints", 0), _changelog_partition()
    thread = FetchingThread({stream, changelog})
    consumer = scripted([], thread)
    consumer.resume_flow()
    records = [ConsumerRecord(changelog.topic, 0, o, 0, 0, b"k", b"v", None, 1, 1, ()) for o in (5, 6)]
    thread.brings = {stream: _records(0, range(3)), changelog: records}
    thread.let_go.set()
    await consumer._getmany({stream, changelog}, 1.0)
    assert thread.sought == {}
    fetch = asyncio.ensure_future(consumer._getmany({stream, changelog}, 1.0))
    await asyncio.wait_for(thread.fetching.wait(), 5)
    consumer.stop_flow()  # a rebalance begins
    thread.let_go.set()
    await fetch
    assert thread.sought == {changelog: 5}
    assert consumer._read_offset[changelog] == 5
    thread.sought.clear()
    consumer.resume_flow()
    active = {stream, changelog}
    fetch = asyncio.ensure_future(consumer._getmany(active, 1.0))
    await asyncio.wait_for(thread.fetching.wait(), 5)
    active.clear()  # the rebalance empties Faust's set while the fetch waits
    thread.let_go.set()
    await fetch
    assert thread.sought == {changelog: 5}


def _fetched(generation: int | None, offset: int) -> Any:
    from faust.types.tuples import Message

    return Message(
        "touchpoints",
        0,
        offset,
        0.0,
        0,
        None,
        b"k",
        b"v",
        None,
        tp=TP(Settings().touchpoints_topic, 0),
        generation_id=generation,
    )


def test_a_record_fetched_in_an_earlier_generation_counts_for_no_commit() -> None:
    """Skipped between a revocation and the next assignment, then acknowledged: were its offset
    counted, the next commit could pass records that are being read again."""
    consumer = make_consumer()
    consumer.app.consumer_generation_id = 5
    consumer.app.topics.acks_enabled_for = lambda topic: True  # as once the app has started
    consumer._committed_offset[TP(Settings().touchpoints_topic, 0)] = 10
    stale, current = _fetched(4, 10), _fetched(5, 11)
    assert consumer.ack(stale) is False and stale.acked
    assert consumer.ack(current) is True
    assert consumer._acked[TP(Settings().touchpoints_topic, 0)] == [11]
    # Without a generation (no group), Faust's own ack.
    assert consumer.ack(_fetched(None, 12)) is True


async def test_a_commit_covers_what_was_acknowledged_when_its_state_was_staged() -> None:
    """The offsets are chosen inside the commit guard; records acknowledged while the staged
    state is being written (the agent applies batches meanwhile) wait for the next commit, and
    no offset is committed before the write is done."""
    consumer = make_consumer()
    consumer.app.topics.acks_enabled_for = lambda topic: True
    tp = TP(Settings().touchpoints_topic, 0)
    consumer._committed_offset[tp] = 10
    consumer.assignment = lambda: {tp}
    committed: list[dict[TP, int]] = []
    steps: list[str] = []

    async def commit(offsets: dict[TP, int]) -> bool:
        committed.append(dict(offsets))
        steps.append("committed")
        return True

    consumer._commit = commit
    release = asyncio.Event()

    async def write_state() -> None:
        steps.append("writing")
        assert consumer.ack(_fetched(None, 13))  # a batch applied while the state is written
        await release.wait()
        steps.append("written")

    @asynccontextmanager
    async def guard() -> AsyncIterator[Callable[[], Awaitable[None]]]:
        steps.append("guard")
        yield write_state
        steps.append("guard left")

    guard_commits(consumer.app, guard)
    for offset in (11, 12):
        assert consumer.ack(_fetched(None, offset))
    commit_task = asyncio.ensure_future(consumer.force_commit())
    await until(lambda: "writing" in steps, steps=1000)
    assert not committed
    release.set()
    assert await commit_task
    assert steps == ["guard", "guard left", "writing", "written", "committed"]
    assert committed == [{tp: 13}]  # 11 and 12: what was acknowledged when the guard was entered
    assert consumer._acked[tp] == [13]


async def test_the_count_of_acknowledged_records_starts_a_commit_beside_the_fetch_loop() -> None:
    """The record that brings the count to ``broker_commit_every`` starts a commit and returns at
    once (Faust's fetch loop awaited it, delivering nothing meanwhile); while it runs, reaching the
    count again starts no second one; once it is done, the next count starts the next."""
    consumer = create_app(Settings(commit_every_events=3)).app.consumer
    assert consumer.commit_every == 3 and consumer._commit_every is None
    consumer.app.topics.acks_enabled_for = lambda topic: True
    release, started = asyncio.Event(), []

    async def commit(topics: Any = None, start_new_transaction: bool = True) -> bool:
        started.append(len(started))
        await release.wait()
        return True

    consumer.commit = commit
    offsets = iter(range(100))
    for _ in range(2):
        assert consumer.ack(_fetched(None, next(offsets)))
    await asyncio.sleep(0)
    assert started == [] and consumer.counted_commit is None
    assert consumer.ack(_fetched(None, next(offsets)))  # the third: returns before the commit is done
    await until(lambda: started == [0])
    for _ in range(4):
        assert consumer.ack(_fetched(None, next(offsets)))
    await asyncio.sleep(0)
    assert started == [0]  # the first still runs
    release.set()
    await until(consumer.counted_commit.done)
    for _ in range(3):
        assert consumer.ack(_fetched(None, next(offsets)))
    await until(lambda: started == [0, 1])
    await until(consumer.counted_commit.done)


async def test_the_count_of_acknowledged_records_starts_from_the_last_commit_of_any_kind() -> None:
    """A commit the timer started resets the count: the next counted commit comes
    ``broker_commit_every`` records after it, not a few records later."""
    consumer = create_app(Settings(commit_every_events=3)).app.consumer
    consumer.app.topics.acks_enabled_for = lambda topic: True
    tp = TP(Settings().touchpoints_topic, 0)
    consumer.assignment = lambda: {tp}
    started: list[int] = []

    async def counted(topics: Any = None, start_new_transaction: bool = True) -> bool:
        started.append(1)
        return True

    async def commit(offsets: dict[TP, int]) -> bool:
        return True

    @asynccontextmanager
    async def guard() -> AsyncIterator[Callable[[], Awaitable[None]]]:
        async def write_state() -> None:
            pass

        yield write_state

    consumer._commit = commit
    guard_commits(consumer.app, guard)
    for offset in (0, 1):
        assert consumer.ack(_fetched(None, offset))
    assert await consumer.force_commit()  # the timer's commit
    consumer.commit = counted
    for offset in (2, 3):
        assert consumer.ack(_fetched(None, offset))
    await asyncio.sleep(0)
    assert started == []  # two records since the last commit, not four
    assert consumer.ack(_fetched(None, 4))
    await until(lambda: started == [1])
