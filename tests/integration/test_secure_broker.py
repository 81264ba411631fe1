"""The secure local broker: TLS, mutual TLS and SCRAM-SHA-512 over TLS, ACLs, ``motwatch broker --secure``.

Clients are plain aiokafka ones, configured by hand, so these tests check the
broker rather than motwatch's own client settings. What each principal may do:

- ``User:motwatch`` (SCRAM, or its client certificate): nothing until granted.
- A TLS client without a certificate is ``User:ANONYMOUS``, the super user the
  broker's own PLAINTEXT traffic needs: it may do anything, like PLAINTEXT.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import selectors
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError
from aiokafka.helpers import create_ssl_context

from motwatch.kafka.broker import Acl, SecureKafkaBroker, ensure_jars
from motwatch.kafka.broker.tls import CertificateAuthority
from tests.workers import children, gone, wait_until

TIMEOUT = 30


async def _new_topic(broker: SecureKafkaBroker) -> str:
    """A fresh topic, made over the PLAINTEXT listener (a super user)."""
    assert broker.bootstrap is not None
    topic = f"secure-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    return topic


def _tls(broker: SecureKafkaBroker, *, cert: bool = False, cafile: Path | None = None) -> dict[str, Any]:
    """Client options for the SSL listener, with our user's certificate when ``cert``."""
    cafile = cafile or broker.ca_file
    assert broker.ssl_bootstrap is not None and cafile is not None
    context = create_ssl_context(
        cafile=str(cafile),
        certfile=str(broker.client_cert_file) if cert else None,
        keyfile=str(broker.client_key_file) if cert else None,
    )
    return {"bootstrap_servers": broker.ssl_bootstrap, "security_protocol": "SSL", "ssl_context": context}


def _scram(broker: SecureKafkaBroker, password: str | None = None) -> dict[str, Any]:
    """Client options for the SASL_SSL listener as our user."""
    assert broker.sasl_ssl_bootstrap is not None and broker.ca_file is not None
    return {
        "bootstrap_servers": broker.sasl_ssl_bootstrap,
        "security_protocol": "SASL_SSL",
        "ssl_context": create_ssl_context(cafile=str(broker.ca_file)),
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": broker.username,
        "sasl_plain_password": broker.password if password is None else password,
    }


async def _produce(topic: str, value: bytes, options: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(request_timeout_ms=TIMEOUT * 1000, **options)
    async with asyncio.timeout(TIMEOUT):
        await producer.start()
        try:
            await producer.send_and_wait(topic, value)
        finally:
            await producer.stop()


async def _consume_one(topic: str, options: dict[str, Any]) -> bytes | None:
    """The first record of ``topic``, read in a consumer group (group rights count too)."""
    consumer = AIOKafkaConsumer(
        topic,
        group_id=f"{topic}.readers",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **options,
    )
    async with asyncio.timeout(TIMEOUT):
        await consumer.start()
        try:
            return (await consumer.getone()).value
        finally:
            await consumer.stop()


async def _round_trip(broker: SecureKafkaBroker, options: dict[str, Any]) -> None:
    topic = await _new_topic(broker)
    await _produce(topic, b"across the secure listener", options)
    assert await _consume_one(topic, options) == b"across the secure listener"


# --- the three ways in ----------------------------------------------------------------------


async def test_scram_over_tls_round_trip(broker: SecureKafkaBroker) -> None:
    await _round_trip(broker, _scram(broker))


async def test_mutual_tls_round_trip(broker: SecureKafkaBroker) -> None:
    await _round_trip(broker, _tls(broker, cert=True))


async def test_tls_without_certificate_is_the_anonymous_super_user(
    secure_kafka_broker: SecureKafkaBroker,
) -> None:
    """No grants at all: a certificate-less TLS client is User:ANONYMOUS, a super user.

    Kafka must let the broker's own PLAINTEXT requests (User:ANONYMOUS)
    register the broker, so that principal is a super user, whichever
    listener it comes from. Documented here so no test takes it for an
    ACL-checked way in.
    """
    assert await secure_kafka_broker.acls("User:ANONYMOUS") == []
    await _round_trip(secure_kafka_broker, _tls(secure_kafka_broker))


# --- what must fail -------------------------------------------------------------------------


async def test_acls_are_enforced_per_principal(secure_kafka_broker: SecureKafkaBroker) -> None:
    """A certificate's CN is its principal, which may do only what it is granted."""
    name = f"stranger-{uuid.uuid4().hex[:6]}"
    files = secure_kafka_broker.issue_client_cert(name)
    assert secure_kafka_broker.ssl_bootstrap is not None and secure_kafka_broker.ca_file is not None
    options = {
        "bootstrap_servers": secure_kafka_broker.ssl_bootstrap,
        "security_protocol": "SSL",
        "ssl_context": create_ssl_context(
            cafile=str(secure_kafka_broker.ca_file), certfile=str(files.cert), keyfile=str(files.key)
        ),
    }
    topic = await _new_topic(secure_kafka_broker)
    with pytest.raises(TopicAuthorizationFailedError):
        await _produce(topic, b"denied", options)

    await secure_kafka_broker.grant(Acl(f"User:{name}", "topic", topic, "write"))
    try:
        await _produce(topic, b"granted", options)
        assert await secure_kafka_broker.acls(f"User:{name}") == [
            Acl(f"User:{name}", "topic", topic, "write")
        ]
    finally:
        assert await secure_kafka_broker.revoke_all(f"User:{name}") == 1


async def test_wrong_scram_password_fails_authentication(
    secure_kafka_broker: SecureKafkaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        await _produce("any", b"x", _scram(secure_kafka_broker, password="not-the-password"))
    assert "SaslAuthenticationFailed" in caplog.text
    assert "invalid credentials" in caplog.text


async def test_client_not_trusting_the_ca_fails_the_handshake(
    secure_kafka_broker: SecureKafkaBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other_ca = CertificateAuthority("some other CA").write(tmp_path / "other-ca.pem")
    options = _tls(secure_kafka_broker, cafile=other_ca)
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        await _produce("any", b"x", options)
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    assert "Hostname mismatch" not in caplog.text


async def test_name_the_certificate_does_not_cover_fails_verification(
    secure_kafka_broker: SecureKafkaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """The certificate covers localhost and 127.0.0.1; ``127.1`` reaches 127.0.0.1 under another name.

    ``127.1`` is the short form of 127.0.0.1 to the resolver (inet_aton), but
    not an IP address to OpenSSL, which then checks it as a host name: no
    subjectAltName matches it. The broker listens on 127.0.0.1 only, so no
    other name or address would reach it everywhere.
    """
    port = secure_kafka_broker.ssl_port
    assert port is not None and secure_kafka_broker.ca_file is not None
    context = ssl.create_default_context(cafile=str(secure_kafka_broker.ca_file))
    for name in ("localhost", "127.0.0.1"):  # what the certificate covers
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
            context.wrap_socket(sock, server_hostname=name) as tls,
        ):
            assert tls.version() is not None
    with (
        socket.create_connection(("127.1", port), timeout=10) as sock,
        pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"),
    ):
        context.wrap_socket(sock, server_hostname="127.1")

    options = {**_tls(secure_kafka_broker), "bootstrap_servers": f"127.1:{port}"}
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        await _produce("any", b"x", options)
    assert "Hostname mismatch" in caplog.text


# --- the files clients need -----------------------------------------------------------------


def test_credentials_file_is_private_motwatch_settings(secure_kafka_broker: SecureKafkaBroker) -> None:
    path, folder = secure_kafka_broker.credentials_file, secure_kafka_broker.tls_dir
    assert path is not None and folder is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert tomllib.loads(path.read_text()) == {
        "broker": secure_kafka_broker.sasl_ssl_bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "motwatch",
        "sasl_password": secure_kafka_broker.password,
        "ssl_cafile": str(secure_kafka_broker.ca_file),
    }
    assert secure_kafka_broker.password not in repr(secure_kafka_broker)


# --- motwatch broker --secure ---------------------------------------------------------------


def _read_lines(proc: subprocess.Popen[bytes], count: int, timeout: float) -> list[str]:
    """``count`` stdout lines, read from the pipe itself (no buffer to hide lines from select)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while data.count(b"\n") < count:
            if not selector.select(timeout):
                pytest.fail(f"only {data!r} within {timeout}s")
            chunk = os.read(fd, 65536)
            if not chunk:
                pytest.fail(f"stdout closed after {data!r}")
            data += chunk
    return data.decode().splitlines()


@pytest.mark.external
def test_motwatch_broker_secure(tmp_path: Path) -> None:
    ensure_jars()  # so a first fetch is not counted against the deadlines below
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "motwatch.cli", "broker", "--secure", "--grant-all", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    try:
        lines = _read_lines(proc, 7, timeout=90)
        assert re.fullmatch(r"ready 127\.0\.0\.1:\d+", lines[0]), lines  # as the plain broker's
        assert re.fullmatch(r"ready SSL 127\.0\.0\.1:\d+", lines[1]), lines
        assert re.fullmatch(r"ready SASL_SSL 127\.0\.0\.1:\d+", lines[2]), lines
        files = dict(line.split(" ", 1) for line in lines[3:])
        assert sorted(files) == ["ca", "client-cert", "client-key", "credentials"]
        assert Path(files["ca"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
        credentials = tomllib.loads(Path(files["credentials"]).read_text())
        assert credentials["broker"] == lines[2].split()[2]
        assert credentials["ssl_cafile"] == files["ca"]
        jvms = children(proc.pid)
        assert len(jvms) == 1, jvms

        # The credentials file is all a client needs, and --grant-all gave the user its rights.
        topic = f"secure-cli-{uuid.uuid4().hex[:8]}"
        options = {
            "bootstrap_servers": credentials["broker"],
            "security_protocol": credentials["security_protocol"],
            "ssl_context": create_ssl_context(cafile=credentials["ssl_cafile"]),
            "sasl_mechanism": credentials["sasl_mechanism"],
            "sasl_plain_username": credentials["sasl_username"],
            "sasl_plain_password": credentials["sasl_password"],
        }

        async def round_trip() -> bytes | None:
            await _produce(topic, b"from the command's broker", options)
            return await _consume_one(topic, options)

        assert asyncio.run(round_trip()) == b"from the command's broker"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        wait_until(lambda: gone(jvms[0]), 10, f"JVM pid {jvms[0]} to exit", interval=0.05)
        assert not Path(files["credentials"]).exists() and not Path(files["ca"]).exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        rest = proc.stdout.read().decode()
        proc.stdout.close()
    errors = stderr_path.read_text()
    assert "Traceback" not in errors
    assert rest == ""
    password = credentials["sasl_password"]
    assert password not in "\n".join(lines) and password not in errors
