"""Small aiokafka helpers for the CLI and tests: topics, producing lines, recording.

Values travel as raw bytes end to end: a line that is not UTF-8, or not JSON,
is sent and recorded untouched, because reproducing bad input is part of
testing the stream processor. Every failure surfaces as a
:class:`TransportError` (or its :class:`BrokerUnreachable`) with a one-line
message, so commands never need to print tracebacks.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    for_code,
)

DEFAULT_PORT = 9092
# How many sends may be in flight before produce_lines waits for their acks.
_IN_FLIGHT = 1000


class TransportError(Exception):
    """Talking to Kafka failed; the message is one line meant for a person."""


class BrokerUnreachable(TransportError):
    """Nothing answers at the bootstrap address."""


def _endpoints(bootstrap: str) -> list[tuple[str, int]]:
    """``"h1:9092,[::1]:9093,h3"`` -> host/port pairs (Kafka's default port if none)."""
    result = []
    for part in bootstrap.split(","):
        part = part.strip().removeprefix("PLAINTEXT://")
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if sep and port.isdigit() and (not host.count(":") or host.startswith("[")):
            result.append((host.strip("[]"), int(port)))
        else:
            result.append((part.strip("[]"), DEFAULT_PORT))
    return result


def _reason(exc: BaseException) -> str:
    """``connection refused`` rather than ``[Errno 111] Connect call failed (...)``."""
    if isinstance(exc, TimeoutError):
        return "no answer (timed out)"
    if isinstance(exc, socket.gaierror):
        text = exc.strerror or str(exc)
    elif isinstance(exc, OSError) and exc.errno:
        text = os.strerror(exc.errno)
    else:
        text = str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


async def _tcp_probe(bootstrap: str, timeout: float) -> str | None:
    """None if some bootstrap endpoint accepts a TCP connection, else why not."""
    endpoints = _endpoints(bootstrap)
    if not endpoints:
        return "no host:port given"
    reason = "unreachable"
    for host, port in endpoints:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError) as exc:
            reason = _reason(exc)
            continue
        writer.close()
        with suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1)
        return None
    return reason


async def _preflight(bootstrap: str, timeout: float = 5.0) -> None:
    """Fail fast, in one line, when nothing listens (aiokafka would log and retry)."""
    reason = await _tcp_probe(bootstrap, timeout)
    if reason is not None:
        raise BrokerUnreachable(f"cannot reach Kafka at {bootstrap}: {reason}")


@asynccontextmanager
async def _errors(bootstrap: str) -> AsyncIterator[None]:
    """Turn aiokafka's exceptions into one-line TransportErrors."""
    try:
        yield
    except KafkaConnectionError:
        reason = await _tcp_probe(bootstrap, 2.0) or "connection lost"
        raise BrokerUnreachable(f"cannot reach Kafka at {bootstrap}: {reason}") from None
    except (KafkaTimeoutError, TimeoutError):
        raise TransportError(f"timed out talking to Kafka at {bootstrap}") from None
    except KafkaError as exc:
        raise TransportError(f"Kafka at {bootstrap}: {exc}") from None


async def wait_for_broker(bootstrap: str, timeout: float = 10.0) -> None:
    """Return once Kafka at ``bootstrap`` answers a metadata request.

    Retries until ``timeout`` (a broker may still be starting); then raises
    BrokerUnreachable naming the last reason, e.g. ``connection refused``.
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = max(deadline - time.monotonic(), 0.1)
        reason = await _tcp_probe(bootstrap, min(remaining, 5.0))
        if reason is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=bootstrap, request_timeout_ms=int(max(remaining, 1.0) * 1000)
            )
            try:
                async with asyncio.timeout(max(remaining, 1.0)):
                    await admin.start()
                return
            except (KafkaError, TimeoutError, OSError):
                reason = "port is open but Kafka does not answer"
            finally:
                await admin.close()
        if time.monotonic() >= deadline:
            raise BrokerUnreachable(f"cannot reach Kafka at {bootstrap}: {reason}")
        await asyncio.sleep(min(0.2, max(deadline - time.monotonic(), 0)))


def _config_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def _wait_visible(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Poll metadata until every topic has partitions with leaders.

    CreateTopics returns before every broker's metadata cache knows the topic;
    a producer started right then could see UNKNOWN_TOPIC_OR_PARTITION.
    """
    while True:
        topics = await admin.describe_topics(names)
        ready = {
            t["topic"]
            for t in topics
            if t["error_code"] == 0
            and t["partitions"]
            and all(p["error_code"] == 0 and p["leader"] >= 0 for p in t["partitions"])
        }
        if ready >= set(names):
            return
        await asyncio.sleep(0.1)


async def create_topics(
    bootstrap: str,
    names: list[str],
    partitions: int,
    replication: int = 1,
    config: dict[str, Any] | None = None,
    *,
    timeout: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names actually created.

    Idempotent: existing topics are left alone (their partition count is not
    changed). Returns once every named topic is visible in metadata.
    """
    names = list(dict.fromkeys(names))
    if not names:
        return []
    topic_configs = {key: _config_value(value) for key, value in (config or {}).items()}
    created: list[str] = []
    async with _errors(bootstrap):
        await _preflight(bootstrap)
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="motwatch-admin",
            request_timeout_ms=int(timeout * 1000),
        )
        try:
            async with asyncio.timeout(timeout):
                await admin.start()
                existing = set(await admin.list_topics())
                missing = [name for name in names if name not in existing]
                if missing:
                    response = await admin.create_topics(
                        [
                            NewTopic(name, partitions, replication, topic_configs=topic_configs)
                            for name in missing
                        ]
                    )
                    for entry in response.topic_errors:
                        topic, code = entry[0], entry[1]
                        message = entry[2] if len(entry) > 2 else None
                        if code == 0:
                            created.append(topic)
                        elif for_code(code) is not TopicAlreadyExistsError:
                            why = message or for_code(code).__name__
                            raise TransportError(f"cannot create topic {topic}: {why}")
                await _wait_visible(admin, names)
        except TimeoutError:
            raise TransportError(f"timed out after {timeout:.0f}s creating topics on {bootstrap}") from None
        finally:
            await admin.close()
    return created


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
    bootstrap: str, topic: str, client_id: str = "motwatch-produce"
) -> AsyncIterator[TopicWriter]:
    """A writer whose every message is acknowledged (acks=all) once the block ends without error.

    Keys, timestamps and headers go as given (no timestamp: the broker's
    clock); a Kafka failure surfaces as a one-line TransportError.
    """
    async with _errors(bootstrap):
        await _preflight(bootstrap)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, acks="all", linger_ms=5)
        await producer.start()
        try:
            writer = TopicWriter(producer, topic)
            yield writer
            await writer.close()
        finally:
            await producer.stop()


async def produce_lines(
    bootstrap: str,
    topic: str,
    lines: Iterable[bytes],
    key_fn: Callable[[bytes], bytes | None] | None = None,
) -> int:
    """Send each non-empty line as one message, bytes untouched; return how many.

    The key comes from ``key_fn(value)`` (None: no key, so Kafka spreads the
    message over partitions). Waits for every ack (acks=all) before returning.
    """
    count = 0
    async with topic_writer(bootstrap, topic) as writer:
        for raw in lines:
            value = _strip_eol(raw)
            if not value:
                continue
            await writer.send(value, key_fn(value) if key_fn is not None else None)
            count += 1
    return count


async def partition_ids(bootstrap: str, topic: str) -> list[int]:
    """The topic's partition ids; [] if it does not exist.

    Asks for all topics' metadata: naming the topic in a metadata request
    would make a broker with auto.create.topics.enable create it.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="motwatch-admin")
    try:
        await admin.start()
        for entry in await admin.describe_topics():
            if entry["topic"] == topic and entry["error_code"] == 0:
                return sorted(p["partition"] for p in entry["partitions"])
        return []
    finally:
        await admin.close()


def _text_or_b64(data: bytes) -> tuple[str | None, str | None]:
    """(text, None) for UTF-8 bytes, (None, base64) otherwise."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, base64.b64encode(data).decode("ascii")


def _meta_line(message: Any) -> bytes:
    """One JSON line describing a record, bytes preserved (base64 when not UTF-8)."""
    record: dict[str, Any] = {"topic": message.topic}
    for field in ("key", "value"):
        data = getattr(message, field)
        if data is None:
            record[field] = None
            continue
        text, b64 = _text_or_b64(data)
        record[field] = text
        if b64 is not None:
            record[f"{field}_b64"] = b64
    record["partition"] = message.partition
    record["offset"] = message.offset
    record["timestamp"] = message.timestamp
    stamp = datetime.fromtimestamp(message.timestamp / 1000, UTC)
    record["timestamp_iso"] = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    headers = []
    for name, data in message.headers or ():
        text, b64 = _text_or_b64(data or b"")
        headers.append([name, text if b64 is None else {"b64": b64}])
    record["headers"] = headers
    return orjson.dumps(record) + b"\n"


@dataclass(frozen=True)
class Selection:
    """Which records of a topic to read: a time range and/or offset ranges per partition.

    ``since_ms``/``until_ms`` bound the record timestamps (until is inclusive);
    ``offsets`` maps a partition to an inclusive (first, last) offset range,
    either end open (None); partitions it does not name are not read. With an
    upper bound (``until_ms`` or a last offset) the read ends by itself once
    every partition reached it, or the end it had when the read began.
    """

    since_ms: int | None = None
    until_ms: int | None = None
    offsets: dict[int, tuple[int | None, int | None]] | None = None

    @property
    def bounded(self) -> bool:
        return self.until_ms is not None or (
            self.offsets is not None and all(last is not None for _, last in self.offsets.values())
        )

    def keeps(self, message: Any) -> bool:
        if self.since_ms is not None and message.timestamp < self.since_ms:
            return False
        if self.until_ms is not None and message.timestamp > self.until_ms:
            return False
        if self.offsets is not None:
            first, last = self.offsets.get(message.partition, (None, None))
            if first is not None and message.offset < first:
                return False
            if last is not None and message.offset > last:
                return False
        return True


async def _start_positions(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], from_beginning: bool, selection: Selection
) -> dict[TopicPartition, int]:
    """Seek every partition to where the selection starts; return where each must stop (exclusive)."""
    if from_beginning or selection.since_ms is not None or selection.offsets is not None:
        await consumer.seek_to_beginning(*tps)
    else:
        await consumer.seek_to_end(*tps)
    if selection.since_ms is not None:
        found = await consumer.offsets_for_times({tp: selection.since_ms for tp in tps})
        for tp in tps:
            stamp = found.get(tp)
            if stamp is None:
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, stamp.offset)
    ends = await consumer.end_offsets(tps)
    stops: dict[TopicPartition, int] = {}
    for tp in tps:
        stop = ends[tp]
        if selection.offsets is not None:
            first, last = selection.offsets.get(tp.partition, (None, None))
            if first is not None:
                consumer.seek(tp, max(first, await consumer.position(tp)))
            if last is not None:
                stop = min(stop, last + 1)
        stops[tp] = stop
        await consumer.position(tp)  # resolve "end" now, not at the first fetch
    return stops


async def read_records(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool,
    idle_s: float | None,
    max_messages: int | None = None,
    selection: Selection | None = None,
    ready: asyncio.Event | None = None,
) -> AsyncIterator[Any]:
    """Yield the topic's records (aiokafka ConsumerRecords) in each partition's order.

    Reads every partition without a consumer group (nothing is committed, no
    rebalance). Stops after ``idle_s`` seconds without a new message (None:
    never), after ``max_messages``, or, for a bounded selection, at its end.
    ``ready`` is set once the start positions are fixed, so a caller can
    produce afterwards without racing a from-the-end read.
    """
    selection = selection or Selection()
    if max_messages is not None and max_messages <= 0:
        if ready is not None:
            ready.set()
        return
    count = 0
    async with _errors(bootstrap):
        await _preflight(bootstrap)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="motwatch-record",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
        )
        partitions = await partition_ids(bootstrap, topic)
        if not partitions:
            raise TransportError(f"topic {topic} does not exist on {bootstrap}")
        if selection.offsets is not None:
            unknown = sorted(set(selection.offsets) - set(partitions))
            if unknown:
                raise TransportError(f"topic {topic} has no partition {unknown[0]}")
            partitions = [p for p in partitions if p in selection.offsets]
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            stops = await _start_positions(consumer, tps, from_beginning, selection)
            if ready is not None:
                ready.set()
            open_tps = (
                {tp for tp in tps if await consumer.position(tp) < stops[tp]}
                if selection.bounded
                else set(tps)
            )
            last = time.monotonic()
            while open_tps and (max_messages is None or count < max_messages):
                wait_s = 1.0
                if idle_s is not None:
                    remaining = idle_s - (time.monotonic() - last)
                    if remaining <= 0:
                        break
                    wait_s = min(remaining, wait_s)
                limit = None if max_messages is None else max_messages - count
                batches = await consumer.getmany(
                    *open_tps, timeout_ms=max(int(wait_s * 1000), 1), max_records=limit
                )
                got = 0
                for tp, messages in batches.items():
                    for message in messages:
                        if selection.bounded and message.offset >= stops[tp]:
                            open_tps.discard(tp)
                            break
                        got += 1
                        if selection.keeps(message):
                            count += 1
                            yield message
                            if max_messages is not None and count >= max_messages:
                                return
                    if selection.bounded and tp in open_tps and await consumer.position(tp) >= stops[tp]:
                        open_tps.discard(tp)
                if got:
                    last = time.monotonic()
        finally:
            await consumer.stop()


async def record(
    bootstrap: str,
    topic: str,
    out: BinaryIO,
    *,
    from_beginning: bool,
    idle_s: float | None,
    max_messages: int | None,
    with_meta: bool,
    selection: Selection | None = None,
    ready: asyncio.Event | None = None,
) -> int:
    """Write the topic's messages to ``out``, one per line; return how many.

    Lines are the value bytes verbatim, or with ``with_meta`` one JSON object
    with key, value, partition, offset, timestamps and headers (see
    :func:`read_records` for where reading starts and stops).
    """
    count = 0
    async for message in read_records(
        bootstrap,
        topic,
        from_beginning=from_beginning,
        idle_s=idle_s,
        max_messages=max_messages,
        selection=selection,
        ready=ready,
    ):
        out.write(_meta_line(message) if with_meta else (message.value or b"") + b"\n")
        count += 1
        if count % 1000 == 0:
            out.flush()
    out.flush()
    return count
