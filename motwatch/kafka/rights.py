"""What this client may do on Kafka, asked of the broker before it matters.

A worker short of one ACL does not fail cleanly: Faust retries a group it may
not join for ever, a topic it may not read crashes it with a traceback, and a
topic it may not write fails only once data flows. So before it starts,
``motwatch worker`` asks the broker what its principal may do on each topic
and on the group it needs (:func:`require_rights`) and stops with one line
naming every right it lacks (:class:`~motwatch.kafka.connection.NotAuthorized`).

The broker answers from its own authorizer (KIP-430): a metadata request
(v8) lists, for each named topic, the operations the principal may perform on
it; DescribeGroups (v3) does the same for a group. That counts every kind of
ACL (literal, prefixed, wildcard, deny, the DESCRIBE that READ and WRITE
imply), needs no right to list ACLs, works for a topic that does not exist yet
(ACLs are by name), and creates nothing (the request turns auto-creation off).
CREATE may also come from the cluster, whose operations the broker tells only
to who may describe it: a CreateTopics that only validates asks the very check
a creation passes. Where the broker does not say (no authorizer: then
everything is allowed; a broker older than Kafka 2.3; a group coordinator
still loading), nothing is refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    IncompatibleBrokerVersion,
    NoError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.coordination import FindCoordinatorRequest
from aiokafka.protocol.types import Array, Boolean, Bytes, Int16, Int32, Schema, String

from motwatch.kafka.connection import not_authorized, one_line_errors, preflight
from motwatch.kafka.security import Target, client_options
from motwatch.settings import Settings

# Kafka's AclOperation codes: bit ``code`` of an "authorized operations" field is set when allowed.
OPERATION_CODES = {"READ": 3, "WRITE": 4, "CREATE": 5, "DESCRIBE": 8}
_NOT_SAID = -(2**31)  # the field's value when the broker did not work it out
# The leader assignor's topic Faust declares for the app (faust/assignor/leader_assignor.py).
FAUST_LEADER_TOPIC = "{app_id}-__assignor-__leader"


@dataclass(frozen=True)
class Right:
    """``operation`` (READ, WRITE, CREATE) on a ``resource_type`` (topic, group) named ``name``.

    ``if_missing``: only needed when the topic does not exist (a command that
    creates its topic when it is missing, and otherwise just uses it).
    """

    operation: str
    resource_type: str
    name: str
    if_missing: bool = False


def worker_rights(settings: Settings, tables: Iterable[str]) -> list[Right]:
    """What ``motwatch worker`` does on Kafka (README, Least privilege).

    CREATE on every topic unless ``auto_create_topics`` is off: the worker
    creates the missing ones, and Faust declares its own at every start, which
    the broker answers with "already exists" only to a principal that may
    create it.
    """
    app = settings.worker_app_id
    internal = [f"{app}-{table}-changelog" for table in tables]
    uses = {
        settings.touchpoints_topic: ("READ",),
        settings.by_journey_topic: ("READ", "WRITE"),
        settings.moments_topic: ("WRITE",),
        settings.deadletter_topic: ("WRITE",),
        settings.quarantine_topic: ("WRITE",),
        **dict.fromkeys(internal, ("READ", "WRITE")),
        FAUST_LEADER_TOPIC.format(app_id=app): ("READ",),
    }
    rights = [Right(op, "topic", topic) for topic, ops in uses.items() for op in ops]
    if settings.auto_create_topics:
        rights += [Right("CREATE", "topic", topic) for topic in uses]
    return [*rights, Right("READ", "group", app)]


def writer_rights(topic: str) -> list[Right]:
    """What writing to ``topic`` takes (produce, replay, simulate --to): WRITE; CREATE if it is missing."""
    return [Right("WRITE", "topic", topic), Right("CREATE", "topic", topic, if_missing=True)]


def reader_rights(topic: str) -> list[Right]:
    """What reading ``topic`` without a consumer group takes (record, replay kafka:NAME)."""
    return [Right("READ", "topic", topic)]


# --- the two requests aiokafka lacks: Metadata v8, DescribeGroups v3 with its real response ------


class _MetadataResponseV8(Response):
    API_KEY = 3
    API_VERSION = 8
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            Array(("node_id", Int32), ("host", String("utf-8")), ("port", Int32), ("rack", String("utf-8"))),
        ),
        ("cluster_id", String("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            Array(
                ("error_code", Int16),
                ("topic", String("utf-8")),
                ("is_internal", Boolean),
                (
                    "partitions",
                    Array(
                        ("error_code", Int16),
                        ("partition", Int32),
                        ("leader", Int32),
                        ("leader_epoch", Int32),
                        ("replicas", Array(Int32)),
                        ("isr", Array(Int32)),
                        ("offline_replicas", Array(Int32)),
                    ),
                ),
                ("topic_authorized_operations", Int32),
            ),
        ),
        ("cluster_authorized_operations", Int32),
    )


class _MetadataRequestV8(RequestStruct):
    API_KEY = 3
    API_VERSION = 8
    RESPONSE_TYPE = _MetadataResponseV8
    SCHEMA = Schema(
        ("topics", Array(String("utf-8"))),
        ("allow_auto_topic_creation", Boolean),
        ("include_cluster_authorized_operations", Boolean),
        ("include_topic_authorized_operations", Boolean),
    )


class _DescribeGroupsResponseV3(Response):
    API_KEY = 15
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "groups",
            Array(
                ("error_code", Int16),
                ("group", String("utf-8")),
                ("state", String("utf-8")),
                ("protocol_type", String("utf-8")),
                ("protocol", String("utf-8")),
                (
                    "members",
                    Array(
                        ("member_id", String("utf-8")),
                        ("client_id", String("utf-8")),
                        ("client_host", String("utf-8")),
                        ("member_metadata", Bytes),
                        ("member_assignment", Bytes),
                    ),
                ),
                ("authorized_operations", Int32),
            ),
        ),
    )


class _DescribeGroupsRequestV3(RequestStruct):
    API_KEY = 15
    API_VERSION = 3
    RESPONSE_TYPE = _DescribeGroupsResponseV3
    SCHEMA = Schema(("groups", Array(String("utf-8"))), ("include_authorized_operations", Boolean))


def _one_version(struct: type[RequestStruct]) -> type[Request]:
    """A request sent in ``struct``'s version only (aiokafka picks among a request's versions)."""

    class OneVersion(Request[struct]):  # type: ignore[valid-type]
        API_KEY = struct.API_KEY

        def __init__(self, *fields: object) -> None:
            self.fields = fields

        def build(self, request_struct_class: type[RequestStruct]) -> RequestStruct:
            return request_struct_class(*self.fields)

    return OneVersion


# Metadata for topics (auto-creation off), with what the principal may do on each.
_AuthorizedMetadata = _one_version(_MetadataRequestV8)
# DescribeGroups, with what the principal may do on each group.
_AuthorizedGroups = _one_version(_DescribeGroupsRequestV3)


# --- asking ----------------------------------------------------------------------------------------


def _operations(field: int) -> set[str] | None:
    """The operations an "authorized operations" bit field allows; None when the broker did not say."""
    if field == _NOT_SAID:
        return None
    return {name for name, code in OPERATION_CODES.items() if field & (1 << code)}


@dataclass
class _TopicView:
    allowed: set[str] | None  # None: the broker did not say
    exists: bool | None  # None: cannot tell (the principal may not even describe it)


async def _topic_views(client: AIOKafkaClient, topics: list[str]) -> dict[str, _TopicView]:
    """What the principal may do on each topic, and which topics exist."""
    response = await client.send(client.get_random_node(), _AuthorizedMetadata(topics, False, False, True))
    views = {}
    for code, topic, _internal, _partitions, operations in response.topics:
        error = for_code(code)
        if error is TopicAuthorizationFailedError:  # not even DESCRIBE: nothing it needs is allowed
            views[topic] = _TopicView(allowed=set(), exists=None)
        else:
            views[topic] = _TopicView(_operations(operations), error is not UnknownTopicOrPartitionError)
    return views


async def _not_creatable(target: Target, topics: list[str]) -> set[str]:
    """Those of ``topics`` the principal may not create, from a CreateTopics that only validates.

    The broker authorizes it as a creation (CREATE on the cluster or on the
    topic), answering "already exists" for an existing topic only to who may
    create it; any other refusal (a policy, the replication) is not ours to judge.
    """
    admin = AIOKafkaAdminClient(**client_options(target), client_id="motwatch-rights")
    try:
        await admin.start()
        response = await admin.create_topics([NewTopic(t, 1, 1) for t in topics], validate_only=True)
    finally:
        await admin.close()
    return {
        entry[0] for entry in response.topic_errors if for_code(entry[1]) is TopicAuthorizationFailedError
    }


async def _group_operations(client: AIOKafkaClient, group: str, timeout: float) -> set[str] | None:
    """What the principal may do on ``group``; None when the broker does not say within ``timeout``.

    A fresh cluster answers "coordinator not available" while it creates its
    offsets topic: asked again until ``timeout``. A principal that may not
    even describe the group is refused at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = await client.send(client.get_random_node(), FindCoordinatorRequest(group, 0))
        error = for_code(found.error_code)
        if error is GroupAuthorizationFailedError:
            return set()
        if error is NoError:
            response = await client.send(found.coordinator_id, _AuthorizedGroups([group], True))
            (described,) = response.groups
            error = for_code(described[0])
            if error is GroupAuthorizationFailedError:
                return set()
            if error is NoError:
                return _operations(described[-1])
        if not error.retriable or time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.2)


def _in_question(right: Right, view: _TopicView | None) -> bool:
    """Does the broker not show ``right`` on its topic (a CREATE "if missing" counts only then)?"""
    if view is None or view.allowed is None or (right.if_missing and view.exists is not False):
        return False
    return right.operation not in view.allowed


async def missing_rights(
    target: Target, rights: Iterable[Right], *, group_timeout: float = 10.0
) -> list[Right]:
    """The ``rights`` the broker says this client's principal does not have, in their order."""
    rights = list(rights)
    topics = list(dict.fromkeys(r.name for r in rights if r.resource_type == "topic"))
    groups = list(dict.fromkeys(r.name for r in rights if r.resource_type == "group"))
    client = AIOKafkaClient(**client_options(target), client_id="motwatch-rights")
    try:
        await client.bootstrap()
        try:
            views = await _topic_views(client, topics) if topics else {}
            allowed = {group: await _group_operations(client, group, group_timeout) for group in groups}
        except (IncompatibleBrokerVersion, NotImplementedError):  # before Kafka 2.3: it cannot say
            return []
    finally:
        await client.close()
    missing = {r for r in rights if r.resource_type == "topic" and _in_question(r, views.get(r.name))}
    # CREATE may come from the cluster, which a topic's operations do not show: ask the broker.
    creates = list(dict.fromkeys(r.name for r in missing if r.operation == "CREATE"))
    refused = await _not_creatable(target, creates) if creates else set()
    missing = {r for r in missing if r.operation != "CREATE" or r.name in refused}
    for right in rights:
        ops = allowed.get(right.name) if right.resource_type == "group" else None
        if ops is not None and right.operation not in ops:
            missing.add(right)
    return [r for r in rights if r in missing]


async def require_rights(target: Target, rights: Iterable[Right], *, timeout: float = 30.0) -> None:
    """Raise NotAuthorized, one line naming every right missing, unless the principal has them all.

    Any other failure, or no answer within ``timeout``, is a one-line TransportError too.
    """
    async with one_line_errors(target), asyncio.timeout(timeout):
        await preflight(target)
        missing = await missing_rights(target, rights)
    if missing:
        raise not_authorized(target, [(r.operation, r.resource_type, r.name) for r in missing])
