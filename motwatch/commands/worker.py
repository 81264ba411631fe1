"""``motwatch worker``: create the topics, then run the Faust worker with a bounded shutdown."""

from __future__ import annotations

import argparse
import asyncio
import logging

from motwatch.commands.common import add_broker, settings_of
from motwatch.kafka.admin import create_topics, partition_counts, partition_ids
from motwatch.kafka.connection import TransportError, wait_for_broker
from motwatch.kafka.rights import FAUST_LEADER_TOPIC, require_rights, worker_rights
from motwatch.kafka.security import endpoint_of
from motwatch.settings import Settings

log = logging.getLogger("motwatch.worker")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run the stream worker (all agents)")
    add_broker(p)
    p.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    input_partitions = asyncio.run(prepare_topics(settings))
    from motwatch.streams.worker import run_worker

    return run_worker(settings, input_partitions=input_partitions, loglevel=args.loglevel)


def deadletter_retention_ms(settings: Settings) -> int:
    """The dead-letter topic's ``retention.ms``: ``deadletter_retention_days`` in milliseconds."""
    return round(settings.deadletter_retention_days * 86_400_000)


def needed_topics(settings: Settings) -> dict[str, int | None]:
    """Every topic the worker reads or writes, and the partition count it must have (None: any)."""
    from motwatch.streams.app import TABLES

    return {
        settings.touchpoints_topic: None,
        settings.by_journey_topic: settings.partitions,
        settings.moments_topic: None,
        settings.deadletter_topic: None,
        settings.quarantine_topic: None,
        **{settings.changelog_topic(table): settings.partitions for table in TABLES},
        # Faust's leader election (the leader sends the ticks).
        f"{settings.worker_app_id}-__assignor-__leader": 1,
    }


async def check_topics(settings: Settings) -> int:
    """With ``auto_create_topics`` off: every needed topic exists with its partition count, or a
    one-line TransportError lists what is missing or wrong; returns the input's partition count."""
    counts = await partition_counts(endpoint_of(settings))
    wrong = []
    for name, needed in needed_topics(settings).items():
        if name not in counts:
            wrong.append(f"{name} (missing{f', {needed} partitions' if needed else ''})")
        elif needed is not None and counts[name] != needed:
            wrong.append(f"{name} (has {counts[name]} partitions, needs {needed})")
    if wrong:
        raise TransportError(
            "auto_create_topics is false and these topics are not as the worker needs them: "
            + "; ".join(wrong)
        )
    return counts[settings.touchpoints_topic]


async def prepare_topics(settings: Settings) -> int:
    """The worker's topics must exist before Faust subscribes (it ignores missing ones).

    The dead-letter topic is created with ``retention.ms`` from ``deadletter_retention_days``
    (an existing one is left as it is). With ``auto_create_topics`` off nothing is created:
    :func:`check_topics` checks them.

    Returns the touchpoints topic's partition count (it may have been created
    before, with another count than the worker's own topics: then no
    touchpoint can skip the re-keying hop).
    """
    from motwatch.streams.app import TABLES

    kafka = endpoint_of(settings)
    await wait_for_broker(kafka)

    # Every right it needs, or one line naming the missing ones (Faust would retry or crash).
    await require_rights(kafka, worker_rights(settings, TABLES))
    if not settings.auto_create_topics:
        return await check_topics(settings)
    await create_topics(
        kafka,
        [settings.touchpoints_topic, settings.by_journey_topic, settings.moments_topic],
        settings.partitions,
        settings.replication_factor,
    )
    # Rejected messages keep their raw payload, and quarantined records a journey's state, which
    # may hold personal data: kept for a while only.
    await create_topics(
        kafka,
        [settings.deadletter_topic, settings.quarantine_topic],
        settings.partitions,
        settings.replication_factor,
        config={"retention.ms": deadletter_retention_ms(settings)},
    )
    # The tables' changelogs too, compacted as Faust declares them. Left to Faust, they
    # appear after the consumer's first metadata, which then counts 0 partitions for
    # them until its next refresh, and a table write in between fails (PartitionsMismatch).
    await create_topics(
        kafka,
        [settings.changelog_topic(table) for table in TABLES],
        settings.partitions,
        settings.replication_factor,
        config={"cleanup.policy": "compact"},
    )
    # Faust's leader topic too: Faust gives a topic it creates itself max(replication_factor, 1)
    # replicas, never the cluster's default that replication_factor 0 asks for.
    await create_topics(
        kafka, [FAUST_LEADER_TOPIC.format(app_id=settings.worker_app_id)], 1, settings.replication_factor
    )
    found = len(await partition_ids(kafka, settings.touchpoints_topic))
    if found != settings.partitions:
        log.warning(
            "%s has %d partitions, the worker %d: every touchpoint is re-keyed before it is applied",
            settings.touchpoints_topic,
            found,
            settings.partitions,
        )
    return found
