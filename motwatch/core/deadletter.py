"""Dead-letter records (EVENTS.md §3): a rejected message, untouched, with its reason."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson

from motwatch.core.validation import Rejection


def raw_field(raw: bytes) -> tuple[str, str]:
    """The message as text when it is UTF-8, else as base64; and which of the two."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def kafka_source(topic: str, partition: int, offset: int) -> dict[str, Any]:
    return {"topic": topic, "partition": partition, "offset": offset}


def file_source(file: str, line: int) -> dict[str, Any]:
    return {"file": file, "line": line}


def dead_letter_record(
    raw: bytes,
    rejection: Rejection,
    source: dict[str, Any],
    received_at: datetime | None = None,
) -> dict[str, Any]:
    text, encoding = raw_field(raw)
    when = received_at or datetime.now(UTC)
    return {
        "reason": rejection.reason,
        "error": rejection.error,
        "raw": text,
        "raw_encoding": encoding,
        "source": source,
        "received_at": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def encode_dead_letter(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)
