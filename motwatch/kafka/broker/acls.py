"""Grant, list and revoke Kafka ACLs: what the secure local broker's tests give each principal.

aiokafka's admin client (0.14) has no ACL calls, but its protocol module has
the CreateAcls, DescribeAcls and DeleteAcls requests and its client
negotiates their versions, so these few functions send them. They connect
with whatever client options they are given: by default a bare PLAINTEXT
bootstrap, which on the secure local broker is ``User:ANONYMOUS``, a super
user (the broker's own traffic uses that listener).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest

# Kafka's wire codes (org.apache.kafka.common.resource / acl), by lower-case name.
RESOURCE_TYPES = {
    "topic": 2,
    "group": 3,
    "cluster": 4,
    "transactional_id": 5,
    "delegation_token": 6,
    "user": 7,
}
OPERATIONS = {
    "all": 2,
    "read": 3,
    "write": 4,
    "create": 5,
    "delete": 6,
    "alter": 7,
    "describe": 8,
    "cluster_action": 9,
    "describe_configs": 10,
    "alter_configs": 11,
    "idempotent_write": 12,
    "create_tokens": 13,
    "describe_tokens": 14,
}
PATTERNS = {"literal": 3, "prefixed": 4}
PERMISSIONS = {"deny": 2, "allow": 3}
_ANY = 1  # the "any" value of every one of these codes, in filters
CLUSTER = "kafka-cluster"  # the one name of the cluster resource


def _name_of(codes: dict[str, int], code: int) -> str:
    return next((name for name, value in codes.items() if value == code), str(code))


@dataclass(frozen=True)
class Acl:
    """One ACL: ``principal`` may (or may not) do ``operation`` on a resource, from ``host``.

    ``principal`` is e.g. ``User:motwatch``; ``name`` ``*`` with the literal
    pattern means every resource of that type.
    """

    principal: str
    resource_type: str
    name: str
    operation: str
    pattern: str = "literal"
    host: str = "*"
    permission: str = "allow"

    def __post_init__(self) -> None:
        for value, codes in (
            (self.resource_type, RESOURCE_TYPES),
            (self.operation, OPERATIONS),
            (self.pattern, PATTERNS),
            (self.permission, PERMISSIONS),
        ):
            if value not in codes:
                raise ValueError(f"unknown ACL value {value!r}: use one of {', '.join(codes)}")


def all_rights(principal: str) -> list[Acl]:
    """Everything on every topic, group and transactional id, and on the cluster."""
    return [
        Acl(principal, "topic", "*", "all"),
        Acl(principal, "group", "*", "all"),
        Acl(principal, "transactional_id", "*", "all"),
        Acl(principal, "cluster", CLUSTER, "all"),
    ]


async def _send_all(bootstrap: str, requests: list[Any], options: dict[str, Any]) -> list[Any]:
    """Send ``requests`` in turn to one broker; their responses."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, **options)
    try:
        await client.bootstrap()
        node = client.get_random_node()
        return [await client.send(node, request) for request in requests]
    finally:
        await client.close()


async def describe_acls(bootstrap: str, principal: str | None = None, **options: Any) -> list[Acl]:
    """The ACLs the broker holds, only ``principal``'s when given."""
    request = DescribeAclsRequest(_ANY, None, _ANY, principal, None, _ANY, _ANY)
    (response,) = await _send_all(bootstrap, [request], options)
    if response.error_code:
        raise for_code(response.error_code)(f"describing ACLs: {response.error_message}")
    return [
        Acl(
            acl_principal,
            _name_of(RESOURCE_TYPES, resource_type),
            name,
            _name_of(OPERATIONS, operation),
            _name_of(PATTERNS, pattern),
            host,
            _name_of(PERMISSIONS, permission),
        )
        for resource_type, name, pattern, acls in response.resources
        for acl_principal, host, operation, permission in acls
    ]


async def create_acls(bootstrap: str, acls: Iterable[Acl], *, timeout: float = 10.0, **options: Any) -> None:
    """Create ``acls`` and return once the broker enforces them.

    The controller has them when CreateAcls answers; the broker's authorizer
    applies them a moment later, so we wait until DescribeAcls (which the
    broker answers from its authorizer) lists them all.
    """
    wanted = list(acls)
    requests = [
        CreateAclsRequest(
            RESOURCE_TYPES[acl.resource_type],
            acl.name,
            PATTERNS[acl.pattern],
            acl.principal,
            acl.host,
            OPERATIONS[acl.operation],
            PERMISSIONS[acl.permission],
        )
        for acl in wanted
    ]
    for acl, response in zip(wanted, await _send_all(bootstrap, requests, options), strict=True):
        for code, message in response.creation_responses:
            if code:
                raise for_code(code)(f"creating {acl}: {message}")
    deadline = time.monotonic() + timeout
    principals = {acl.principal for acl in wanted}
    while True:
        held: set[Acl] = set()
        for principal in principals:
            held.update(await describe_acls(bootstrap, principal, **options))
        if held.issuperset(wanted):
            return
        if time.monotonic() > deadline:
            missing = sorted(set(wanted) - held, key=str)
            raise TimeoutError(f"the broker did not apply {missing} within {timeout}s")
        await asyncio.sleep(0.05)


async def delete_acls(bootstrap: str, principal: str, *, timeout: float = 10.0, **options: Any) -> int:
    """Delete every ACL of ``principal``; how many there were. Returns once the broker forgot them."""
    request = DeleteAclsRequest(_ANY, None, _ANY, principal, None, _ANY, _ANY)
    (response,) = await _send_all(bootstrap, [request], options)
    deleted = 0
    for code, message, matching in response.filter_responses:
        if code:
            raise for_code(code)(f"deleting the ACLs of {principal}: {message}")
        deleted += len(matching)
    deadline = time.monotonic() + timeout
    while await describe_acls(bootstrap, principal, **options):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the broker still applies ACLs of {principal} after {timeout}s")
        await asyncio.sleep(0.05)
    return deleted
