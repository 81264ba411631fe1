"""Connection settings: validated at load, the same options for every client, the password out of sight."""

from __future__ import annotations

import ssl

import faust
import pytest

from motwatch.kafka.security import Endpoint, client_options, endpoint_of
from motwatch.settings import ConfigError, Settings, load_settings
from motwatch.streams.app import credentials_of

SECRET = "s3cr3t-Pa55"


def settings_from(**environ: str) -> Settings:
    return load_settings(None, environ={f"MOTWATCH_{k.upper()}": v for k, v in environ.items()})


def test_by_default_a_client_connects_in_plaintext() -> None:
    options = client_options(endpoint_of(Settings()))
    assert options == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert client_options("h:1") == {"bootstrap_servers": "h:1", "security_protocol": "PLAINTEXT"}
    assert credentials_of(endpoint_of(Settings())) is None


def test_sasl_ssl_gives_every_client_the_mechanism_the_user_and_a_verifying_tls_context() -> None:
    where = endpoint_of(
        settings_from(security_protocol="SASL_SSL", sasl_username="motwatch", sasl_password=SECRET)
    )
    options = client_options(where)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("motwatch", SECRET)
    context = options["ssl_context"]
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    credentials = credentials_of(where)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL" and credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("motwatch", SECRET)


def test_tls_alone_and_hostname_verification_off_on_request() -> None:
    where = endpoint_of(settings_from(security_protocol="SSL", ssl_check_hostname="false"))
    options = client_options(where)
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options
    assert not options["ssl_context"].check_hostname
    credentials = credentials_of(where)
    assert isinstance(credentials, faust.SSLCredentials) and credentials.protocol.value == "SSL"


def test_sasl_plaintext_has_no_tls_context() -> None:
    where = endpoint_of(
        settings_from(
            security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u", sasl_password="p"
        )
    )
    options = client_options(where)
    assert "ssl_context" not in options and options["sasl_mechanism"] == "PLAIN"
    credentials = credentials_of(where)
    assert isinstance(credentials, faust.SASLCredentials) and credentials.protocol.value == "SASL_PLAINTEXT"


def test_the_password_comes_from_a_file_read_when_a_client_connects(tmp_path) -> None:
    secret = tmp_path / "password"
    secret.write_text(SECRET + "\n")
    settings = settings_from(
        security_protocol="SASL_SSL", sasl_username="motwatch", sasl_password_file=str(secret)
    )
    assert endpoint_of(settings).password == SECRET
    secret.write_text("rotated\n")
    assert endpoint_of(settings).password == "rotated"


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"security_protocol": "SASL_SSL", "sasl_password": SECRET}, "needs sasl_username"),
        (
            {"security_protocol": "SASL_SSL", "sasl_username": "u"},
            "needs sasl_password or sasl_password_file",
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_username": "u", "sasl_password_file": "/no/such"},
            "/no/such",
        ),
        (
            {"security_protocol": "SSL", "ssl_certfile": "/etc/hostname"},
            "ssl_certfile and ssl_keyfile go together",
        ),
        ({"security_protocol": "SSL", "ssl_cafile": "/no/ca.pem"}, "ssl_cafile: no such file: /no/ca.pem"),
        ({"security_protocol": "TLS"}, "security_protocol"),
        ({"sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
    ],
)
def test_an_incomplete_security_setting_is_one_line_naming_what_is_missing(environ, says) -> None:
    with pytest.raises(ConfigError) as error:
        settings_from(**environ)
    assert says in str(error.value) and "\n" not in str(error.value)


def test_the_password_is_in_no_repr_dump_or_error() -> None:
    settings = settings_from(security_protocol="SASL_SSL", sasl_username="motwatch", sasl_password=SECRET)
    where = endpoint_of(settings)
    for text in (
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        repr(where),
        repr(credentials_of(where)),
    ):
        assert SECRET not in text
    with pytest.raises(ConfigError) as error:
        settings_from(security_protocol="SASL_SSL", sasl_password=SECRET)
    assert SECRET not in str(error.value)


def test_a_bare_bootstrap_is_a_plaintext_endpoint() -> None:
    assert Endpoint("h:1") == Endpoint(bootstrap="h:1", security_protocol="PLAINTEXT")
