"""Topics: create the missing ones, and list a topic's partitions."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from motwatch.kafka.connection import TransportError, one_line_errors, preflight
from motwatch.kafka.security import Target, address, client_options


def _config_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _new_topic(name: str, partitions: int, replication: int, configs: dict[str, str]) -> NewTopic:
    """A CreateTopics entry; ``replication`` 0 asks for the cluster's ``default.replication.factor``.

    Kafka takes -1 for that (CreateTopics v4+, and from aiokafka's v3 too on
    Kafka 4 brokers); aiokafka's NewTopic refuses -1 without a replica
    assignment, so it is set after construction.
    """
    topic = NewTopic(name, partitions, max(replication, 1), topic_configs=configs)
    if replication <= 0:
        topic.replication_factor = -1
    return topic


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
    target: Target,
    names: list[str],
    partitions: int,
    replication: int = 0,
    config: dict[str, Any] | None = None,
    *,
    timeout: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names actually created.

    ``replication`` 0 (the default): the cluster's ``default.replication.factor``.
    Idempotent: existing topics are left alone (their partition count is not
    changed). Returns once every named topic is visible in metadata.
    """
    names = list(dict.fromkeys(names))
    if not names:
        return []
    topic_configs = {key: _config_value(value) for key, value in (config or {}).items()}
    created: list[str] = []
    bootstrap = address(target)
    async with one_line_errors(target):
        await preflight(target)
        admin = AIOKafkaAdminClient(
            **client_options(target),
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
                        [_new_topic(name, partitions, replication, topic_configs) for name in missing]
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


async def partition_counts(target: Target) -> dict[str, int]:
    """Every topic of the cluster and its partition count (metadata of all topics: none is created)."""
    admin = AIOKafkaAdminClient(**client_options(target), client_id="motwatch-admin")
    async with one_line_errors(target):
        try:
            await admin.start()
            return {
                entry["topic"]: len(entry["partitions"])
                for entry in await admin.describe_topics()
                if entry["error_code"] == 0
            }
        finally:
            await admin.close()


async def partition_ids(target: Target, topic: str) -> list[int]:
    """The topic's partition ids; [] if it does not exist.

    Asks for all topics' metadata: naming the topic in a metadata request
    would make a broker with auto.create.topics.enable create it.
    """
    admin = AIOKafkaAdminClient(**client_options(target), client_id="motwatch-admin")
    try:
        await admin.start()
        for entry in await admin.describe_topics():
            if entry["topic"] == topic and entry["error_code"] == 0:
                return sorted(p["partition"] for p in entry["partitions"])
        return []
    finally:
        await admin.close()
