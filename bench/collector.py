"""The HTTP collector: events/s into Kafka through ``POST /v1/batch`` and request latency, vs a raw producer.

The simulated touchpoints become Segment track messages (the touchpoint's
type as event name, its properties, ids and time), ``batch_size`` to a
``/v1/batch`` request. ``motwatch collect --port 0`` runs as a child
process, and ``clients`` concurrent aiohttp clients post the batches, each
sending its next one when the last was answered (200: every event
acknowledged by Kafka). Clock: from the first timed request to the last
answer; latency: each request's send to its answer read.

Baseline, in the same run: an aiokafka producer set as the collector's is
(idempotent, ``acks=all``, ``linger_ms=2``) sends the very records the
collector produces for those batches (computed beforehand by the same
adapter), keyed by journey, with the same concurrency: ``clients`` tasks,
each sending a batch's records and waiting for all their acknowledgements
before the next. It runs before and after the collector; the better run is
the ceiling. The first ``warmup_batches`` of each are not timed. After the
collector's run, its topic must hold every accepted event.
"""

from __future__ import annotations

import asyncio
import base64
import re
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    PYTHON,
    REPO,
    BenchError,
    bench_env,
    cpu_seconds,
    end_offsets,
    log,
    rate,
    stop_process,
)
from bench.latency import _percentile

WRITE_KEY = "bench-collector-key"
LISTENING = re.compile(rb"^listening (http://\S+)$", re.MULTILINE)


def segment_message(event: dict[str, Any]) -> dict[str, Any]:
    """A touchpoint as the Segment track message that the collector turns back into it."""
    message: dict[str, Any] = {
        "type": "track",
        "event": event["type"],
        "messageId": event["event_id"],
        "timestamp": event["occurred_at"],
        "properties": event.get("properties") or {},
    }
    if event.get("customer_id"):
        message["userId"] = event["customer_id"]
    if event.get("anonymous_id"):
        message["anonymousId"] = event["anonymous_id"]
    if event.get("session_id"):
        message["context"] = {"sessionId": event["session_id"]}
    return message


def batches(path: Path, events: int, batch_size: int) -> list[list[dict[str, Any]]]:
    """The first ``events`` lines of ``path`` as Segment messages, ``batch_size`` to a batch."""
    messages: list[dict[str, Any]] = []
    with open(path, "rb") as f:
        for line in f:
            if len(messages) >= events:
                break
            messages.append(segment_message(orjson.loads(line)))
    return [messages[i : i + batch_size] for i in range(0, len(messages), batch_size)]


def records_of(batch: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """(key, value) of each touchpoint the collector produces for one batch; a reject is a BenchError."""
    from motwatch.adapters import DEFAULT_MAPPINGS, check_payload
    from motwatch.settings import Settings

    settings = Settings()
    checked = check_payload(
        "segment",
        {"batch": batch},
        datetime.now(UTC),
        DEFAULT_MAPPINGS,
        kind=None,
        limits=settings.limits,
        max_future_skew_s=settings.max_future_skew_s,
    )
    if checked.rejected:
        raise BenchError(f"the adapter rejects a benchmark event: {checked.rejected[0]}")
    return [(a.event.journey_key.encode(), a.raw) for a in checked.accepted]


async def _drive(
    work: list[Any], clients: int, send: Callable[[Any], Awaitable[None]]
) -> tuple[float, list[float]]:
    """``clients`` tasks taking the items of ``work`` in turn; (seconds for all, each one's latency in ms)."""
    latencies: list[float] = []
    items = iter(work)

    async def client() -> None:
        for item in items:
            t0 = time.perf_counter()
            await send(item)
            latencies.append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started, latencies


def _summary(events: int, seconds: float, latencies: list[float]) -> dict[str, Any]:
    return {
        "events": events,
        "requests": len(latencies),
        "seconds": round(seconds, 3),
        "events_per_s": rate(events, seconds),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(_percentile(latencies, 99) or 0, 2),
        "max_ms": round(max(latencies), 2),
    }


async def raw_producer(
    bootstrap: str, topic: str, work: list[list[tuple[bytes, bytes]]], clients: int, warmup: int
) -> dict[str, Any]:
    """The ceiling: the same records through one producer set as the collector's, batch by batch."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2)
    await producer.start()

    async def send(records: list[tuple[bytes, bytes]]) -> None:
        pending = [await producer.send(topic, value=value, key=key) for key, value in records]
        await asyncio.wait(pending)
        for future in pending:
            future.result()

    try:
        await _drive(work[:warmup], clients, send)
        seconds, latencies = await _drive(work[warmup:], clients, send)
    finally:
        await producer.stop()
    return _summary(sum(len(b) for b in work[warmup:]), seconds, latencies)


class CollectorProcess:
    """``motwatch collect --port 0`` as a child process, its output in a file; stopped by its PID."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "collector.log"
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "motwatch.cli", "collect", "--port", "0"],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def url(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while (match := LISTENING.search(self.log_path.read_bytes())) is None:
            if self.proc.poll() is not None:
                raise BenchError(f"the collector exited with {self.proc.returncode}: {self.log()[-800:]!r}")
            if time.monotonic() > deadline:
                raise BenchError(f"the collector did not listen within {timeout:.0f}s: {self.log()[-800:]!r}")
            time.sleep(0.05)
        return match.group(1).decode()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int | None:
        return stop_process(self.proc, 30)


async def through_collector(
    url: str, bodies: list[bytes], clients: int, warmup: int, events_of: list[int], pid: int
) -> dict[str, Any]:
    """The batches posted to ``/v1/batch`` by ``clients`` concurrent clients; a non-200 is a BenchError."""
    import aiohttp

    headers = {
        "Content-Type": "application/json",
        "Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
    }
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(body: bytes) -> None:
            async with session.post(f"{url}/v1/batch", data=body, headers=headers) as answer:
                text = await answer.read()
                if answer.status != 200:
                    raise BenchError(f"the collector answered {answer.status}: {text[:200]!r}")

        await _drive(bodies[:warmup], clients, send)
        cpu0 = cpu_seconds(pid)
        seconds, latencies = await _drive(bodies[warmup:], clients, send)
        cpu1 = cpu_seconds(pid)
    result = _summary(sum(events_of[warmup:]), seconds, latencies)
    if cpu0 is not None and cpu1 is not None:
        result["collector_cpu_share"] = round((cpu1 - cpu0) / seconds, 2)
        result["collector_cpu_us_per_event"] = round((cpu1 - cpu0) / result["events"] * 1e6, 1)
    return result


async def measure(
    bootstrap: str,
    data: Path,
    workdir: Path,
    *,
    run_id: str,
    events: int,
    batch_size: int,
    clients: int,
    partitions: int,
    warmup_batches: int,
) -> dict[str, Any]:
    from motwatch.kafka.admin import create_topics

    work = batches(data, events, batch_size)
    if len(work) <= warmup_batches:
        raise BenchError(f"{len(work)} batches: not more than the {warmup_batches} of warm-up")
    records = [records_of(batch) for batch in work]
    bodies = [orjson.dumps({"batch": batch}) for batch in work]
    events_of = [len(r) for r in records]
    raw_prefix, col_prefix = f"bench-{run_id}-colraw.", f"bench-{run_id}-col."
    await create_topics(bootstrap, [f"{raw_prefix}touchpoints", f"{col_prefix}touchpoints"], partitions)
    await create_topics(bootstrap, [f"{col_prefix}deadletter"], partitions)
    log(f"collector: {len(work)} batches of {batch_size} ({sum(events_of):,} events), {clients} clients")

    raw_topic = f"{raw_prefix}touchpoints"
    before = await raw_producer(bootstrap, raw_topic, records, clients, warmup_batches)
    log(f"raw producer: {before['events_per_s']:,} events/s, p99 {before['p99_ms']} ms")

    env = bench_env(
        MOTWATCH_BROKER=bootstrap,
        MOTWATCH_TOPIC_PREFIX=col_prefix,
        MOTWATCH_WRITE_KEYS=WRITE_KEY,
        MOTWATCH_PARTITIONS=str(partitions),
    )
    collector = CollectorProcess(env, workdir)
    try:
        url = await asyncio.to_thread(collector.url)
        through = await through_collector(url, bodies, clients, warmup_batches, events_of, collector.proc.pid)
    finally:
        code = collector.stop()
    log(f"collector: {through['events_per_s']:,} events/s, p99 {through['p99_ms']} ms")

    after = await raw_producer(bootstrap, raw_topic, records, clients, warmup_batches)
    log(f"raw producer again: {after['events_per_s']:,} events/s, p99 {after['p99_ms']} ms")
    ceiling = max((before, after), key=lambda r: r["events_per_s"] or 0)

    stored = sum((await end_offsets(bootstrap, f"{col_prefix}touchpoints")).values())
    letters = sum((await end_offsets(bootstrap, f"{col_prefix}deadletter")).values())
    if stored != sum(events_of) or letters:
        raise BenchError(
            f"the collector stored {stored} touchpoints and {letters} dead letters of {sum(events_of)} events"
        )
    return {
        "batch_size": batch_size,
        "clients": clients,
        "warmup_batches": warmup_batches,
        "events": through["events"],
        "events_per_s": through["events_per_s"],
        "p50_ms": through["p50_ms"],
        "p99_ms": through["p99_ms"],
        "collector": through,
        "raw_producer": ceiling,
        "raw_producer_runs": [before, after],
        "touchpoints_stored": stored,
        "collector_exit_code": code,
    }
