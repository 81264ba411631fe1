"""Shared fixtures: one real Kafka broker for the whole test session.

Starting a broker costs a few seconds, so every integration test shares the
same one and isolates itself with unique topic names (``topic_prefix``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from motwatch.kafka.broker import BrokerError, KafkaBroker, SecureKafkaBroker

INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration/ needs the broker: it is marked ``integration``."""
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)


@contextmanager
def _started(broker: KafkaBroker) -> Iterator[None]:
    """Start ``broker`` for the session, stop it at the end; fail (never skip) when it cannot start."""
    problem = None
    try:
        broker.start()
    except BrokerError as exc:
        problem = str(exc)
    if problem is not None:  # outside the except: no chained traceback
        pytest.fail(f"cannot start the test Kafka broker: {problem}", pytrace=False)
    try:
        yield
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """The session's broker; fails (never skips) when java/mvn are missing."""
    broker = KafkaBroker(port=0)
    with _started(broker):
        yield broker


@pytest.fixture(scope="session")
def secure_kafka_broker() -> Iterator[SecureKafkaBroker]:
    """A second broker, with SSL and SASL_SSL listeners and ACLs; started by the first test using it.

    Its user (``User:motwatch``, by SCRAM or by its client certificate) has no
    rights: a test grants what it needs and revokes it afterwards, since the
    broker is shared. ``bootstrap`` (PLAINTEXT) is a super user's way in.
    """
    broker = SecureKafkaBroker(port=0)
    with _started(broker):
        yield broker


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    """Bootstrap address (``127.0.0.1:<port>``) of the session's broker."""
    assert kafka_broker.bootstrap is not None
    return kafka_broker.bootstrap


@pytest.fixture
def topic_prefix() -> str:
    """A prefix no other test uses, so tests sharing the broker never see each other's data."""
    return f"t{uuid.uuid4().hex[:8]}."
