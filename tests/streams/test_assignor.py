"""A static member's assignment, made when it advertised another web address, is taken back."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from faust.assignor import PartitionAssignor
from faust.assignor.client_assignment import ClientAssignment, ClientMetadata

from motwatch.settings import Settings
from motwatch.streams.app import create_app
from motwatch.streams.assignor import RejoiningAssignor


def _assignment(assignor: PartitionAssignor, url: str, actives: dict[str, list[int]], listed: list) -> Any:
    metadata = ClientMetadata(
        assignment=ClientAssignment(actives=actives, standbys={}),
        url=url,
        changelog_distribution={},
        topic_groups={},
        external_topic_distribution={},
    )
    return ConsumerProtocolMemberAssignment(0, listed, assignor._compress(metadata.dumps()))


@pytest.fixture
def assignor() -> PartitionAssignor:
    app = create_app(Settings(web_port=6070), instance_id="worker-1").app
    assert isinstance(app.assignor, RejoiningAssignor)
    return app.assignor


def test_faust_refuses_an_assignment_made_under_another_url(assignor: PartitionAssignor) -> None:
    """What a worker restarted with another web port met on every join."""
    handed_back = _assignment(assignor, "http://127.0.0.1:6066", {"t": [0, 1]}, [("t", [0, 1])])
    with pytest.raises(AssertionError):
        PartitionAssignor.on_assignment(assignor, handed_back)


def test_the_worker_takes_it(assignor: PartitionAssignor) -> None:
    assignor.on_assignment(_assignment(assignor, "http://127.0.0.1:6066", {"t": [0, 1]}, [("t", [0, 1])]))
    assert {(tp.topic, tp.partition) for tp in assignor.assigned_actives()} == {("t", 0), ("t", 1)}


def test_partitions_that_disagree_are_still_refused(assignor: PartitionAssignor) -> None:
    with pytest.raises(AssertionError, match="!="):
        assignor.on_assignment(_assignment(assignor, "http://127.0.0.1:6070", {"t": [0, 1]}, [("t", [0])]))
