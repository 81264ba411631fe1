"""The group's committed offsets, asked until its coordinator answers without an error.

An OffsetFetch answer (version 2 on) carries the group's error at its top,
with no partitions: a coordinator that moved (NOT_COORDINATOR), or is
loading the group's offsets after a broker restart or a leader change
(COORDINATOR_LOAD_IN_PROGRESS), answers that way. aiokafka reads the
answer partition by partition only, so it takes such an answer for
"nothing committed", and a worker that starts its partitions then would
read them from their first record. :func:`committed_offsets` reads the
top-level error too, and asks again until there is none.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable
from typing import Any, Protocol

from aiokafka import errors
from aiokafka.protocol.commit import OffsetFetchRequest
from aiokafka.structs import TopicPartition

from motwatch.streams.faust_internals import ask_coordinator

# The offset an answer gives for a partition of the group with nothing committed.
NONE_COMMITTED = -1
# The errors that say the coordinator is elsewhere: it is looked up again.
_MOVED = (errors.NotCoordinatorForGroupError, errors.GroupCoordinatorNotAvailableError)


class Coordinator(Protocol):
    """What of aiokafka's ``GroupCoordinator`` the question takes (besides a request sent to the
    coordinator it knows: ``faust_internals.ask_coordinator``): its group, finding the
    coordinator, and forgetting one that moved."""

    group_id: str

    async def ensure_coordinator_known(self) -> None: ...

    def coordinator_dead(self) -> None: ...


async def committed_offsets(
    coordinator: Coordinator,
    partitions: Iterable[TopicPartition],
    *,
    backoff_s: float = 0.1,
    max_backoff_s: float = 2.0,
) -> dict[TopicPartition, int | None]:
    """Each of ``partitions``' committed offset in the group (None: nothing committed).

    An error the coordinator may get over (moved, loading, not available)
    is waited out, with a pause growing to ``max_backoff_s``; any other
    (not authorised, a partition's own error) is raised.
    """
    wanted = list(partitions)
    by_topic: dict[str, list[int]] = collections.defaultdict(list)
    for tp in wanted:
        by_topic[tp.topic].append(tp.partition)
    request = OffsetFetchRequest(coordinator.group_id, list(by_topic.items()))
    pause = backoff_s
    while True:
        await coordinator.ensure_coordinator_known()
        try:
            return _read(await ask_coordinator(coordinator, request), wanted)
        except errors.KafkaError as failed:
            if not failed.retriable:
                raise
            if isinstance(failed, _MOVED):
                coordinator.coordinator_dead()
        await asyncio.sleep(pause)
        pause = min(pause * 2, max_backoff_s)


def _read(answer: Any, wanted: list[TopicPartition]) -> dict[TopicPartition, int | None]:
    """The committed offsets an OffsetFetch answer gives; its error (the group's or a partition's)
    raised as aiokafka's exception for it."""
    group_error = getattr(answer, "error_code", 0)
    if group_error:
        raise errors.for_code(group_error)()
    offsets: dict[TopicPartition, int | None] = dict.fromkeys(wanted)
    for topic, partitions in answer.topics:
        for partition, offset, _metadata, error_code in partitions:
            if error_code:
                raise errors.for_code(error_code)()
            tp = TopicPartition(topic, partition)
            if tp in offsets:
                offsets[tp] = None if offset == NONE_COMMITTED else offset
    return offsets
