"""Reaching Kafka: wait for a broker, and every aiokafka failure as one line for a person.

Every failure surfaces as a :class:`TransportError` (or its
:class:`BrokerUnreachable`) with a one-line message, so commands never need to
print tracebacks.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from motwatch.kafka.security import Target, address, client_options

DEFAULT_PORT = 9092


class TransportError(Exception):
    """Talking to Kafka failed; the message is one line meant for a person."""


class BrokerUnreachable(TransportError):
    """Nothing answers at the bootstrap address."""


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
    try:
        yield
    except KafkaConnectionError:
        reason = await _tcp_probe(bootstrap, 2.0) or "connection lost"
        raise BrokerUnreachable(f"cannot reach Kafka at {bootstrap}: {reason}") from None
    except (KafkaTimeoutError, TimeoutError):
        raise TransportError(f"timed out talking to Kafka at {bootstrap}") from None
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
            try:
                async with asyncio.timeout(max(remaining, 1.0)):
                    await admin.start()
                return
            except (KafkaError, TimeoutError, OSError):
                reason = "port is open but Kafka does not answer"
            finally:
                await admin.close()
        if time.monotonic() >= deadline:
            raise BrokerUnreachable(f"cannot reach Kafka at {bootstrap}: {reason}")
        await asyncio.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
