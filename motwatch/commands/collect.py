"""``motwatch collect``: the HTTP collector, vendor events in, touchpoints and dead letters to Kafka.

Prints ``listening http://HOST:PORT`` on a line of its own once it answers;
SIGTERM or Ctrl-C stops it (exit 0) after the requests in progress. It
refuses to start without a write key (``write_keys``) unless ``--no-auth``,
which only a loopback address may use: a one-line error and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from motwatch.collector.access import WriteKeys, is_loopback
from motwatch.collector.server import serve
from motwatch.commands.common import add_broker, settings_of
from motwatch.commands.worker import deadletter_retention_ms
from motwatch.kafka.admin import create_topics, partition_counts
from motwatch.kafka.connection import TransportError, wait_for_broker
from motwatch.kafka.rights import Right, require_rights, writer_rights
from motwatch.kafka.security import Endpoint, endpoint_of
from motwatch.listening import listen_socket
from motwatch.settings import Settings


def port_number(text: str) -> int:
    """An argument type: a TCP port, 0 to 65535 (0: a free one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535; 0: a free one)")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "collect",
        help="run the HTTP collector: Segment, Snowplow, GA4 and CloudEvents events to the touchpoints topic",
    )
    p.add_argument(
        "--port", type=port_number, metavar="N", help="port (default: collector_port, 8088; 0: a free one)"
    )
    p.add_argument("--bind", metavar="ADDR", help="address to listen on (default: collector_bind, 127.0.0.1)")
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="take requests without a write key (only on a loopback address: a local demo or test)",
    )
    p.add_argument("--shop", action="store_true", help="also serve the demo shop at /shop/ (tracker/shop)")
    add_broker(p)
    p.set_defaults(func=run)


def _refuse(message: str) -> int:
    print(f"motwatch collect: {message}", file=sys.stderr)
    return 2


def collector_rights(settings: Settings) -> list[Right]:
    """What the collector does on Kafka: write the touchpoints and dead-letter topics (create them if
    missing, unless ``auto_create_topics`` is off)."""
    rights = writer_rights(settings.touchpoints_topic) + writer_rights(settings.deadletter_topic)
    return [r for r in rights if r.operation != "CREATE" or settings.auto_create_topics]


async def prepare_topics(settings: Settings, kafka: Endpoint) -> None:
    """The two topics it writes exist afterwards, created as the worker creates them; with
    ``auto_create_topics`` off, a one-line TransportError names those missing."""
    topics = [settings.touchpoints_topic, settings.deadletter_topic]
    if not settings.auto_create_topics:
        counts = await partition_counts(kafka)
        missing = [topic for topic in topics if topic not in counts]
        if missing:
            raise TransportError(
                f"auto_create_topics is false and these topics are missing: {', '.join(missing)}"
            )
        return
    await create_topics(kafka, [settings.touchpoints_topic], settings.partitions, settings.replication_factor)
    await create_topics(
        kafka,
        [settings.deadletter_topic],
        settings.partitions,
        settings.replication_factor,
        config={"retention.ms": deadletter_retention_ms(settings)},
    )


def _announce(url: str) -> None:
    print(f"listening {url}", flush=True)


def run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    bind = settings.collector_bind if args.bind is None else args.bind
    port = settings.collector_port if args.port is None else args.port
    if args.no_auth and not is_loopback(bind):
        return _refuse(f"--no-auth only on a loopback address (127.0.0.1, ::1, localhost), not {bind or '*'}")
    keys = [key.get_secret_value() for key in settings.write_keys]
    if not keys and not args.no_auth:
        return _refuse(
            "no write key: set write_keys (MOTWATCH_WRITE_KEYS=key1,key2), or --no-auth on loopback"
        )
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("motwatch").setLevel(logging.INFO)
    sock = listen_socket(bind, port, "collector_bind/collector_port")
    kafka = endpoint_of(settings)

    async def go() -> None:
        await wait_for_broker(kafka, timeout=10)
        await require_rights(kafka, collector_rights(settings))
        await prepare_topics(settings, kafka)
        await serve(
            settings, kafka, sock, WriteKeys(keys, open=args.no_auth), shop=args.shop, ready=_announce
        )

    try:
        asyncio.run(go())
    finally:
        sock.close()
    return 0
