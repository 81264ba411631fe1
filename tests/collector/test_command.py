"""``motwatch collect`` as a user meets it: a bad argument or a refused start is one line, no traceback."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.workers import run_cli

pytestmark = pytest.mark.external


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Built-in settings and an unreachable broker."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOTWATCH_")}
    (tmp_path / "defaults.toml").write_text("")
    return clean | {"MOTWATCH_BROKER": "127.0.0.1:1", "MOTWATCH_CONFIG": str(tmp_path / "defaults.toml")}


def _one_line(done, code: int) -> str:
    err = done.stderr.decode()
    assert done.returncode == code, (done.returncode, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert done.stdout == b""
    return err.strip()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--port", "-1"), "'-1' is not a port number"),
        (("--port", "abc"), "'abc' is not a port number"),
        (("--port", "65536"), "'65536' is not a port number"),
        (("--shop", "yes"), "unrecognized arguments"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(env, args, says):
    err = _one_line(run_cli("collect", *args, env=env), 2)
    assert says in err and "--help" in err


def test_without_a_write_key_it_refuses_to_start(env):
    err = _one_line(run_cli("collect", "--port", "0", env=env), 2)
    assert err.startswith("motwatch collect: no write key") and "MOTWATCH_WRITE_KEYS" in err


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "10.1.2.3"])
def test_no_auth_is_refused_off_the_loopback(env, bind):
    err = _one_line(run_cli("collect", "--no-auth", "--bind", bind, "--port", "0", env=env), 2)
    assert "--no-auth only on a loopback address" in err


def test_a_port_in_use_is_one_line(env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = env | {"MOTWATCH_WRITE_KEYS": "some-write-key"}
        err = _one_line(run_cli("collect", "--port", str(port), env=env), 1)
    assert f"cannot listen on 127.0.0.1:{port}" in err


def test_an_unreachable_broker_is_one_line_without_the_key(env):
    env = env | {"MOTWATCH_WRITE_KEYS": "secret-write-key-9"}
    err = _one_line(run_cli("collect", "--port", "0", env=env, timeout=60), 1)
    assert "127.0.0.1:1" in err and "secret-write-key-9" not in err
