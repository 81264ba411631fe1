"""The certificates of the secure local broker: a throw-away CA, the broker's and clients' certificates.

Everything is PEM, as Kafka reads it with ``ssl.keystore.type=PEM`` and
Python's ``ssl`` module loads it: keys are unencrypted PKCS#8 (Kafka needs no
``ssl.key.password`` for those) and only ever written with mode 0600, inside
the broker's own temporary folder. Keys are EC P-256: quick to make, and
every TLS client here speaks ECDSA.

``python -m motwatch.kafka.broker.tls --out DIR --host NAME...`` writes a CA,
a broker keystore for those names and a SCRAM password into ``DIR`` once
(what the ``certs`` service of ``docker-compose.secure.yml`` runs).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The names the broker's certificate covers: a client must reach it by one of them.
BROKER_DNS_NAMES = ("localhost",)
BROKER_IP_ADDRESSES = ("127.0.0.1",)
VALID_DAYS = 30


@dataclass(frozen=True)
class CertFiles:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file only its owner can read (no moment with wider rights)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class CertificateAuthority:
    """A self-signed CA that signs the broker's and the clients' certificates."""

    def __init__(self, common_name: str = "motwatch local broker CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def write(self, cert_path: Path) -> Path:
        """The CA certificate (what clients and the broker trust); its key never leaves memory."""
        cert_path.write_bytes(_cert_pem(self.cert))
        return cert_path

    def issue(
        self,
        common_name: str,
        *,
        server: bool = False,
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A certificate for ``common_name`` signed by this CA: a server's (with SANs) or a client's."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256()), key

    def write_keystore(self, path: Path, common_name: str) -> Path:
        """The broker's PEM keystore: its PKCS#8 key, then its certificate and the CA's (the chain)."""
        cert, key = self.issue(
            common_name, server=True, dns_names=BROKER_DNS_NAMES, ip_addresses=BROKER_IP_ADDRESSES
        )
        write_private(path, _key_pem(key) + _cert_pem(cert) + _cert_pem(self.cert))
        return path

    def write_client(self, directory: Path, common_name: str) -> CertFiles:
        """A client certificate for ``common_name`` (mutual TLS), as ``<name>.pem`` and ``<name>-key.pem``."""
        cert, key = self.issue(common_name)
        files = CertFiles(directory / f"{common_name}.pem", directory / f"{common_name}-key.pem")
        files.cert.write_bytes(_cert_pem(cert) + _cert_pem(self.cert))
        write_private(files.key, _key_pem(key))
        return files


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    """digitalSignature for a TLS end's ECDSA key; keyCertSign and cRLSign for the CA's."""
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


# What ``main`` writes into its folder.
CA_FILE = "ca.pem"
KEYSTORE_FILE = "broker.pem"
PASSWORD_FILE = "password"
# A keystore that expires sooner than this is made again.
RENEW_BEFORE = datetime.timedelta(days=1)


def _keystore_fits(keystore: Path, ca_file: Path, hosts: tuple[str, ...]) -> bool:
    """Whether ``keystore`` holds a certificate from ``ca_file`` for every host, good for a while yet."""
    try:
        cert = x509.load_pem_x509_certificates(keystore.read_bytes())[0]
        (ca_cert,) = x509.load_pem_x509_certificates(ca_file.read_bytes())
        cert.verify_directly_issued_by(ca_cert)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return set(hosts) <= set(names.get_values_for_type(x509.DNSName)) and left > RENEW_BEFORE


def write_broker_files(directory: Path, hosts: tuple[str, ...]) -> list[Path]:
    """A CA, a broker keystore for ``hosts`` and a SCRAM password in ``directory``; what it wrote.

    The CA and the keystore are one pair (the CA's key is gone once they are written): both are
    made again when either is missing, or the keystore is not the CA's, misses a host or expires
    within a day. The password (URL-safe, as Kafka's ``--add-config`` syntax has no escapes) is
    made only when missing or empty.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, keystore, password = directory / CA_FILE, directory / KEYSTORE_FILE, directory / PASSWORD_FILE
    written: list[Path] = []
    if not _keystore_fits(keystore, ca_file, hosts):
        ca = CertificateAuthority()
        cert, key = ca.issue(hosts[0], server=True, dns_names=hosts)
        write_private(keystore, _key_pem(key) + _cert_pem(cert) + _cert_pem(ca.cert))
        written += [keystore, ca.write(ca_file)]
    if not password.is_file() or password.stat().st_size == 0:
        write_private(password, (secrets.token_urlsafe(24) + "\n").encode())
        written.append(password)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m motwatch.kafka.broker.tls",
        description="Write a CA, a broker PEM keystore for the --host names and a SCRAM password, once.",
    )
    parser.add_argument("--out", type=Path, required=True, help="the folder (made if missing)")
    parser.add_argument("--host", dest="hosts", metavar="NAME", action="append", required=True)
    args = parser.parse_args(argv)
    written = write_broker_files(args.out, tuple(args.hosts))
    print(f"wrote {', '.join(path.name for path in written)}" if written else f"{args.out}: all present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
