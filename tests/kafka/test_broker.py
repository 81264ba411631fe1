"""The local broker: jar cache, JVM lifecycle, ``python -m motwatch.kafka.broker``, tool checks."""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from motwatch.commands.record import record
from motwatch.kafka.admin import create_topics
from motwatch.kafka.broker import (
    KAFKA_VERSION,
    Acl,
    BrokerError,
    KafkaBroker,
    SecureKafkaBroker,
    check_tools,
    ensure_jars,
    lib_dir,
    run_foreground,
    tls,
)
from motwatch.kafka.broker.tls import CertificateAuthority
from motwatch.kafka.connection import wait_for_broker
from motwatch.kafka.writer import produce_lines
from tests.workers import children, gone, readline_within, wait_until


def _env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _bin_with(tmp_path: Path, **tools: str) -> Path:
    """A directory to use as the whole PATH, holding only the given tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, target in tools.items():
        (bin_dir / name).symlink_to(target)
    return bin_dir


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


# --- KafkaBroker --------------------------------------------------------------------------


@pytest.mark.integration
def test_stop_leaves_no_jvm_and_no_temp_dir() -> None:
    with KafkaBroker(port=0) as broker:
        pid, workdir = broker.pid, broker.workdir
        assert pid is not None and workdir is not None and broker.log_path is not None
        assert broker.bootstrap == f"127.0.0.1:{broker.port}"
        assert not gone(pid)
        log = broker.log_path  # the listener opens a moment before this line is logged
        wait_until(lambda: "Kafka Server started" in log.read_text(), 10, "the started line", interval=0.05)
        with socket.create_connection(("127.0.0.1", broker.port), timeout=2):
            pass
    assert gone(pid)
    assert not workdir.exists()
    assert not broker.running and broker.bootstrap is None
    broker.stop()  # idempotent


@pytest.mark.integration
async def test_data_dir_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    with KafkaBroker(data_dir=data_dir) as broker:
        assert broker.bootstrap is not None
        await create_topics(broker.bootstrap, ["kept"], partitions=1)
        assert await produce_lines(broker.bootstrap, "kept", [b"survives"]) == 1
    assert (data_dir / "data" / "meta.properties").is_file()
    with KafkaBroker(data_dir=data_dir) as broker:
        assert broker.bootstrap is not None
        out = _Sink()
        n = await record(
            broker.bootstrap,
            "kept",
            out,
            from_beginning=True,
            idle_s=10,
            max_messages=1,
            with_meta=False,
        )
    assert (n, out.getvalue()) == (1, b"survives\n")


class _Sink:
    """A minimal binary sink (record() only writes and flushes)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def getvalue(self) -> bytes:
        return b"".join(self.chunks)


@pytest.mark.integration
def test_early_jvm_exit_reports_log_tail() -> None:
    broker = KafkaBroker(port=0, heap_mb=1)  # the JVM refuses to start with 1 MiB of heap
    with pytest.raises(BrokerError) as info:
        broker.start(timeout=60)
    message = str(info.value)
    assert "exited with code" in message and "heap" in message.lower()
    assert "\n" not in message
    assert broker.pid is not None and gone(broker.pid)
    assert broker.workdir is None


@pytest.mark.external
def test_port_in_use_is_refused_before_starting_a_jvm() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BrokerError, match=f"port {port} .* already in use"):
            KafkaBroker(port=port).start()


# --- SecureKafkaBroker's pieces (no JVM; the broker itself: tests/integration/test_secure_broker.py)


def test_certificates_chain_to_the_ca_and_name_the_broker(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    ca_file = ca.write(tmp_path / "ca.pem")
    keystore = ca.write_keystore(tmp_path / "broker.pem", "localhost")
    client = ca.write_client(tmp_path, "motwatch")

    # Kafka's PEM keystore: an unencrypted PKCS#8 key, then the chain; keys readable by us only.
    assert re.findall(r"-----BEGIN ([A-Z ]+)-----", keystore.read_text()) == [
        "PRIVATE KEY",
        "CERTIFICATE",
        "CERTIFICATE",
    ]
    assert re.findall(r"-----BEGIN ([A-Z ]+)-----", client.key.read_text()) == ["PRIVATE KEY"]
    assert {stat.S_IMODE(path.stat().st_mode) for path in (keystore, client.key)} == {0o600}

    (ca_cert,) = x509.load_pem_x509_certificates(ca_file.read_bytes())
    broker_cert, chained_ca = x509.load_pem_x509_certificates(keystore.read_bytes())
    client_cert, _ = x509.load_pem_x509_certificates(client.cert.read_bytes())
    assert chained_ca == ca_cert
    for cert in (broker_cert, client_cert):
        cert.verify_directly_issued_by(ca_cert)
    names = broker_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    # The SSL listener's principal mapping turns this subject into User:motwatch.
    assert client_cert.subject.rfc4514_string() == "CN=motwatch"
    usage = client_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_secure_settings_are_the_plain_ones_plus_security(tmp_path: Path) -> None:
    plain, secure = KafkaBroker(), SecureKafkaBroker()
    plain._choose_ports()
    secure.workdir = tmp_path
    secure._choose_ports()
    plain.port, plain.controller_port = secure.port, secure.controller_port
    before, after = plain._settings(tmp_path / "data"), secure._settings(tmp_path / "data")
    assert {key for key in before if before[key] != after[key]} == {
        "listeners",
        "advertised.listeners",
        "listener.security.protocol.map",
    }
    assert len({secure.port, secure.controller_port, secure.ssl_port, secure.sasl_ssl_port}) == 4
    assert after["inter.broker.listener.name"] == "PLAINTEXT"
    assert after["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert after["super.users"] == "User:ANONYMOUS"  # the PLAINTEXT listeners' principal, not our user
    assert secure._format_options() == [
        "--add-scram",
        f"SCRAM-SHA-512=[name=motwatch,password={secure.password}]",
    ]


def test_secure_options_are_checked_before_starting(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match=r"^--grant-all goes with --secure"):
        run_foreground(0, grant_all=True)
    with pytest.raises(BrokerError, match=r"no --data-dir$"):
        run_foreground(0, secure=True, data_dir=str(tmp_path))
    with pytest.raises(BrokerError, match=r"^bad user name"):
        SecureKafkaBroker(username="two words")
    with pytest.raises(BrokerError, match="not running"):
        SecureKafkaBroker().issue_client_cert("someone")
    with pytest.raises(ValueError, match="unknown ACL value 'everything'"):
        Acl("User:motwatch", "topic", "*", "everything")


# --- python -m motwatch.kafka.broker.tls: the certs service of docker-compose.secure.yml ------------


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in sorted(folder.iterdir())}


def test_tls_entry_point_writes_a_ca_keystore_and_password_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "certs"
    args = ["--out", str(out), "--host", "kafka", "--host", "localhost"]
    assert tls.main(args) == 0
    assert capsys.readouterr().out == "wrote broker.pem, ca.pem, password\n"
    keystore, password = out / "broker.pem", out / "password"

    # Kafka's PEM keystore: the unencrypted key of the broker's certificate, then the chain.
    assert re.findall(r"-----BEGIN ([A-Z ]+)-----", keystore.read_text()) == [
        "PRIVATE KEY",
        "CERTIFICATE",
        "CERTIFICATE",
    ]
    (ca_cert,) = x509.load_pem_x509_certificates((out / "ca.pem").read_bytes())
    broker_cert, chained_ca = x509.load_pem_x509_certificates(keystore.read_bytes())
    key = serialization.load_pem_private_key(keystore.read_bytes(), password=None)
    assert key.public_key() == broker_cert.public_key()
    assert chained_ca == ca_cert
    broker_cert.verify_directly_issued_by(ca_cert)
    names = broker_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["kafka", "localhost"]
    assert names.get_values_for_type(x509.IPAddress) == []
    usage = broker_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    # URL-safe: Kafka's --add-config 'SCRAM-SHA-512=[password=...]' has no escapes.
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}\n", password.read_text())
    assert {stat.S_IMODE(path.stat().st_mode) for path in (keystore, password)} == {0o600}

    before = _files(out)
    assert tls.main(args) == 0
    assert capsys.readouterr().out == f"{out}: all present\n"
    assert _files(out) == before


def test_tls_entry_point_makes_a_new_pair_when_the_keystore_no_longer_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "certs"
    tls.main(["--out", str(out), "--host", "localhost"])
    password = (out / "password").read_bytes()

    def renewed(*hosts: str) -> bool:
        """Whether a run made a new CA and keystore (which always fit together)."""
        before = (out / "broker.pem").read_bytes()
        tls.main(["--out", str(out), *(word for host in hosts for word in ("--host", host))])
        (ca_cert,) = x509.load_pem_x509_certificates((out / "ca.pem").read_bytes())
        broker_cert = x509.load_pem_x509_certificates((out / "broker.pem").read_bytes())[0]
        broker_cert.verify_directly_issued_by(ca_cert)
        return (out / "broker.pem").read_bytes() != before

    assert renewed("kafka", "localhost")  # a host it did not cover
    assert not renewed("kafka")
    (out / "ca.pem").unlink()  # half a pair
    assert renewed("kafka")
    monkeypatch.setattr(tls, "RENEW_BEFORE", datetime.timedelta(days=tls.VALID_DAYS + 1))  # expiring
    assert renewed("kafka")
    assert (out / "password").read_bytes() == password


# --- python -m motwatch.kafka.broker ------------------------------------------------------------


@pytest.mark.integration
def test_foreground_broker_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    ensure_jars()  # so the fetch, if any, is not counted against the deadlines below
    stderr = open(tmp_path / "stderr.txt", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "motwatch.kafka.broker", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    try:
        line = readline_within(proc, timeout=60).decode()
        assert line.startswith("ready 127.0.0.1:") and line.endswith("\n"), line
        bootstrap = line.split()[1]
        jvms = children(proc.pid)
        assert len(jvms) == 1, jvms
        asyncio.run(wait_for_broker(bootstrap, timeout=10))

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        wait_until(lambda: gone(jvms[0]), 10, f"JVM pid {jvms[0]} to exit", interval=0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()


@pytest.mark.external
def test_missing_java_is_one_line_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "motwatch.kafka.broker", "--port", "0"],
        env=_env(PATH=str(empty), JAVA_HOME=None, MOTWATCH_CACHE_DIR=str(tmp_path / "cache")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "motwatch broker: java not found: install a Java 17+ JDK "
        "(Debian: apt-get install openjdk-17-jre-headless)"
    ]


@pytest.mark.external
def test_missing_mvn_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    java = shutil.which("java")
    if java is None:
        pytest.fail("java not found: this test needs a real java to isolate the mvn check")
    monkeypatch.setenv("PATH", str(_bin_with(tmp_path, java=os.path.realpath(java))))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("MOTWATCH_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(BrokerError, match=r"^mvn not found: install Maven \(Debian"):
        check_tools()
    with pytest.raises(BrokerError, match=r"^mvn not found"):
        ensure_jars()


@pytest.mark.external
def test_old_java_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "jdk8"
    (home / "bin").mkdir(parents=True)
    _script(home / "bin" / "java", """echo 'openjdk version "1.8.0_392"' >&2\n""")
    monkeypatch.setenv("JAVA_HOME", str(home))
    with pytest.raises(BrokerError, match=r"is Java 8; Kafka .* needs Java 17"):
        check_tools()


# --- jar cache ----------------------------------------------------------------------------


@pytest.mark.external
def test_failed_fetch_names_the_log_and_leaves_nothing_half_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java = shutil.which("java")
    if java is None:
        pytest.fail("java not found: this test needs a real java")
    bin_dir = _bin_with(tmp_path, java=os.path.realpath(java))
    _script(bin_dir / "mvn", "echo '[ERROR] Could not resolve dependencies: offline'\nexit 1\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("MOTWATCH_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(BrokerError) as info:
        ensure_jars()
    log = tmp_path / "cache" / f"kafka-{KAFKA_VERSION}" / "mvn.log"
    assert str(info.value) == (
        f"mvn failed to fetch Kafka {KAFKA_VERSION} jars: Could not resolve dependencies: offline; see {log}"
    )
    assert not lib_dir().exists()
    assert not list(log.parent.glob("lib.tmp-*"))


@pytest.mark.integration
def test_concurrent_fetches_share_one_download(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from motwatch.kafka.broker import ensure_jars\n"
        "print(ensure_jars(announce=lambda m: print('FETCHING', file=sys.stderr)))\n"
    )
    env = _env(MOTWATCH_CACHE_DIR=str(tmp_path / "cache"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [proc.communicate(timeout=600) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], results
    lib = tmp_path / "cache" / f"kafka-{KAFKA_VERSION}" / "lib"
    assert [out.strip() for out, _ in results] == [str(lib), str(lib)]
    assert sum(err.count("FETCHING") for _, err in results) == 1
    assert (lib / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()
    assert not list(lib.parent.glob("lib.tmp-*"))
