"""Writing to a topic: raw bytes, keys, timestamps and headers as given, every message acknowledged.

Values travel as raw bytes end to end: a line that is not UTF-8, or not JSON,
is sent untouched, because reproducing bad input is part of testing the
stream processor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaProducer

from motwatch.kafka.connection import one_line_errors, preflight
from motwatch.kafka.security import Target, client_options

# How many sends may be in flight before a writer waits for their acks.
_IN_FLIGHT = 1000


def _strip_eol(line: bytes) -> bytes:
    """Drop the line terminator (``\\n`` or ``\\r\\n``) and nothing else."""
    if line.endswith(b"\n"):
        line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
    return line


async def _settle(pending: list[asyncio.Future[Any]]) -> None:
    """Wait for all acks; raise the first failure (retrieving every result)."""
    results = await asyncio.gather(*pending, return_exceptions=True)
    pending.clear()
    for result in results:
        if isinstance(result, BaseException):
            raise result


class TopicWriter:
    """Sends to one topic with at most ``_IN_FLIGHT`` unacknowledged messages (see :func:`topic_writer`)."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._pending: list[asyncio.Future[Any]] = []

    async def send(
        self,
        value: bytes,
        key: bytes | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self._pending.append(
            await self._producer.send(
                self._topic, value=value, key=key, timestamp_ms=timestamp_ms, headers=headers or None
            )
        )
        if len(self._pending) >= _IN_FLIGHT:
            await _settle(self._pending)

    async def close(self) -> None:
        await self._producer.flush()
        await _settle(self._pending)


@asynccontextmanager
async def topic_writer(
    target: Target, topic: str, client_id: str = "motwatch-produce"
) -> AsyncIterator[TopicWriter]:
    """A writer whose every message is acknowledged (acks=all) once the block ends without error.

    Keys, timestamps and headers go as given (no timestamp: the broker's
    clock); a Kafka failure surfaces as a one-line TransportError.
    """
    async with one_line_errors(target):
        await preflight(target)
        producer = AIOKafkaProducer(**client_options(target), client_id=client_id, acks="all", linger_ms=5)
        await producer.start()
        try:
            writer = TopicWriter(producer, topic)
            yield writer
            await writer.close()
        finally:
            await producer.stop()


async def produce_lines(
    target: Target,
    topic: str,
    lines: Iterable[bytes],
    key_fn: Callable[[bytes], bytes | None] | None = None,
) -> int:
    """Send each non-empty line as one message, bytes untouched; return how many.

    The key comes from ``key_fn(value)`` (None: no key, so Kafka spreads the
    message over partitions). Waits for every ack (acks=all) before returning.
    """
    count = 0
    async with topic_writer(target, topic) as writer:
        for raw in lines:
            value = _strip_eol(raw)
            if not value:
                continue
            await writer.send(value, key_fn(value) if key_fn is not None else None)
            count += 1
    return count
