"""``motwatch replay``: put recorded traffic back on a topic, faithfully and safely.

A source is a JSONL file (plain events, or ``motwatch record --with-meta``
lines) or a topic (``kafka:NAME``). Keys, timestamps and headers are kept;
``speed`` replays at a multiple of the original pace, from the records' own
timestamps (0: as fast as possible). By default the target lives under a
sandbox prefix; writing into the production prefix must be asked for.

No Kafka here: :func:`replay` hands each record to a ``send`` coroutine (the
CLI passes ``motwatch.transport.topic_writer``'s), so pacing, id rewriting and
the summary are the same whatever receives the records.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from motwatch.events import TOUCHPOINT_ADAPTER

RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ReplayError(Exception):
    """A replay that must not or cannot run; one line for a person."""


def parse_duration(text: str) -> float | None:
    """``90s``, ``30m``, ``2h``, ``7d``, ``1w`` → seconds; None when the text is no such duration."""
    match = RELATIVE.match(text.strip())
    return float(match.group(1)) * UNITS[match.group(2)] if match else None


def parse_time(text: str, now: datetime | None = None) -> int:
    """RFC 3339 (``2026-03-02T14:00:00Z``) or relative to now (``90m``, ``2h``, ``7d``) → epoch ms."""
    seconds = parse_duration(text)
    if seconds is not None:
        ago = timedelta(seconds=seconds)
        return round(((now or datetime.now(UTC)) - ago).timestamp() * 1000)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReplayError(f"{text!r} is neither an RFC 3339 time nor a relative one like 2h") from None
    if when.tzinfo is None:
        example = when.isoformat(timespec="seconds")
        raise ReplayError(f"{text!r} needs a UTC offset, e.g. {example}Z or {example}+01:00")
    return round(when.timestamp() * 1000)


def parse_offsets(text: str) -> dict[int, tuple[int | None, int | None]]:
    """``0:100-200,1:50-,2:-99`` → {partition: (first, last)} with inclusive, open-ended ranges."""
    ranges: dict[int, tuple[int | None, int | None]] = {}
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d*)\s*-\s*(\d*)\s*", part)
        if not match:
            raise ReplayError(f"bad offset range {part.strip()!r}: use PARTITION:FIRST-LAST, e.g. 0:100-200")
        first = int(match.group(2)) if match.group(2) else None
        last = int(match.group(3)) if match.group(3) else None
        if first is not None and last is not None and last < first:
            raise ReplayError(f"bad offset range {part.strip()!r}: last is before first")
        ranges[int(match.group(1))] = (first, last)
    return ranges


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


def in_time_order(records: list[Record]) -> list[Record]:
    """Each partition's records in their own order, the partitions interleaved by timestamp.

    A recording lists a topic partition after partition; a paced replay must
    send them side by side, as they happened. Records of no known partition
    (a file of plain events) keep the file's order.
    """
    partitions: dict[int | None, list[Record]] = {}
    for rec in records:
        partitions.setdefault(rec.partition, []).append(rec)
    if len(partitions) <= 1:
        return list(records)
    return list(
        heapq.merge(*partitions.values(), key=lambda r: -1 if r.timestamp_ms is None else r.timestamp_ms)
    )


def rewrite_ids(record: Record, suffix: str) -> Record:
    """A fresh ``event_id`` (original id + suffix) so the replay is not dropped as duplicates."""
    try:
        obj = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        return record
    if not isinstance(obj, dict) or not isinstance(obj.get("event_id"), str):
        return record
    obj["event_id"] = f"{obj['event_id']}{suffix}"[:128]
    return replace(record, value=orjson.dumps(obj))


def resolve_target(to: str, prefix: str, production_prefix: str, yes_production: bool) -> str:
    """The full target topic; refuses the production namespace unless asked for explicitly."""
    logical = ("touchpoints", "touchpoints-by-journey", "moments", "deadletter")
    topic = f"{prefix}{to}" if to in logical else to
    if topic.startswith(production_prefix) and not yes_production:
        raise ReplayError(
            f"{topic} is in the production namespace ({production_prefix}); "
            "replay into a sandbox (--prefix) or add --yes-production"
        )
    return topic


@dataclass
class ReplaySummary:
    sent: int = 0
    seconds: float = 0.0
    first_ms: int | None = None
    last_ms: int | None = None

    def line(self, topic: str, speed: float) -> str:
        pace = "as fast as possible" if speed == 0 else f"at {speed:g}x the original pace"
        rate = self.sent / self.seconds if self.seconds > 0 else 0.0
        span = ""
        if self.first_ms is not None and self.last_ms is not None:
            span = f", {_span((self.last_ms - self.first_ms) / 1000)} of recorded time"
        return f"replayed {self.sent} messages to {topic} in {self.seconds:.1f}s ({rate:.0f}/s, {pace}{span})"


def _span(seconds: float) -> str:
    """``95s``, ``12m``, ``5.5h``, ``23.1d``: short enough to read at a glance."""
    for unit, size, above in (("d", 86400, 2 * 86400), ("h", 3600, 2 * 3600), ("m", 60, 120)):
        if seconds >= above:
            return f"{seconds / size:.1f}{unit}".replace(".0" + unit, unit)
    return f"{seconds:.0f}s"


class Pacer:
    """Waits so that record timestamps are reproduced at ``speed`` times their original pace."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.origin: tuple[int, float] | None = None

    async def wait_for(self, timestamp_ms: int | None) -> None:
        if self.speed <= 0 or timestamp_ms is None:
            return
        if self.origin is None:
            self.origin = (timestamp_ms, time.monotonic())
            return
        first_ms, started = self.origin
        due = started + (timestamp_ms - first_ms) / 1000 / self.speed
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int | None, enabled: bool | None = None) -> None:
        self.total = total
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.shown = 0.0

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.shown < 0.1):
            return
        self.shown = now
        if self.total:
            width = 30
            filled = int(width * done / self.total)
            bar = "#" * filled + "-" * (width - filled)
            sys.stderr.write(f"\r[{bar}] {done}/{self.total}")
        else:
            sys.stderr.write(f"\r{done} messages")
        sys.stderr.flush()

    def close(self, done: int) -> None:
        if self.enabled:
            self.update(done, force=True)
            sys.stderr.write("\n")


Send = Callable[[Record], Awaitable[None]]


async def replay(
    records: AsyncIterator[Record],
    send: Send,
    *,
    speed: float,
    rewrite: bool,
    total: int | None = None,
    run_id: str | None = None,
    progress: bool | None = None,
) -> ReplaySummary:
    """Hand every record to ``send`` in order, paced; return what was done.

    ``send`` returns once the record is on its way; delivery is the caller's
    to confirm (a topic writer waits for every ack before it closes).
    """
    suffix = f"~r{run_id or uuid.uuid4().hex[:8]}"
    summary = ReplaySummary()
    pacer = Pacer(speed)
    bar = Progress(total, progress)
    started = time.monotonic()
    try:
        async for rec in records:
            await pacer.wait_for(rec.timestamp_ms)
            await send(rewrite_ids(rec, suffix) if rewrite else rec)
            summary.sent += 1
            if rec.timestamp_ms is not None:
                summary.first_ms = rec.timestamp_ms if summary.first_ms is None else summary.first_ms
                summary.last_ms = rec.timestamp_ms
            bar.update(summary.sent)
    finally:
        bar.close(summary.sent)
    summary.seconds = time.monotonic() - started
    return summary


async def iterate(records: Iterable[Record]) -> AsyncIterator[Record]:
    for rec in records:
        yield rec


async def from_topic(messages: AsyncIterator[Any]) -> list[Record]:
    """Every message a topic read yields, as records (read whole: ``in_time_order`` needs them all)."""
    return [
        Record(m.value or b"", m.key, m.timestamp, list(m.headers or ()), m.partition) async for m in messages
    ]
