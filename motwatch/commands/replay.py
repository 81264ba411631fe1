"""``motwatch replay``: put recorded traffic back on a topic, faithfully and safely.

A source is a JSONL file (plain events, or ``motwatch record --with-meta``
lines) or a topic (``kafka:NAME``). Keys, timestamps and headers are kept;
``speed`` replays at a multiple of the original pace, from the records' own
timestamps (0: as fast as possible). By default the target lives under a
sandbox prefix; writing into the production prefix must be asked for.

:func:`replay` hands each record to a ``send`` coroutine (the command passes
a topic writer's), so pacing, id rewriting and the summary are the same
whatever receives the records.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from motwatch.commands.common import (
    UsageError,
    add_config,
    positive,
    read_lines,
    settings_of,
    topic_name,
)
from motwatch.kafka.admin import create_topics
from motwatch.kafka.connection import wait_for_broker
from motwatch.kafka.reader import read_records
from motwatch.kafka.recording import Record, from_topic, records_of_file
from motwatch.kafka.rights import reader_rights, require_rights, writer_rights
from motwatch.kafka.security import endpoint_of
from motwatch.kafka.writer import topic_writer
from motwatch.settings import Settings


class ReplayError(Exception):
    """A replay that must not or cannot run; one line for a person."""


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


def add_target(parser: Any, default: str | None) -> None:
    """--to, --prefix (sandbox), --yes-production and --speed, as replay and simulate take them."""
    what = f"default: {default}" if default else "e.g. touchpoints"
    parser.add_argument(
        "--to", metavar="TOPIC", default=default, help=f"send to this topic, a full or logical name ({what})"
    )
    parser.add_argument(
        "--prefix",
        dest="sandbox_prefix",
        metavar="PREFIX",
        default="sandbox.",
        help="namespace of a logical --to name (default: sandbox.)",
    )
    parser.add_argument(
        "--yes-production", action="store_true", help="allow a target in the production namespace"
    )
    parser.add_argument(
        "--speed",
        type=positive(float),
        default=0.0,
        help="times the original pace, from the records' timestamps; 0 = as fast as possible (default)",
    )


def target_of(args: argparse.Namespace, settings: Settings) -> str:
    """``--to`` under the sandbox ``--prefix``; the production namespace only with ``--yes-production``."""
    return resolve_target(args.to, args.sandbox_prefix, settings.topic_prefix, args.yes_production)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from motwatch.commands.record import add_range

    p = sub.add_parser(
        "replay",
        help="replay a recorded file or topic into a (sandbox) topic",
        description=(
            "Sends a recorded file or a topic's range to a topic, keeping keys, timestamps and headers; "
            "a recording's partitions go side by side in time order. A logical --to name goes under the "
            "sandbox prefix, where a worker started with the same --prefix processes it in isolation."
        ),
    )
    p.add_argument(
        "source", metavar="SOURCE", help="a JSONL file (events, or record --with-meta lines), or kafka:TOPIC"
    )
    add_target(p, default="touchpoints")
    p.add_argument("--rewrite-ids", action="store_true", help="give every event a fresh event_id")
    p.add_argument(
        "--idle",
        metavar="SECONDS",
        type=positive(float),
        default=5.0,
        help="kafka source: stop after this long without news",
    )
    add_range(p)
    add_config(p)
    p.add_argument("--broker", metavar="HOST:PORT", help="Kafka bootstrap server (default: from settings)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from motwatch.commands.record import selection_of

    settings = settings_of(args)
    target = target_of(args, settings)
    if args.source.startswith("kafka:"):
        source_topic = topic_name(settings, args.source.removeprefix("kafka:"))
        if source_topic == target:
            raise UsageError("the source and the target are the same topic")
        selection = selection_of(args)  # a bad range is the user's to fix before any connection
        kafka = endpoint_of(settings)
        asyncio.run(require_rights(kafka, reader_rights(source_topic)))
        messages = read_records(
            kafka,
            source_topic,
            from_beginning=True,
            idle_s=args.idle,
            selection=selection,
        )
        loaded = asyncio.run(from_topic(messages))
    else:
        if args.since or args.until or args.offsets:
            raise UsageError("--since, --until and --offsets select from a topic (kafka:NAME), not a file")
        loaded = records_of_file(read_lines(args.source))
    summary = asyncio.run(send_records(settings, target, loaded, speed=args.speed, rewrite=args.rewrite_ids))
    print(summary.line(target, args.speed))
    return 0


async def send_records(
    settings: Settings, target: str, records: list[Record], *, speed: float, rewrite: bool
) -> ReplaySummary:
    """Replay records into ``target`` (created when missing); returns once every one is acknowledged."""
    kafka = endpoint_of(settings)
    await wait_for_broker(kafka, timeout=3)
    await require_rights(kafka, writer_rights(target))
    await create_topics(kafka, [target], settings.partitions, settings.replication_factor)
    async with topic_writer(kafka, target, client_id="motwatch-replay") as writer:

        async def send(rec: Record) -> None:
            await writer.send(rec.value, rec.key, rec.timestamp_ms, rec.headers)

        return await replay(
            iterate(in_time_order(records)), send, speed=speed, rewrite=rewrite, total=len(records)
        )
