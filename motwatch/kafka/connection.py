"""Reaching Kafka: wait for a broker, and every aiokafka failure as one line for a person.

Every failure surfaces as a :class:`TransportError` (or its
:class:`BrokerUnreachable`, or :class:`ConnectionRefused` for a failed TLS
handshake or login) with a one-line message, so commands never need to print
tracebacks. aiokafka tells why a secured connection failed only in its log:
while a command connects, that log is taken in (not printed) and read for the
reason, which never quotes a secret. A right the broker refuses is a
:class:`NotAuthorized` naming it (README, Least privilege).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from motwatch.kafka.security import Target, address, client_options, endpoint

DEFAULT_PORT = 9092


class TransportError(Exception):
    """Talking to Kafka failed; the message is one line meant for a person."""


class BrokerUnreachable(TransportError):
    """Nothing answers at the bootstrap address."""


class ConnectionRefused(TransportError):
    """The broker answers but the TLS handshake or the login fails: retrying will not help."""


class NotAuthorized(TransportError):
    """The broker refuses this principal an operation: an ACL will help, retrying will not."""


# Where a person finds which ACLs motwatch needs.
LEAST_PRIVILEGE = "see README, Least privilege"
_AUTHORIZATION_ERRORS = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)


def not_authorized(target: Target, denied: Iterable[tuple[str | None, str, str]]) -> NotAuthorized:
    """One line naming each refused right, given as (operation, resource type, name) in order.

    E.g. ``not authorized to WRITE topic m.moments; READ group m.motwatch as user 'motwatch'
    on Kafka at h:9093 (grant it: see README, Least privilege)``; an operation of None is one
    the error does not tell.
    """
    names: dict[tuple[str | None, str], list[str]] = {}
    for operation, resource_type, name in denied:
        names.setdefault((operation, resource_type), [])
        if name and name not in names[operation, resource_type]:
            names[operation, resource_type].append(name)
    parts = []
    for (operation, resource_type), of_kind in names.items():
        kind = resource_type.replace("_", " ") + ("s" if len(of_kind) > 1 else "")
        parts.append(" ".join(filter(None, (operation or "use", kind, ", ".join(of_kind)))))
    where = endpoint(target)
    who = f" as user {where.username!r}" if where.uses_sasl else ""
    grant = "them" if len(parts) > 1 or any(len(n) > 1 for n in names.values()) else "it"
    return NotAuthorized(
        f"not authorized to {'; '.join(parts)}{who} on Kafka at {where.bootstrap} "
        f"(grant {grant}: {LEAST_PRIVILEGE})"
    )


def _failed_doing(exc: BaseException) -> str | None:
    """WRITE when a producer failed, READ when a consumer did (the innermost one), None otherwise."""
    doing, tb = None, exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.startswith("aiokafka.producer") or module == "motwatch.kafka.writer":
            doing = "WRITE"
        elif module.startswith("aiokafka.consumer") or module == "motwatch.kafka.reader":
            doing = "READ"
        tb = tb.tb_next
    return doing


def _refused(exc: KafkaError) -> list[tuple[str | None, str, str]]:
    """The rights an aiokafka authorization error stands for: (operation, resource type, name)."""
    named = exc.args[0] if exc.args else ""
    names = sorted(map(str, named)) if isinstance(named, set | frozenset | list | tuple) else [str(named)]
    doing = _failed_doing(exc)
    if isinstance(exc, GroupAuthorizationFailedError):
        return [("READ", "group", name) for name in names]
    if isinstance(exc, TransactionalIdAuthorizationFailed):
        return [("WRITE", "transactional_id", name) for name in names]
    if isinstance(exc, ClusterAuthorizationFailedError):
        # A producer is refused the cluster only for idempotence (InitProducerId).
        return [("IDEMPOTENT_WRITE" if doing == "WRITE" else None, "cluster", "kafka-cluster")]
    # A topic the client may not even describe is refused in metadata: DESCRIBE.
    return [(doing or "DESCRIBE", "topic", name) for name in names]


class _Taken(logging.Handler):
    """Keeps the messages of aiokafka's log while a command connects."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _aiokafka_log() -> Iterator[_Taken]:
    """aiokafka's warnings and errors, taken in instead of printed."""
    logger = logging.getLogger("aiokafka")
    taken, propagate = _Taken(), logger.propagate
    logger.addHandler(taken)
    logger.propagate = False
    try:
        yield taken
    finally:
        logger.removeHandler(taken)
        logger.propagate = propagate


def refusal(target: Target, messages: list[str]) -> str | None:
    """Why the broker refused a secured connection, from aiokafka's log; None if it does not say."""
    where = endpoint(target)
    text = "\n".join(messages)
    if "SaslAuthenticationFailed" in text or "Authentication failed" in text:
        return (
            f"login refused: wrong username or password for user {where.username!r} "
            f"(SASL {where.sasl_mechanism})"
        )
    if "UnsupportedSaslMechanism" in text:
        return f"the broker does not offer SASL mechanism {where.sasl_mechanism}"
    if "Hostname mismatch" in text or "IP address mismatch" in text:
        host = address(target).split(",")[0].rpartition(":")[0] or address(target)
        return (
            f"the broker's certificate is not valid for the host name {host} "
            "(connect by a name it lists, or set ssl_check_hostname = false)"
        )
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "the broker's certificate is not trusted (set ssl_cafile to the CA that signed it)"
    if "WRONG_VERSION_NUMBER" in text or ("SSL" in text and "record layer" in text):
        return "the TLS handshake failed: is this port a TLS listener?"
    return None


def _endpoints(bootstrap: str) -> list[tuple[str, int]]:
    """``"h1:9092,[::1]:9093,h3"`` -> host/port pairs (Kafka's default port if none)."""
    result = []
    for part in bootstrap.split(","):
        part = part.strip().removeprefix("PLAINTEXT://")
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if sep and port.isdigit() and (not host.count(":") or host.startswith("[")):
            result.append((host.strip("[]"), int(port)))
        else:
            result.append((part.strip("[]"), DEFAULT_PORT))
    return result


def _reason(exc: BaseException) -> str:
    """``connection refused`` rather than ``[Errno 111] Connect call failed (...)``."""
    if isinstance(exc, TimeoutError):
        return "no answer (timed out)"
    if isinstance(exc, socket.gaierror):
        text = exc.strerror or str(exc)
    elif isinstance(exc, OSError) and exc.errno:
        text = os.strerror(exc.errno)
    else:
        text = str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


async def _tcp_probe(bootstrap: str, timeout: float) -> str | None:
    """None if some bootstrap endpoint accepts a TCP connection, else why not."""
    endpoints = _endpoints(bootstrap)
    if not endpoints:
        return "no host:port given"
    reason = "unreachable"
    for host, port in endpoints:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError) as exc:
            reason = _reason(exc)
            continue
        writer.close()
        with suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1)
        return None
    return reason


async def preflight(target: Target, timeout: float = 5.0) -> None:
    """Fail fast, in one line, when nothing listens (aiokafka would log and retry)."""
    bootstrap = address(target)
    reason = await _tcp_probe(bootstrap, timeout)
    if reason is not None:
        raise BrokerUnreachable(f"cannot reach Kafka at {bootstrap}: {reason}")


@asynccontextmanager
async def one_line_errors(target: Target) -> AsyncIterator[None]:
    """Turn aiokafka's exceptions into one-line TransportErrors."""
    bootstrap = address(target)
    with _aiokafka_log() as log:
        try:
            yield
        except KafkaConnectionError:
            refused = refusal(target, log.messages)
            if refused is not None:
                raise ConnectionRefused(f"cannot connect to Kafka at {bootstrap}: {refused}") from None
            reason = await _tcp_probe(bootstrap, 2.0) or "connection lost"
            raise BrokerUnreachable(f"cannot reach Kafka at {bootstrap}: {reason}") from None
        except (KafkaTimeoutError, TimeoutError):
            raise TransportError(f"timed out talking to Kafka at {bootstrap}") from None
        except _AUTHORIZATION_ERRORS as exc:
            raise not_authorized(target, _refused(exc)) from None
        except KafkaError as exc:
            raise TransportError(f"Kafka at {bootstrap}: {exc}") from None


async def wait_for_broker(target: Target, timeout: float = 10.0) -> None:
    """Return once Kafka at ``target`` answers a metadata request.

    Retries until ``timeout`` (a broker may still be starting); then raises
    BrokerUnreachable naming the last reason, e.g. ``connection refused``.
    """
    bootstrap = address(target)
    deadline = time.monotonic() + timeout
    while True:
        remaining = max(deadline - time.monotonic(), 0.1)
        reason = await _tcp_probe(bootstrap, min(remaining, 5.0))
        if reason is None:
            admin = AIOKafkaAdminClient(
                **client_options(target), request_timeout_ms=int(max(remaining, 1.0) * 1000)
            )
            with _aiokafka_log() as log:
                try:
                    async with asyncio.timeout(max(remaining, 1.0)):
                        await admin.start()
                    return
                except (KafkaError, TimeoutError, OSError):
                    reason = "port is open but Kafka does not answer"
                finally:
                    await admin.close()
            refused = refusal(target, log.messages)
            if refused is not None:
                raise ConnectionRefused(f"cannot connect to Kafka at {bootstrap}: {refused}")
        if time.monotonic() >= deadline:
            raise BrokerUnreachable(f"cannot reach Kafka at {bootstrap}: {reason}")
        await asyncio.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
