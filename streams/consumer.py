"""A Faust consumer that hands each record to the streams without four tasks, and loses none.

Faust's fetch loop delivers every record with ``wait_first(deliver, flow
suspended)``, which wraps the delivery, the flow-suspension wait and the
consumer's stop and crash events in four tasks, waits for the first, and
cancels the other three: about a dozen event-loop steps per record, a
quarter of a busy worker's CPU. Delivery almost never has to wait (the
stream's buffer has room, flow is not suspended), so this consumer runs it
at once, and falls back to Faust's way, with the delivery resumed where it
stopped, only when it does have to wait. Either way the outcome is the one
``wait_first`` gives: the delivery finished first, or something else did.

Every offset commit goes through the guard the agents gave
(:func:`guard_commits`): inside it, where no batch is being applied, the
offsets to commit are chosen from the records acknowledged so far, and the
journey agent takes the journeys it changed since the last commit; then,
with the agent applying batches again, those journeys are written, and only
then the offsets they cover are committed. No offset is committed before the
state it covers is written, state is written once per commit, not once per
batch, and the agent does not wait for the broker while it is. The commit
that a count of acknowledged records calls for (``broker_commit_every``)
runs beside the fetch loop, as the timer's does, not inside it: Faust's
loop delivered nothing until its count's commit was done.

When a worker's partitions are assigned, Faust's recovery resumes them and
seeks them to their committed offsets while its fetcher runs, then clears
the streams' buffers and resumes the flow. Two things lost records there:
aiokafka seeks only a partition whose committed offset is above zero, so
the records of one with none (a worker killed before its first commit)
fetched before the clear were never fetched again; and records fetched from
the new positions could be handed out before the clear. This consumer seeks
a partition with no committed offset to its first record, and stops the
flow for the seek, so nothing is handed out until Faust resumes it after
the clear. A changelog's records that a fetch brings back to a stopped
flow, which Faust drops, are fetched again.
"""

from __future__ import annotations

import asyncio
import logging
import types
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP
from mode.services import WaitResults

from motwatch.streams.committed import committed_offsets
from motwatch.streams.faust_internals import (
    acknowledged_since_commit,
    aiokafka_consumer,
    commit_offsets,
    committable_offsets,
    consumer_thread,
    group_coordinator,
    has_position,
    last_fetched,
    take_over_commit_count,
)

log = logging.getLogger("motwatch.consumer")

# Entered while the offsets to commit are chosen; what it gives writes the state they cover.
CommitGuard = Callable[[], AbstractAsyncContextManager[Callable[[], Awaitable[None]]]]
# The guard of each app's commits (an app has one consumer, created when it starts).
_GUARDS: weakref.WeakKeyDictionary[Any, CommitGuard] = weakref.WeakKeyDictionary()


def guard_commits(app: Any, guard: CommitGuard) -> None:
    """Every offset commit of ``app``'s consumer goes through ``guard()``: entered before the
    offsets to commit are chosen and left right after; what it gives is awaited before they
    are committed."""
    _GUARDS[app] = guard


class PromptConsumer(Consumer):
    """Faust's aiokafka consumer, with deliveries that need not wait run without tasks, and
    seeks that lose no record.

    The methods it overrides are hooks of Faust's fetch loop and recovery, listed in
    ``streams/faust_internals.py`` (``OVERRIDDEN``) with the signatures they must keep."""

    def __post_init__(self) -> None:
        """Faust's commit every ``broker_commit_every`` acknowledged records, in a task of its own.

        Faust's fetch loop commits on that count itself and delivers nothing
        until the commit is done, which writes the state it covers and waits
        for the broker: the agent ran dry meanwhile. Here the acknowledgement
        that reaches the count starts the commit beside the fetch loop (one
        at a time; the timer's commit, ``broker_commit_interval``, is Faust's).
        """
        super().__post_init__()
        self.commit_every = take_over_commit_count(self)
        self.counted_commit: asyncio.Future[Any] | None = None

    def last_fetched(self, tp: TP) -> int | None:
        """When the fetch response that told ``tp``'s high watermark came (wall-clock ms); None
        before the first one. Unchanged since a record was read: no fetch made after the read has
        answered, and the high watermark may be older than records that arrived since."""
        return last_fetched(self, tp)

    def verify_event_path(self, now: float, tp: TP) -> None:
        """Faust's check that a partition's records flow, for partitions that have a position.

        Faust reads aiokafka's position of the partition, which asserts there
        is one; a partition assigned a moment ago has none until it is sought,
        and a check falling in between crashed the consumer, and the worker
        with it, in a rebalance.
        """
        if not has_position(self, tp):
            return None
        return super().verify_event_path(now, tp)

    def ack(self, message: Any) -> bool:
        """Faust's ack, but a record fetched in an earlier generation of the group counts for no commit.

        Between a revocation and the next assignment the streams skip the
        records still buffered (``agents/journeys.py``; Faust's own streams do
        too), and those are acknowledged after the revocation cleared Faust's
        count of what was acknowledged. When the same partition comes back to
        this worker, their offsets (from the committed one on) would let the
        next commit run ahead of the records, read again from there, being
        applied: a worker dying then would lose them. Such a record is marked
        done, and will be acknowledged when it is read again in this generation.
        The record that brings the count to ``broker_commit_every`` starts a
        commit, unless the one it last started still runs (:meth:`__post_init__`).
        """
        generation = message.generation_id
        if generation is not None and generation != self.app.consumer_generation_id:
            message.acked = True
            return False
        counted = super().ack(message)
        if counted and self.commit_every and acknowledged_since_commit(self) >= self.commit_every:
            self._commit_beside()
        return counted

    def _commit_beside(self) -> None:
        """Start a commit in a task of its own, unless the last one started so still runs."""
        if self.counted_commit is None or self.counted_commit.done():
            acknowledged_since_commit(self, reset=True)
            self.counted_commit = self.add_future(self.commit())

    async def force_commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        """Faust's commit, in two steps around the app's commit guard (:func:`guard_commits`).

        Inside the guard the offsets are chosen (Faust's choice: up to the
        first gap in what was acknowledged) and the guard stages the state
        they cover; outside it, the state is written, and then the offsets
        committed. Records acknowledged meanwhile wait for the next commit.
        """
        guard = _GUARDS.get(self.app)
        if guard is None:
            return await super().force_commit(topics, start_new_transaction=start_new_transaction)
        sensor_state = self.app.sensors.on_commit_initiated(self)
        async with guard() as write_state:
            offsets = committable_offsets(self, topics)
            # ``broker_commit_every`` counts from the last commit, whatever started it (the timer too).
            acknowledged_since_commit(self, reset=True)
        await write_state()
        committed = await commit_offsets(self, offsets, start_new_transaction)
        self.app.sensors.on_commit_completed(self, sensor_state)
        return committed

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        """Faust's fetch; a table changelog's records it brings back that Faust drops (the flow
        stopped, or the partition not active) are fetched again.

        Faust hands the consumer's thread its live set of active partitions,
        which a rebalance empties while the fetch waits there, and aiokafka
        takes an empty set for every partition: a fetch begun before a
        revocation took the records of a changelog partition the recovery
        after it had just sought, they came back to a stopped flow, and
        Faust dropped them. It seeks the streams' partitions back to their
        committed offsets then, but not a changelog's, and the recovery
        waited for those records for ever. (A copy of the set instead let a
        fetch begun before the rebalance hand out the old partitions' records
        after it, ahead of what the new ones had: event time passed them.)
        """
        fetched = await super()._getmany(active_partitions, timeout)
        if fetched:
            changelogs = self.app.tables.changelog_topics
            dropped = [
                (tp, records[0].offset)
                for tp, records in fetched.items()
                if records
                and tp.topic in changelogs
                and (not self.flow_active or (active_partitions is not None and tp not in active_partitions))
            ]
            if dropped:
                assigned = self.assignment()
                for tp, offset in dropped:
                    if tp in assigned:
                        await self.seek(tp, offset)
        return fetched

    async def perform_seek(self) -> None:
        """Seek every partition to where reading resumes, the flow stopped from the start.

        Faust's recovery, the only caller with the flow on, resumes it itself
        once it has cleared the streams' buffers; should the seek fail, the
        flow is left as it was.
        """
        flowing = self.flow_active
        self.stop_flow()
        try:
            await super().perform_seek()
        except BaseException:
            if flowing:
                self.resume_flow()
            raise

    async def seek_to_committed(self) -> Mapping[Any, int | None]:
        """Seek each assigned partition to its committed offset, and one with none to its first
        record (the worker reads from the earliest); the committed offsets, as Faust's.

        aiokafka takes the group coordinator's error for "nothing committed"
        (``streams/committed.py``): each partition it found nothing for is
        asked again, of a coordinator that answers without error, before it
        is read from its first record.
        """
        committed = dict(await super().seek_to_committed())
        changelogs = self.app.tables.changelog_topics
        doubtful = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
        if doubtful:
            # In the consumer's thread, where aiokafka's consumer runs.
            committed.update(await consumer_thread(self).call_thread(self._seek_for_certain, doubtful))
        return committed

    async def _seek_for_certain(self, doubtful: list[Any]) -> dict[Any, int]:
        """Seek each of ``doubtful`` to the offset the group has committed, asked again; one with
        none to its first record. The offsets found."""
        client = aiokafka_consumer(self)
        confirmed = await committed_offsets(group_coordinator(self), doubtful)
        found = {tp: offset for tp, offset in confirmed.items() if offset}
        if found:
            log.warning(
                "asked again, the group coordinator has committed offsets for %s: read from there, "
                "not from their first records",
                ", ".join(f"{tp.topic}[{tp.partition}]@{offset}" for tp, offset in sorted(found.items())),
            )
            for tp, offset in found.items():
                client.seek(tp, offset)
        unsought = [tp for tp in doubtful if tp not in found]
        if unsought:
            await client.seek_to_beginning(*unsought)
        return found

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        first = coros[0] if coros else None
        if not asyncio.iscoroutine(first) or self.should_stop:  # stopped or crashed: Faust's way says so
            return await super().wait_first(*coros, timeout=timeout)
        try:
            awaiting = first.send(None)
        except StopIteration as done:
            _close_unstarted(coros[1:])
            return WaitResults([first], [done.value], False)
        except BaseException:
            _close_unstarted(coros[1:])
            raise
        resumed = _resume(first, awaiting)
        outcome = await super().wait_first(resumed, *coros[1:], timeout=timeout)
        done = [first if winner is resumed else winner for winner in outcome.done]
        return WaitResults(done, outcome.results, outcome.stopped)


def _close_unstarted(awaitables: tuple[Any, ...]) -> None:
    """Close the coroutines that lost before they started (no "never awaited" warnings)."""
    for awaitable in awaitables:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()


async def _resume(coro: Coroutine[Any, Any, Any], awaiting: Any) -> Any:
    """Go on running ``coro``, which is suspended on ``awaiting``, inside a task."""
    return await _drive(coro, awaiting)


@types.coroutine
def _drive(coro: Coroutine[Any, Any, Any], awaiting: Any) -> Generator[Any, Any, Any]:
    """Pass what the event loop sends (or throws) to ``coro`` until it returns."""
    while True:
        try:
            sent = yield awaiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation and errors go to the coroutine
            try:
                awaiting = coro.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                awaiting = coro.send(sent)
            except StopIteration as done:
                return done.value
