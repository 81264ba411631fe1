"""What every measurement shares: machine facts, processes, Kafka I/O, metrics scraping.

Nothing here waits without a deadline, and a process is only ever stopped by
its own PID (SIGTERM, a deadline, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from motwatch.core.partitioner import murmur2

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
READY_MARK = "Worker]: Ready"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A measurement could not be made; the message says why, in one line."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the machine -----------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_mib() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return None


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _java_version() -> str | None:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30, check=False)
        match = re.search(r'version "([^"]+)"', done.stderr + done.stdout)
        return match.group(1) if match else None
    return None


def _git(*args: str) -> str | None:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
        )
        if done.returncode == 0:
            return done.stdout.strip()
    return None


def machine_facts() -> dict[str, Any]:
    from motwatch.kafka.broker import KAFKA_VERSION

    status = _git("status", "--porcelain", "--", "motwatch", "agents", "streams")
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_mib": _mem_total_mib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "kafka": KAFKA_VERSION,
        "java": _java_version(),
        "faust_streaming": _version("faust-streaming"),
        "aiokafka": _version("aiokafka"),
        "pydantic": _version("pydantic"),
        "orjson": _version("orjson"),
        "uvloop": _version("uvloop"),
        "git_commit": _git("rev-parse", "HEAD"),
        # Uncommitted changes to the code under test: the figures are of the working tree.
        "git_dirty": bool(status) if status is not None else None,
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- processes ----------------------------------------------------------------------


def rss_kib(pid: int) -> int | None:
    """Resident memory (VmRSS) of a process, in KiB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30) -> int | None:
    """SIGTERM, wait, then SIGKILL, by PID; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
    return proc.returncode


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: no stray ``MOTWATCH_*`` settings, the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTWATCH_") or k == "MOTWATCH_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_json(
    module: str,
    args: list[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    cpu: int | None = None,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Run ``python -m module args`` (pinned to one CPU if asked); its last stdout line is JSON."""
    command = [PYTHON, "-m", module, *args]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    proc = subprocess.Popen(
        command,
        env=env or bench_env(),
        cwd=cwd or REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc, 10)
        raise BenchError(f"{module} did not finish within {timeout:.0f}s") from None
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-5:]
        raise BenchError(f"{module} exited with {proc.returncode}: {' | '.join(tail)}")
    lines = [line for line in out.decode().splitlines() if line.strip()]
    if not lines:
        raise BenchError(f"{module} printed no result")
    return json.loads(lines[-1])


@dataclass
class Worker:
    """``motwatch worker`` as a child process, its log in a file; stopped by its PID."""

    env: dict[str, str]
    workdir: Path
    name: str = "worker"
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_at: float | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def web_port(self) -> int:
        return int(self.env["MOTWATCH_WEB_PORT"])

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def start(self) -> Worker:
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "motwatch.cli", "worker"],
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.time()
        return self

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.proc.returncode}: {self.log()[-1500:]!r}")

    def is_ready(self) -> bool:
        self.check_alive()
        if self.ready_at is None and READY_MARK in self.log():
            self.ready_at = time.time()
        return self.ready_at is not None

    def wait_ready(self, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} not ready within {timeout:.0f}s: {self.log()[-1500:]!r}")
            time.sleep(0.05)
        assert self.ready_at is not None
        return self.ready_at

    def stop(self, timeout: float = 30) -> int | None:
        return stop_process(self.proc, timeout) if self.proc is not None else None


# Settings every worker of the run gets, over each measurement's own (``--worker-setting``, for A/B runs).
WORKER_OVERRIDES: dict[str, str] = {}


def worker_env(bootstrap: str, prefix: str, workdir: Path, **settings: Any) -> dict[str, str]:
    settings = {**settings, **WORKER_OVERRIDES}
    env = bench_env(
        MOTWATCH_BROKER=bootstrap,
        MOTWATCH_TOPIC_PREFIX=prefix,
        MOTWATCH_WEB_PORT=str(free_port()),
        MOTWATCH_DATA_DIR=str(workdir / "data"),
    )
    for name, value in settings.items():
        env[f"MOTWATCH_{name.upper()}"] = str(value)
    return env


def scrape(port: int, timeout: float = 2.0) -> dict[str, float]:
    """A worker's /metrics as ``{'name{labels}': value}``; {} when it does not answer in time."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as response:
            text = response.read().decode()
    except (OSError, TimeoutError):
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def metric(series: dict[str, float], name: str) -> float | None:
    """The sum of every series of one metric name (all label sets)."""
    values = [v for k, v in series.items() if k == name or k.startswith(name + "{")]
    return sum(values) if values else None


# -- Kafka -------------------------------------------------------------------------------


def journey_key(value: bytes) -> bytes | None:
    """The journey key of a line (customer, else anonymous id), as motwatch produce keys it."""
    try:
        event = orjson.loads(value)
        key = event.get("customer_id") or event.get("anonymous_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return key.encode() if isinstance(key, str) else None


def partition_of(key: bytes | None, partitions: int, counter: list[int]) -> int:
    if key is None:
        counter[0] += 1
        return counter[0] % partitions
    return (murmur2(key) & 0x7FFFFFFF) % partitions


async def produce_fast(
    bootstrap: str,
    topic: str,
    lines: Iterable[bytes],
    partitions: int,
    key_fn: Callable[[bytes], bytes | None] = journey_key,
) -> int:
    """Send each line as one message, keyed and partitioned as Kafka's default partitioner does.

    Builds record batches itself (``send_batch``): several times faster than one
    ``send`` per message, which matters for pre-filling millions of events.
    """
    return await produce_records(
        bootstrap, topic, ((key_fn(v), v) for v in (line.rstrip(b"\r\n") for line in lines) if v), partitions
    )


async def produce_records(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes]], partitions: int
) -> int:
    """Send (key, value) pairs in batches, partitioned as Kafka's default partitioner does."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=50,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=60000,
    )
    await producer.start()
    count = 0
    counter = [0]
    try:
        batches: dict[int, Any] = {}
        pending: list[asyncio.Future[Any]] = []
        now_ms = int(time.time() * 1000)
        for key, value in records:
            p = partition_of(key, partitions, counter)
            batch = batches.get(p)
            if batch is None:
                batch = batches[p] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=now_ms) is None:
                batch.close()
                pending.append(await producer.send_batch(batch, topic, partition=p))
                batch = batches[p] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=now_ms) is None:
                    raise BenchError("a record does not fit in an empty batch")
                if len(pending) >= 64:
                    await asyncio.gather(*pending)
                    pending.clear()
                    now_ms = int(time.time() * 1000)
            count += 1
        for p, batch in batches.items():
            if batch.record_count():
                batch.close()
                pending.append(await producer.send_batch(batch, topic, partition=p))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(tps) if tps else {}
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


class TopicReader:
    """Reads a topic from the beginning in the background, keeping what the caller asks for."""

    def __init__(self, bootstrap: str, topic: str, keep: Callable[[Any, float], None] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.keep = keep
        self.count = 0
        self.max_timestamp_ms = 0
        self.first_timestamp_ms: int | None = None
        self.error: BaseException | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.started = asyncio.Event()
        self.fetch_max_wait_ms = 10

    async def _run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        await consumer.start()
        try:
            partitions = None
            deadline = time.monotonic() + 60
            while partitions is None:
                partitions = consumer.partitions_for_topic(self.topic)
                if partitions is None:
                    if time.monotonic() > deadline:
                        raise BenchError(f"topic {self.topic} did not appear")
                    await consumer._client.force_metadata_update()
                    await asyncio.sleep(0.1)
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            for tp in tps:
                await consumer.position(tp)
            self.started.set()
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for messages in batch.values():
                    for message in messages:
                        self.count += 1
                        ts = message.timestamp
                        if ts > self.max_timestamp_ms:
                            self.max_timestamp_ms = ts
                        if self.first_timestamp_ms is None or ts < self.first_timestamp_ms:
                            self.first_timestamp_ms = ts
                        if self.keep is not None:
                            self.keep(message, now)
        except BaseException as exc:
            self.error = exc
            self.started.set()
            raise
        finally:
            await consumer.stop()

    def start(self) -> TopicReader:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._task, 15)


# -- files ------------------------------------------------------------------------------


def iter_file(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        yield from f


def count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            n += chunk.count(b"\n")
    return n


def rate(count: float, seconds: float | None) -> float | None:
    return round(count / seconds, 1) if seconds and seconds > 0 else None


def ratio(value: float | None, baseline: float | None) -> float | None:
    return round(value / baseline, 4) if value is not None and baseline else None


def ids_digest(ids: Iterable[str]) -> str:
    """A short digest of a set of moment ids: two runs that report the same moments share it."""
    return hashlib.blake2b("\n".join(sorted(set(ids))).encode(), digest_size=8).hexdigest()
