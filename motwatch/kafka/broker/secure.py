"""The local broker with TLS, SCRAM and ACLs: what ``motwatch broker --secure`` and the security tests run.

The same single-node broker as :class:`KafkaBroker`, with two more listeners
on 127.0.0.1:

- ``SSL``: TLS; a client certificate is requested, not required. With one,
  the principal is its CN (``User:motwatch`` for :attr:`client_cert_file`).
- ``SASL_SSL``: TLS, then SCRAM-SHA-512 as :attr:`username` (added when the
  storage is formatted), with a password drawn at random for each broker.

The standard authorizer is on and ``User:motwatch`` starts with no rights at
all: tests grant exactly what they need (:meth:`grant`, :meth:`grant_all`).

The broker's own traffic (controller, inter-broker) stays on PLAINTEXT
listeners, whose principal is ``User:ANONYMOUS``; Kafka refuses to register
the broker unless that principal is a super user. So ``User:ANONYMOUS`` is a
super user, and that is also who a TLS client *without* a certificate is:
such a client may do anything, exactly like a PLAINTEXT one. Nothing is lost
to that (both ports are on 127.0.0.1 only); ACLs bite on ``SASL_SSL`` and on
``SSL`` with a client certificate.

The CA, the broker's keystore, the client certificate and the credentials
live in ``<workdir>/tls`` (keys and credentials mode 0600) and go away with
the broker. The CA's key never leaves this process.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

from .acls import Acl, all_rights, create_acls, delete_acls, describe_acls
from .jars import BrokerError
from .server import HOST, KafkaBroker, _free_ports
from .tls import CertFiles, CertificateAuthority, write_private

MECHANISM = "SCRAM-SHA-512"
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
# A client certificate's subject "CN=motwatch" is the principal User:motwatch.
PRINCIPAL_MAPPING = "RULE:^CN=([^,]+).*$/$1/,DEFAULT"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SecureKafkaBroker(KafkaBroker):
    """A :class:`KafkaBroker` with ``SSL`` and ``SASL_SSL`` listeners and the standard authorizer.

    ``port`` is the PLAINTEXT listener's (:attr:`bootstrap`, a super user's
    way in, for setting up topics and ACLs); the TLS listeners always get free
    ports. Always in a temporary directory: the SCRAM user is added when the
    storage is formatted, and its password is new for each broker.
    """

    def __init__(self, port: int = 0, *, heap_mb: int = 512, username: str = "motwatch") -> None:
        super().__init__(port, heap_mb=heap_mb)
        if not _NAME.match(username):
            raise BrokerError(f"bad user name {username!r}: use letters, digits, '.', '_' and '-'")
        self.username = username
        # URL-safe characters only: the storage tool's --add-scram syntax has no escapes.
        self.password = secrets.token_urlsafe(24)
        self.ssl_port: int | None = None
        self.sasl_ssl_port: int | None = None
        self._ca: CertificateAuthority | None = None

    # --- where clients connect, and with what -------------------------------------------------

    @property
    def ssl_bootstrap(self) -> str | None:
        """``127.0.0.1:<port>`` of the SSL listener while running."""
        return f"{HOST}:{self.ssl_port}" if self.bootstrap is not None else None

    @property
    def sasl_ssl_bootstrap(self) -> str | None:
        """``127.0.0.1:<port>`` of the SASL_SSL listener while running."""
        return f"{HOST}:{self.sasl_ssl_port}" if self.bootstrap is not None else None

    @property
    def principal(self) -> str:
        """The principal of both the SCRAM user and the client certificate."""
        return f"User:{self.username}"

    @property
    def tls_dir(self) -> Path | None:
        return self.workdir / "tls" if self.workdir is not None else None

    def _tls_file(self, name: str) -> Path | None:
        return self.tls_dir / name if self.tls_dir is not None else None

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate clients must trust (PEM)."""
        return self._tls_file("ca.pem")

    @property
    def client_cert_file(self) -> Path | None:
        """A certificate for :attr:`username`, for mutual TLS on the SSL listener (PEM, with the CA)."""
        return self._tls_file(f"{self.username}.pem")

    @property
    def client_key_file(self) -> Path | None:
        """The client certificate's key (PKCS#8 PEM, unencrypted, mode 0600)."""
        return self._tls_file(f"{self.username}-key.pem")

    @property
    def credentials_file(self) -> Path | None:
        """motwatch settings (TOML) for the SASL_SSL listener, password included (mode 0600)."""
        return self._tls_file("credentials.toml")

    def issue_client_cert(self, name: str) -> CertFiles:
        """Another client certificate from the broker's CA: principal ``User:<name>`` on the SSL listener."""
        if self._ca is None or self.tls_dir is None:
            raise BrokerError("the broker is not running: it has no CA")
        if not _NAME.match(name):
            raise BrokerError(f"bad certificate name {name!r}: use letters, digits, '.', '_' and '-'")
        return self._ca.write_client(self.tls_dir, name)

    # --- ACLs, set over the PLAINTEXT listener (a super user) ---------------------------------

    def _admin_bootstrap(self) -> str:
        if self.bootstrap is None:
            raise BrokerError("the broker is not running")
        return self.bootstrap

    async def grant(self, *acls: Acl) -> None:
        """Create ``acls``; returns once the broker enforces them."""
        await create_acls(self._admin_bootstrap(), acls)

    async def grant_all(self, principal: str | None = None) -> None:
        """Every right on every topic, group and transactional id and on the cluster (default: our user)."""
        await self.grant(*all_rights(principal or self.principal))

    async def acls(self, principal: str | None = None) -> list[Acl]:
        """The ACLs the broker holds (only ``principal``'s when given)."""
        return await describe_acls(self._admin_bootstrap(), principal)

    async def revoke_all(self, principal: str | None = None) -> int:
        """Delete every ACL of ``principal`` (default: our user); how many there were."""
        return await delete_acls(self._admin_bootstrap(), principal or self.principal)

    # --- KafkaBroker's hooks ------------------------------------------------------------------

    def _choose_ports(self) -> None:
        super()._choose_ports()
        taken = {self.port, self.controller_port}
        free = [port for port in _free_ports(4) if port not in taken]
        while len(free) < 2:  # only when the kernel hands out the same ports again
            free += [port for port in _free_ports(2) if port not in taken and port not in free]
        self.ssl_port, self.sasl_ssl_port = free[:2]

    def _prepare(self) -> tuple[Path, Path]:
        props, log4j = super()._prepare()
        tls = self.tls_dir
        assert tls is not None and self.ca_file is not None and self.credentials_file is not None
        tls.mkdir(mode=0o700)
        self._ca = CertificateAuthority()
        self._ca.write(self.ca_file)
        self._ca.write_keystore(tls / "broker.pem", "localhost")
        self._ca.write_client(tls, self.username)
        write_private(self.credentials_file, self._credentials().encode())
        return props, log4j

    def _credentials(self) -> str:
        """The SASL_SSL listener as motwatch settings: usable as ``--config`` as it is."""
        values = {
            "broker": f"{HOST}:{self.sasl_ssl_port}",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": MECHANISM,
            "sasl_username": self.username,
            "sasl_password": self.password,
            "ssl_cafile": str(self.ca_file),
        }
        lines = ["# The local secure broker's SASL_SSL listener, as motwatch settings. Secret: mode 0600."]
        # A JSON string of these characters is a TOML basic string.
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        return "\n".join(lines) + "\n"

    def _settings(self, data: Path) -> dict[str, str]:
        settings = super()._settings(data)
        assert self.tls_dir is not None
        plain = f"PLAINTEXT://{HOST}:{self.port}"
        tls = f"SSL://{HOST}:{self.ssl_port},SASL_SSL://{HOST}:{self.sasl_ssl_port}"
        settings.update(
            {
                "listeners": f"{plain},CONTROLLER://{HOST}:{self.controller_port},{tls}",
                "advertised.listeners": f"{plain},{tls}",
                "listener.security.protocol.map": (
                    "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL"
                ),
                # PEM files; an unencrypted PKCS#8 key needs no ssl.key.password.
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(self.tls_dir / "broker.pem"),
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(self.ca_file),
                "listener.name.ssl.ssl.client.auth": "requested",
                "ssl.principal.mapping.rules": PRINCIPAL_MAPPING,
                "sasl.enabled.mechanisms": MECHANISM,
                # Without a JAAS entry for the listener the broker refuses to start; SCRAM's
                # server side needs no options (the credentials are in the metadata log).
                f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": SCRAM_LOGIN,
                "authorizer.class.name": AUTHORIZER,
                # The controller and inter-broker listeners are PLAINTEXT: the broker's own
                # requests come from User:ANONYMOUS, which Kafka must let register the broker.
                "super.users": "User:ANONYMOUS",
            }
        )
        return settings

    def _format_options(self) -> list[str]:
        return ["--add-scram", f"{MECHANISM}=[name={self.username},password={self.password}]"]

    def _client_ports(self) -> list[int]:
        assert self.ssl_port is not None and self.sasl_ssl_port is not None
        return [*super()._client_ports(), self.ssl_port, self.sasl_ssl_port]

    def _cleanup(self) -> None:
        super()._cleanup()
        if self.workdir is None:
            self._ca = None
