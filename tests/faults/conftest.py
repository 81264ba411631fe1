"""The fault suite's Kafka, a 3-node KRaft cluster, and every test here marked ``faults`` and
``integration``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from motwatch.kafka.broker import BrokerError
from motwatch.kafka.broker.cluster import KafkaCluster
from tests.faults.harness import FaultKafka

FAULTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/faults/ runs real workers against a real broker."""
    for item in items:
        if FAULTS in item.path.parents:
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.background)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def fault_kafka() -> Iterator[FaultKafka]:
    """Where the fault tests' workers run: a 3-node cluster for the session (topics replicated 3
    times). Fails (never skips) when it cannot start."""
    cluster = KafkaCluster(nodes=3)
    problem = None
    try:
        cluster.start()
    except BrokerError as exc:
        problem = str(exc)
    if problem is not None:  # outside the except: no chained traceback
        pytest.fail(f"cannot start the test Kafka cluster: {problem}", pytrace=False)
    try:
        yield FaultKafka(cluster.bootstrap, nodes=3, cluster=cluster)
    finally:
        cluster.stop()
