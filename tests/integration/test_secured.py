"""The worker and the commands on a secured cluster: TLS alone, SCRAM over TLS, mutual TLS.

Each way in, simulated journeys go through ``motwatch produce`` on the secured
listener while ``motwatch worker`` runs on it too; the moments it writes are
``motwatch detect``'s for the same file, ids included, and ``motwatch record``
reads them back through the same listener. A wrong password, an untrusted
certificate and a host name the certificate does not cover each end in one
line that says which, with no traceback and no secret; and the worker's log
holds no password even at debug level. The checks read the
topics on the broker's PLAINTEXT listener, a super user's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from motwatch.kafka.broker.secure import SecureKafkaBroker
from tests.workers import (
    READY_MARK,
    WorkerProcess,
    read_topic,
    run_cli,
    secured_env,
    worker_round_trip,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples.jsonl"
# Idle advance far beyond the test: only the stream itself moves event time.
SETTINGS = {"partitions": 2, "idle_advance_s": 36000}


@pytest.mark.parametrize("way", ["tls", "scram", "mtls"])
async def test_the_worker_and_the_commands_work_through_each_secured_listener(
    broker: SecureKafkaBroker, way: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = secured_env(broker, way, topic_prefix, **SETTINGS)
    assert broker.bootstrap is not None
    await worker_round_trip(env, broker.bootstrap, topic_prefix, tmp_path)


def _one_line_failure(done, *, says: str, secret: str | None = None) -> None:
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert len(err.strip().splitlines()) == 1, err
    assert says in err and "Traceback" not in err
    if secret is not None:
        assert secret not in err and secret not in done.stdout.decode()


@pytest.mark.parametrize("command", ["produce", "worker"])
async def test_a_wrong_password_is_one_line_that_says_so(
    broker: SecureKafkaBroker, command: str, topic_prefix: str, tmp_path: Path
) -> None:
    wrong = "not-the-password-" + topic_prefix
    env = secured_env(broker, "scram", topic_prefix) | {"MOTWATCH_SASL_PASSWORD": wrong}
    args = ["produce", str(EXAMPLES)]
    done = run_cli(*(args if command == "produce" else ["worker"]), env=env, cwd=tmp_path, timeout=120)
    _one_line_failure(
        done, says="login refused: wrong username or password for user 'motwatch'", secret=wrong
    )
    assert broker.password not in done.stderr.decode()


async def test_an_untrusted_certificate_is_one_line_that_says_so(
    broker: SecureKafkaBroker, topic_prefix: str, tmp_path: Path
) -> None:
    env = secured_env(broker, "tls", topic_prefix)
    del env["MOTWATCH_SSL_CAFILE"]  # the system's CAs do not know the broker's
    done = run_cli("record", "moments", "--out", str(tmp_path / "x.jsonl"), "--max", "1", env=env)
    _one_line_failure(done, says="the broker's certificate is not trusted (set ssl_cafile")


async def test_a_host_name_the_certificate_does_not_cover_is_one_line_that_says_so(
    broker: SecureKafkaBroker, topic_prefix: str, tmp_path: Path
) -> None:
    env = secured_env(broker, "tls", topic_prefix)
    # 127.1 reaches 127.0.0.1, but the certificate names localhost and 127.0.0.1 only.
    env["MOTWATCH_BROKER"] = env["MOTWATCH_BROKER"].replace("127.0.0.1", "127.1")
    done = run_cli("produce", str(EXAMPLES), env=env)
    _one_line_failure(done, says="the broker's certificate is not valid for the host name 127.1")
    env["MOTWATCH_SSL_CHECK_HOSTNAME"] = "false"
    done = run_cli("produce", str(EXAMPLES), env=env)
    assert done.returncode == 0, done.stderr.decode()


async def test_no_secret_reaches_the_worker_log_even_at_debug_level(
    broker: SecureKafkaBroker, topic_prefix: str, tmp_path: Path
) -> None:
    env = secured_env(broker, "scram", topic_prefix, **SETTINGS)
    worker = WorkerProcess(env, tmp_path / "w")
    worker.spawn([sys.executable, "-m", "motwatch.cli", "worker", "--loglevel", "debug"], env)
    try:
        worker.wait_ready(lambda: READY_MARK in worker.log(), 90)
        produced = run_cli("produce", str(EXAMPLES), env=env)
        assert produced.returncode == 0, produced.stderr.decode()
        assert broker.bootstrap is not None
        await read_topic(broker.bootstrap, f"{topic_prefix}moments", lambda r: len(r) >= 1)
    finally:
        worker.stop()
    log = worker.log()
    assert "[DEBUG]" in log, "the worker logged at debug level"
    assert broker.password not in log
