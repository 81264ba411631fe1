"""The certificates of the secure local broker: a throw-away CA, the broker's and clients' certificates.

Everything is PEM, as Kafka reads it with ``ssl.keystore.type=PEM`` and
Python's ``ssl`` module loads it: keys are unencrypted PKCS#8 (Kafka needs no
``ssl.key.password`` for those) and only ever written with mode 0600, inside
the broker's own temporary folder. Keys are EC P-256: quick to make, and
every TLS client here speaks ECDSA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
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
