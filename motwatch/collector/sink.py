"""Where the collector's records go: Kafka, each write returning only once every record is acknowledged.

:class:`KafkaSink` is an idempotent aiokafka producer with ``acks=all``,
connected as the settings say (TLS, SASL: :func:`motwatch.kafka.security.client_options`).
A request's records go in one :meth:`KafkaSink.write`, which raises
:class:`NotStored` (one line) unless the broker acknowledged all of them
within the deadline: the collector answers 2xx only after that. A record
left unacknowledged at the deadline may still arrive later; a sender's
retry then repeats it, which the worker drops by its event id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from motwatch.kafka.connection import one_line_errors, preflight
from motwatch.kafka.security import Target, address, client_options

log = logging.getLogger("motwatch.collector")

# How long a request waits for Kafka's acknowledgements before it is answered "not stored".
WRITE_TIMEOUT_S = 10.0
# How long /health waits for a connection to a broker.
HEALTH_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce: its topic, key (None: none) and value."""

    topic: str
    key: bytes | None
    value: bytes


class NotStored(Exception):
    """Kafka did not acknowledge every record of a write; the message is one line, no record content."""


class Sink(Protocol):
    """What the collector writes through (Kafka, or a test's stand-in)."""

    async def write(self, records: Sequence[Outgoing]) -> None:
        """Return once every record is stored; raise NotStored otherwise."""

    async def healthy(self) -> bool:
        """Whether records can be stored now."""


def _forget(future: asyncio.Future[Any]) -> None:
    """Retrieve a late acknowledgement's outcome, so a failure after the deadline is not reported unread."""
    if not future.cancelled() and future.exception() is not None:
        log.warning("a record acknowledged too late failed: %s", future.exception())


class KafkaSink:
    """An idempotent producer with ``acks=all``; :meth:`start` before use, :meth:`stop` after."""

    def __init__(self, target: Target, *, client_id: str = "motwatch-collect") -> None:
        self._target = target
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect; a Kafka failure is a one-line TransportError."""
        async with one_line_errors(self._target):
            await preflight(self._target)
            producer = AIOKafkaProducer(
                **client_options(self._target),
                client_id=self._client_id,
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
            )
            await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        """Send what is buffered and disconnect."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def write(self, records: Sequence[Outgoing], timeout: float = WRITE_TIMEOUT_S) -> None:
        """Produce ``records`` in order and wait for every acknowledgement, or raise NotStored."""
        producer = self._producer
        if producer is None:
            raise NotStored("the Kafka producer is not running")
        pending: list[asyncio.Future[Any]] = []
        where = address(self._target)
        try:
            async with asyncio.timeout(timeout):
                for record in records:
                    pending.append(await producer.send(record.topic, value=record.value, key=record.key))
                if pending:
                    await asyncio.wait(pending)  # unlike gather, never cancels the acknowledgements
        except TimeoutError:
            for future in pending:
                future.add_done_callback(_forget)
            raise NotStored(f"Kafka at {where} did not acknowledge within {timeout:.0f}s") from None
        except KafkaError as exc:
            for future in pending:
                future.add_done_callback(_forget)
            raise NotStored(f"Kafka at {where}: {type(exc).__name__}: {exc}") from None
        failures = [future.exception() for future in pending if future.exception() is not None]
        if failures:
            raise NotStored(f"Kafka at {where}: {type(failures[0]).__name__}: {failures[0]}")

    async def healthy(self) -> bool:
        """Whether the producer runs and a broker answers a connection within HEALTH_TIMEOUT_S."""
        producer = self._producer
        if producer is None:
            return False
        node = producer.client.get_random_node()
        if node is None:
            return False
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                return bool(await producer.client.ready(node))
        except (TimeoutError, KafkaError, OSError):
            return False
