"""Where and how a client connects to Kafka: the bootstrap servers and the settings' security options.

Every aiokafka client motwatch makes takes its arguments from
:func:`client_options`; the worker's Faust app gets the same options as
Faust credentials (``motwatch.streams.app``). A bare bootstrap string is a
PLAINTEXT endpoint, as the tests and the local broker use.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from aiokafka.helpers import create_ssl_context

from motwatch.settings import Settings


@dataclass(frozen=True)
class Endpoint:
    """A Kafka cluster as a client reaches it; ``password`` is never part of its repr."""

    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    cafile: str = ""
    certfile: str = ""
    keyfile: str = ""
    check_hostname: bool = True

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of this endpoint, or None without TLS."""
        if not self.uses_tls:
            return None
        context = create_ssl_context(
            cafile=self.cafile or None, certfile=self.certfile or None, keyfile=self.keyfile or None
        )
        context.check_hostname = self.check_hostname
        return context


Target = str | Endpoint


def endpoint_of(settings: Settings) -> Endpoint:
    """The endpoint the settings describe."""
    return Endpoint(
        bootstrap=settings.broker,
        security_protocol=settings.security_protocol,
        sasl_mechanism=settings.sasl_mechanism,
        username=settings.sasl_username,
        password=settings.password() if settings.security_protocol.startswith("SASL_") else "",
        cafile=settings.ssl_cafile,
        certfile=settings.ssl_certfile,
        keyfile=settings.ssl_keyfile,
        check_hostname=settings.ssl_check_hostname,
    )


def endpoint(target: Target) -> Endpoint:
    """A bootstrap string is a PLAINTEXT endpoint."""
    return Endpoint(bootstrap=target) if isinstance(target, str) else target


def address(target: Target) -> str:
    """The bootstrap servers of ``target``."""
    return target if isinstance(target, str) else target.bootstrap


def client_options(target: Target) -> dict[str, Any]:
    """The keyword arguments of any aiokafka client (consumer, producer, admin) for ``target``."""
    where = endpoint(target)
    options: dict[str, Any] = {
        "bootstrap_servers": where.bootstrap,
        "security_protocol": where.security_protocol,
    }
    if where.uses_tls:
        options["ssl_context"] = where.ssl_context()
    if where.uses_sasl:
        options["sasl_mechanism"] = where.sasl_mechanism
        options["sasl_plain_username"] = where.username
        options["sasl_plain_password"] = where.password
    return options
