"""Fixtures of the integration tests that need more than the session's brokers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from motwatch.kafka.broker.secure import SecureKafkaBroker


@pytest.fixture
async def broker(secure_kafka_broker: SecureKafkaBroker) -> AsyncIterator[SecureKafkaBroker]:
    """The shared secure broker, its user granted every right for this test only."""
    await secure_kafka_broker.grant_all()
    try:
        yield secure_kafka_broker
    finally:
        await secure_kafka_broker.revoke_all()
