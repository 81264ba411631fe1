"""Running real ``motwatch`` processes in tests, and reading topics back.

A worker is stopped by its PID: SIGTERM, a deadline, then SIGKILL. Nothing
here sleeps for a fixed time; every wait polls a condition until a deadline.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

if TYPE_CHECKING:
    from motwatch.kafka.broker.secure import SecureKafkaBroker

READY_MARK = "Worker]: Ready"


def stop_process(proc: subprocess.Popen, timeout: float) -> int:
    """Stop a process we started, by its PID: SIGTERM, wait ``timeout``, then SIGKILL; its exit code
    (negative for a signal)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def motwatch_env(bootstrap: str, prefix: str, **settings: Any) -> dict[str, str]:
    """Environment for a motwatch process: broker, prefix, and any ``MOTWATCH_*`` setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTWATCH_")}
    env["MOTWATCH_BROKER"] = bootstrap
    env["MOTWATCH_TOPIC_PREFIX"] = prefix
    env.setdefault("MOTWATCH_WEB_PORT", str(free_port()))
    # Tests wait for the input to be committed: Faust's commit pace, not the worker's 30 s.
    settings.setdefault("commit_interval_s", 2.8)
    for name, value in settings.items():
        env[f"MOTWATCH_{name.upper()}"] = str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "motwatch.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def detect_moments(path: Path, env: dict[str, str]) -> list[dict]:
    """``motwatch detect`` on a file: the moments it reports, as dicts."""
    done = run_cli("detect", str(path), env=env)
    assert done.returncode == 0, done.stderr.decode()
    return [orjson.loads(line) for line in done.stdout.splitlines()]


def canonical(moments: list[dict]) -> list[bytes]:
    """Moments in a form to compare whole, ids included, whatever order they came in."""
    return sorted(orjson.dumps(m, option=orjson.OPT_SORT_KEYS) for m in moments)


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def children(pid: int) -> list[int]:
    """Direct children of ``pid``, read from /proc (inspection only)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def readline_within(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """One stdout line from ``proc``, failing the test instead of blocking forever."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            pytest.fail(f"no output within {timeout}s")
    return proc.stdout.readline()


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class ServiceProcess:
    """A long-running program in a subprocess, its output in a log file, stopped by its PID."""

    name = "service"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log_path = workdir / f"{self.name}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv, env=env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def spawn_installed(self, program: str, make_target: str, args: list[str]) -> None:
        """Spawn ``program`` from the PATH with ``args``; not installed, the test fails naming the
        make target that installs it."""
        binary = shutil.which(program)
        if binary is None:
            pytest.fail(f"{program} is not installed: run make {make_target}", pytrace=False)
        self.spawn([binary, *args])

    def wait_ready(self, is_ready: Callable[[], bool], timeout: float, interval: float = 0.1) -> None:
        """Until ``is_ready()``; a process that exits meanwhile fails at once, with its log."""

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            return is_ready()

        wait_until(ready, timeout, f"{self.name} to be ready", interval)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, wait, then SIGKILL; returns the exit code (negative for a signal)."""
        return None if self.proc is None else stop_process(self.proc, timeout)


class WorkerProcess(ServiceProcess):
    """``motwatch worker`` in a subprocess."""

    name = "worker"

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        super().__init__(workdir)
        self.env = env

    def start(self, timeout: float = 90) -> WorkerProcess:
        self.spawn([sys.executable, "-m", "motwatch.cli", "worker"], self.env)
        self.wait_ready(lambda: READY_MARK in self.log(), timeout)
        return self

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@asynccontextmanager
async def _from_the_beginning(
    bootstrap: str, topic: str, deadline: float
) -> AsyncIterator[AIOKafkaConsumer | None]:
    """A consumer assigned every partition of ``topic`` from its first record; None when the
    topic has not appeared by ``deadline`` (monotonic)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            if time.monotonic() > deadline:
                yield None
                return
            await consumer._client.force_metadata_update()  # the topic may not exist yet
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        yield consumer
    finally:
        await consumer.stop()


async def end_offsets(consumer: AIOKafkaConsumer, topic: str) -> dict[TopicPartition, int]:
    """Each partition of ``topic`` and its end offset, as the broker has them now (none: no topic)."""
    await consumer._client.force_metadata_update()
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    return await consumer.end_offsets(tps) if tps else {}


async def wait_for(
    condition: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.05
) -> None:
    """``wait_until`` for a condition that asks the broker."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


async def read_topic(
    bootstrap: str,
    topic: str,
    until: Callable[[list[Any]], bool],
    timeout: float = 60,
) -> list[Any]:
    """Every record of ``topic`` from the beginning, read until ``until(records)`` holds or time is up."""
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    async with _from_the_beginning(bootstrap, topic, deadline) as consumer:
        while consumer is not None and not until(records) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=250)
            for messages in batch.values():
                records.extend(messages)
    return records


async def read_until_quiet(
    bootstrap: str,
    topic: str,
    *,
    quiet_s: float,
    ready: Callable[[], Awaitable[bool]] | None = None,
    timeout: float = 180,
) -> list[Any]:
    """Every record of ``topic`` from the beginning, read until ``ready()`` holds and then no
    record came for ``quiet_s`` seconds: not until an expected count, so that a record written
    after it is seen too. Fails when that is not reached within ``timeout``."""
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    async with _from_the_beginning(bootstrap, topic, deadline) as consumer:
        if consumer is None:
            raise AssertionError(f"{topic} never appeared")
        last = time.monotonic()
        settled = ready is None
        while True:
            batch = await consumer.getmany(timeout_ms=250)
            now = time.monotonic()
            for messages in batch.values():
                records.extend(messages)
                last = now
            if not settled:
                settled = await ready()
                if settled:
                    last = max(last, now)
            elif now - last >= quiet_s:
                return records
            if now > deadline:
                raise AssertionError(f"{topic} not quiet within {timeout:.0f}s ({len(records)} records)")


@asynccontextmanager
async def committed_to_the_end(
    bootstrap: str, group: str, topic: str
) -> AsyncIterator[Callable[[], Awaitable[bool]]]:
    """A check: has consumer group ``group`` committed every partition of ``topic`` to its end?"""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()

    async def check() -> bool:
        ends = await end_offsets(consumer, topic)
        if not ends:
            return False
        committed = await admin.list_consumer_group_offsets(group)
        # A partition that never had a record has nothing to commit.
        return all(end == 0 or (tp in committed and committed[tp].offset >= end) for tp, end in ends.items())

    try:
        yield check
    finally:
        await consumer.stop()
        await admin.close()


def secured_env(broker: SecureKafkaBroker, way: str, prefix: str, **settings: object) -> dict[str, str]:
    """A motwatch process's environment to come in ``way``: tls, scram or mtls."""
    assert broker.ssl_bootstrap and broker.sasl_ssl_bootstrap
    if way == "scram":
        security = {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": broker.username,
            "sasl_password": broker.password,
        }
        bootstrap = broker.sasl_ssl_bootstrap
    else:
        security = {"security_protocol": "SSL"}
        bootstrap = broker.ssl_bootstrap
        if way == "mtls":
            security |= {"ssl_certfile": broker.client_cert_file, "ssl_keyfile": broker.client_key_file}
    return motwatch_env(bootstrap, prefix, ssl_cafile=broker.ca_file, **security, **settings)


async def worker_round_trip(env: dict[str, str], plain: str, prefix: str, workdir: Path) -> str:
    """Simulated journeys go in by ``motwatch produce`` while ``motwatch worker`` runs, both with
    ``env``; the moments it writes (read on ``plain``, a super user's way in) must be ``motwatch
    detect``'s, ids included, and ``motwatch record`` with ``env`` reads them back. Returns the
    worker's log."""
    from motwatch.simulation import SimulationConfig, simulate

    sim = simulate(SimulationConfig(journeys=40, seed=3))
    path = workdir / "journeys.jsonl"
    path.write_bytes(b"\n".join(sim.lines) + b"\n")
    expected = detect_moments(path, env)
    assert expected, "the simulation should report moments"
    with WorkerProcess(env, workdir / "w") as worker:
        produced = run_cli("produce", str(path), env=env)
        assert produced.returncode == 0, produced.stderr.decode()
        async with committed_to_the_end(plain, f"{prefix}motwatch", f"{prefix}touchpoints") as done:
            records = await read_until_quiet(plain, f"{prefix}moments", quiet_s=3.0, ready=done)
        assert worker.alive()
        log = worker.log()
    assert canonical([orjson.loads(r.value) for r in records]) == canonical(expected)

    out = workdir / "moments.jsonl"
    recorded = run_cli(
        "record", "moments", "--out", str(out), "--from-beginning", "--max", str(len(records)), env=env
    )
    assert recorded.returncode == 0, recorded.stderr.decode()
    assert canonical([orjson.loads(x) for x in out.read_bytes().splitlines()]) == canonical(expected)
    return log
