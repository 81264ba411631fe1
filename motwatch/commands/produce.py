"""``motwatch produce``: send a JSONL file to a topic, one message per line, keyed by journey."""

from __future__ import annotations

import argparse
import asyncio

from motwatch.commands.common import add_broker, read_lines, settings_of, topic_name
from motwatch.core.validation import journey_key_of
from motwatch.kafka.admin import create_topics
from motwatch.kafka.connection import wait_for_broker
from motwatch.kafka.rights import require_rights, writer_rights
from motwatch.kafka.security import endpoint_of
from motwatch.kafka.writer import produce_lines


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("produce", help="send a JSONL file, one message per line, to a topic")
    p.add_argument("file", metavar="FILE.jsonl", help="events, one JSON object per line ('-' for stdin)")
    p.add_argument("--topic", metavar="NAME", help="topic (default: the touchpoints topic)")
    add_broker(p)
    p.set_defaults(func=run)


def _key_of(raw: bytes) -> bytes | None:
    key = journey_key_of(raw)
    return key.encode() if key is not None else None


def run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    topic = topic_name(settings, args.topic) if args.topic else settings.touchpoints_topic
    lines = read_lines(args.file)

    kafka = endpoint_of(settings)

    async def go() -> int:
        await wait_for_broker(kafka, timeout=3)
        await require_rights(kafka, writer_rights(topic))
        await create_topics(kafka, [topic], settings.partitions, settings.replication_factor)
        return await produce_lines(kafka, topic, lines, _key_of)

    sent = asyncio.run(go())
    print(f"sent {sent} messages to {topic}")
    return 0
