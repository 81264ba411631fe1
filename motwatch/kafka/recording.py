"""The recording format: one JSON line per Kafka record, written by ``record --with-meta`` and read back.

A line holds the record's topic, key, value, partition, offset, timestamp
(epoch ms and ISO) and headers. Bytes are preserved: a key, value or header
that is not UTF-8 is written as base64 (``value_b64``, ``key_b64``,
``{"b64": ...}``). A file of plain events (no metadata) reads as records too,
keyed by journey and timed by the event.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from motwatch.core.events import TOUCHPOINT_ADAPTER


@dataclass
class Record:
    """One message to replay."""

    value: bytes
    key: bytes | None = None
    timestamp_ms: int | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    # Where it was recorded, if known: only to keep each partition's order (see ``in_time_order``).
    partition: int | None = None


def _bytes(text: str | None, b64: str | None) -> bytes | None:
    if b64 is not None:
        return base64.b64decode(b64)
    return None if text is None else text.encode("utf-8")


def record_of_meta(meta: dict[str, Any]) -> Record:
    """The record a ``record --with-meta`` line describes."""
    headers = []
    for name, value in meta.get("headers") or ():
        data = base64.b64decode(value["b64"]) if isinstance(value, dict) else str(value).encode("utf-8")
        headers.append((name, data))
    return Record(
        value=_bytes(meta.get("value"), meta.get("value_b64")) or b"",
        key=_bytes(meta.get("key"), meta.get("key_b64")),
        timestamp_ms=meta.get("timestamp"),
        headers=headers,
        partition=meta.get("partition"),
    )


def is_meta(obj: Any) -> bool:
    """Whether a parsed line is a ``record --with-meta`` line."""
    return (
        isinstance(obj, dict)
        and {"partition", "offset", "timestamp"} <= obj.keys()
        and ("value" in obj or "value_b64" in obj)
    )


def record_of_line(line: bytes) -> Record:
    """A ``record --with-meta`` line keeps everything; a plain event is keyed and timed by itself."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return Record(value=line)
    if is_meta(obj):
        return record_of_meta(obj)
    try:
        event = TOUCHPOINT_ADAPTER.validate_json(line)
    except Exception:  # a malformed event is replayed as it is: it reproduces the incident
        return Record(value=line)
    # Sent now: a record's time is never later than that (an event from the future arrives now).
    arrived = min(event.occurred_ms, time.time_ns() // 1_000_000)
    return Record(value=line, key=event.journey_key.encode(), timestamp_ms=arrived)


def records_of_file(lines: Iterable[bytes]) -> list[Record]:
    return [record_of_line(line) for line in lines if line.strip()]


def _text_or_b64(data: bytes) -> tuple[str | None, str | None]:
    """(text, None) for UTF-8 bytes, (None, base64) otherwise."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, base64.b64encode(data).decode("ascii")


def meta_line(message: Any) -> bytes:
    """One JSON line describing a record, bytes preserved (base64 when not UTF-8)."""
    record: dict[str, Any] = {"topic": message.topic}
    for name in ("key", "value"):
        data = getattr(message, name)
        if data is None:
            record[name] = None
            continue
        text, b64 = _text_or_b64(data)
        record[name] = text
        if b64 is not None:
            record[f"{name}_b64"] = b64
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


async def from_topic(messages: AsyncIterator[Any]) -> list[Record]:
    """Every message a topic read yields, as records (read whole: ``in_time_order`` needs them all)."""
    return [
        Record(m.value or b"", m.key, m.timestamp, list(m.headers or ()), m.partition) async for m in messages
    ]
