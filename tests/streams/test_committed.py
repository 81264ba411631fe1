"""The group's committed offsets are asked again until the coordinator answers without error."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import errors
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.protocol.commit import OffsetFetchRequest, OffsetFetchResponse_v3
from aiokafka.structs import TopicPartition

from motwatch.streams.committed import committed_offsets

NOT_COORDINATOR = errors.NotCoordinatorForGroupError.errno
LOADING = errors.GroupLoadInProgressError.errno
TP0, TP1 = TopicPartition("touchpoints", 0), TopicPartition("touchpoints", 1)


def group_error(code: int) -> OffsetFetchResponse_v3:
    """How a coordinator that moved or is loading answers (version 2 on): the error, no partitions."""
    return OffsetFetchResponse_v3(0, [], code)


def offsets(*entries: tuple[int, int, int]) -> OffsetFetchResponse_v3:
    """An answer with (partition, offset, error) for the touchpoints topic."""
    return OffsetFetchResponse_v3(0, [("touchpoints", [(p, o, "", e) for p, o, e in entries])], 0)


class Coordinator:
    """A group coordinator that answers OffsetFetch requests as scripted."""

    group_id = "motwatch"

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[OffsetFetchRequest] = []
        self.lookups = 0
        self.forgotten = 0

    async def ensure_coordinator_known(self) -> None:
        self.lookups += 1

    async def _send_req(self, request: Any) -> Any:
        self.requests.append(request)
        return self.answers.pop(0)

    def coordinator_dead(self) -> None:
        self.forgotten += 1


async def test_aiokafka_takes_a_coordinator_error_for_nothing_committed() -> None:
    """Why the question is asked here: aiokafka reads only the partitions of the answer."""
    coordinator = GroupCoordinator.__new__(GroupCoordinator)
    coordinator.group_id = "motwatch"

    async def send(request: Any) -> Any:
        return group_error(NOT_COORDINATOR)

    coordinator._send_req = send
    assert await coordinator._do_fetch_commit_offsets([TP0]) == {}


async def test_a_coordinator_that_moved_then_loads_is_asked_until_it_answers() -> None:
    coordinator = Coordinator(
        group_error(NOT_COORDINATOR), group_error(LOADING), offsets((0, 812, 0), (1, -1, 0))
    )
    got = await committed_offsets(coordinator, [TP0, TP1], backoff_s=0.001)
    assert got == {TP0: 812, TP1: None}
    assert len(coordinator.requests) == 3 and coordinator.lookups == 3
    assert coordinator.forgotten == 1, "the coordinator that moved is looked up again"
    assert vars(coordinator.requests[-1]) == {
        "_consumer_group": "motwatch",
        "_partitions": [("touchpoints", [0, 1])],
    }


async def test_an_error_that_does_not_pass_is_raised() -> None:
    coordinator = Coordinator(group_error(errors.GroupAuthorizationFailedError.errno))
    with pytest.raises(errors.GroupAuthorizationFailedError):
        await committed_offsets(coordinator, [TP0], backoff_s=0.001)
    coordinator = Coordinator(offsets((0, -1, errors.TopicAuthorizationFailedError.errno)))
    with pytest.raises(errors.TopicAuthorizationFailedError):
        await committed_offsets(coordinator, [TP0], backoff_s=0.001)


async def test_a_partition_the_answer_leaves_out_has_nothing_committed() -> None:
    assert await committed_offsets(Coordinator(offsets((0, 5, 0))), [TP0, TP1]) == {TP0: 5, TP1: None}
