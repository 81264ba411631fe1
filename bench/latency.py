"""Latency: produce an event that fails at once (a broken link) → its moment event readable.

A fresh worker runs with ``MOTWATCH_ALLOWED_LATENESS_S=0``. With the default
lateness (120 s) every event waits in its journey until the watermark has
passed it — by design, so that events up to two minutes out of order are
still applied in order — and a broken link is reported about 120 s after it
happened, however fast the worker is. Zero lateness measures the pipeline.

A background load of simulated journeys, re-stamped with the current time as
they are sent, runs at half the measured end-to-end throughput; probes (a
``page_view`` answered 404, each for a journey of its own) are interleaved at
a steady rate. For each probe: wall time just before the producer's ``send``
→ wall time a consumer of the moments topic (fetch wait 5 ms) reads its
moment. The first seconds are warm-up and not counted.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench.common import BenchError, TopicReader, Worker, cpu_seconds, journey_key, log, rss_kib, worker_env
from bench.e2e import topics


def _iso(ms: int) -> str:
    seconds, milli = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{milli:03d}Z"


def _background(path: Path) -> Iterator[dict]:
    while True:
        with open(path, "rb") as f:
            for line in f:
                yield orjson.loads(line)


def _probe(run: str, i: int, now_ms: int) -> tuple[bytes, bytes]:
    key = f"probe-{run}-{i:06d}"
    event = {
        "event_id": f"probe-{run}-ev-{i:06d}",
        "occurred_at": _iso(now_ms),
        "customer_id": key,
        "session_id": f"probe-{run}-s-{i:06d}",
        "channel": "web",
        "type": "page_view",
        "properties": {
            "url": f"https://shop.example/gone/{i}",
            "http_status": 404,
            "page_category": "product",
        },
    }
    return key.encode(), orjson.dumps(event)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def measure(
    bootstrap: str,
    data: Path,
    workdir: Path,
    *,
    run_id: str,
    rate: float,
    probes_per_s: float,
    seconds: float,
    warmup_s: float,
    partitions: int,
) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    from motwatch.kafka.admin import create_topics

    prefix = f"bench-{run_id}-lat."
    await create_topics(bootstrap, topics(prefix), partitions)
    worker = Worker(
        worker_env(bootstrap, prefix, workdir, partitions=partitions, allowed_lateness_s=0), workdir, "worker"
    ).start()
    sent_at: dict[bytes, float] = {}
    latencies: list[float] = []
    probe_prefix = f"probe-{run_id}-".encode()
    counted_from = [float("inf")]

    def keep(message: Any, now: float) -> None:
        key = message.key or b""
        if key.startswith(probe_prefix):
            t0 = sent_at.pop(key, None)
            if t0 is not None and t0 >= counted_from[0]:
                latencies.append(now - t0)

    reader = TopicReader(bootstrap, f"{prefix}moments", keep=keep)
    reader.fetch_max_wait_ms = 5
    reader.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    try:
        await asyncio.to_thread(worker.wait_ready, 120)
        await asyncio.wait_for(reader.started.wait(), 60)
        await producer.start()
        background = _background(data)
        t_start = time.monotonic()
        counted_from[0] = time.time() + warmup_s
        end = t_start + warmup_s + seconds
        sent_bg = sent_probes = 0
        cpu0 = cpu_seconds(worker.pid)
        rss = []
        tick = 0.005
        while (now := time.monotonic()) < end:
            worker.check_alive()
            elapsed = now - t_start
            now_ms = int(time.time() * 1000)
            stamp = _iso(now_ms)
            for _ in range(int(elapsed * rate) - sent_bg):
                event = next(background)
                event["occurred_at"] = stamp
                value = orjson.dumps(event)
                await producer.send(f"{prefix}touchpoints", value=value, key=journey_key(value))
                sent_bg += 1
            if int(elapsed * probes_per_s) > sent_probes:
                key, value = _probe(run_id, sent_probes, now_ms)
                sent_at[key] = time.time()
                await producer.send(f"{prefix}touchpoints", value=value, key=key)
                sent_probes += 1
            if int(elapsed) > len(rss):
                rss.append(rss_kib(worker.pid))
            await asyncio.sleep(tick)
        actual_s = time.monotonic() - t_start
        cpu_share = ((cpu_seconds(worker.pid) or 0) - (cpu0 or 0)) / actual_s
        # The last probes' moments.
        deadline = time.monotonic() + 30
        while any(t >= counted_from[0] for t in sent_at.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        measured = [v * 1000 for v in latencies]
        missing = sum(1 for t in sent_at.values() if t >= counted_from[0])
        if not measured:
            raise BenchError(f"no probe's moment was read (worker log {worker.log_path})")
        result = {
            "allowed_lateness_s": 0,
            "background_events_per_s": round(sent_bg / actual_s, 1),
            "background_target_per_s": round(rate, 1),
            "probes_per_s": probes_per_s,
            "probes_measured": len(measured),
            "probes_missing": missing,
            "seconds": round(seconds, 1),
            "p50_ms": round(statistics.median(measured), 1),
            "p90_ms": round(_percentile(measured, 90), 1),
            "p99_ms": round(_percentile(measured, 99), 1),
            "max_ms": round(max(measured), 1),
            "mean_ms": round(statistics.fmean(measured), 1),
            "worker_cpu_share": round(cpu_share, 2),
        }
        log(f"latency: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms over {len(measured)} probes")
        return result
    finally:
        await producer.stop()
        worker.stop()
        await reader.stop()
