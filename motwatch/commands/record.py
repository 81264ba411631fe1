"""``motwatch record``: write a topic's messages to a JSONL file, values alone or in the recording format."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import BinaryIO

from motwatch.commands.common import (
    LOGICAL_TOPICS,
    add_broker,
    close_out,
    open_out,
    parse_offsets,
    parse_time,
    positive,
    settings_of,
    topic_name,
)
from motwatch.kafka.connection import wait_for_broker
from motwatch.kafka.reader import Selection, read_records
from motwatch.kafka.recording import meta_line
from motwatch.kafka.rights import reader_rights, require_rights
from motwatch.kafka.security import Target, endpoint_of


def add_range(parser: argparse.ArgumentParser) -> None:
    """--since, --until and --offsets: which records of a topic to read."""
    parser.add_argument(
        "--since", metavar="TIME", help="from this record time: RFC 3339, or relative like 2h, 30m, 7d"
    )
    parser.add_argument("--until", metavar="TIME", help="up to this record time (inclusive), same forms")
    parser.add_argument(
        "--offsets",
        metavar="P:FIRST-LAST,...",
        help="offset ranges per partition, inclusive, either end open (e.g. 0:100-200,1:50-)",
    )


def selection_of(args: argparse.Namespace) -> Selection:
    return Selection(
        since_ms=parse_time(args.since) if args.since else None,
        until_ms=parse_time(args.until) if args.until else None,
        offsets=parse_offsets(args.offsets) if args.offsets else None,
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("record", help="write a topic's messages to a JSONL file")
    p.add_argument("topic", metavar="TOPIC", help=f"topic name, or one of {', '.join(LOGICAL_TOPICS)}")
    p.add_argument("--out", metavar="FILE.jsonl", required=True, help="output file ('-' for stdout)")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest message")
    p.add_argument(
        "--idle",
        metavar="SECONDS",
        type=positive(float),
        default=5.0,
        help="stop after this long without new messages",
    )
    p.add_argument("--max", metavar="N", type=positive(int), help="stop after N messages")
    p.add_argument(
        "--with-meta", action="store_true", help="write key, partition, offset, timestamp and headers too"
    )
    add_range(p)
    add_broker(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    topic = topic_name(settings, args.topic)
    selection = selection_of(args)
    out = open_out(args.out)

    kafka = endpoint_of(settings)

    async def go() -> int:
        await wait_for_broker(kafka, timeout=3)
        await require_rights(kafka, reader_rights(topic))
        return await record(
            kafka,
            topic,
            out,
            from_beginning=args.from_beginning,
            idle_s=args.idle,
            max_messages=args.max,
            with_meta=args.with_meta,
            selection=selection,
        )

    try:
        count = asyncio.run(go())
    finally:
        close_out(out)
    print(f"recorded {count} messages from {topic}", file=sys.stderr)
    return 0


async def record(
    bootstrap: Target,
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
        out.write(meta_line(message) if with_meta else (message.value or b"") + b"\n")
        count += 1
        if count % 1000 == 0:
            out.flush()
    out.flush()
    return count
