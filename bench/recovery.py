"""Resume after kill -9: seconds from killing a worker that holds N journeys to its successor's first moment.

For each store (``memory://``, ``rocksdb://``) and each N: the journeys
changelog is filled with N journey states (``motwatch detect``'s final
states of the simulated file and renamed copies, packed as the worker
packs them: ``bench/memory.py``), keyed by journey and partitioned as the
worker's own records are. A first worker recovers them and goes live
(ready, and every partition's timer index built: its log says so); it is
then killed with SIGKILL, and a second worker starts at once on the same
data dir (the same static member of the group) and web port. One touchpoint
that fails at once (a page answered 404: a broken link, a journey of its
own) goes in right after; the figure is the broker timestamp of its moment
(the worker's wall clock) minus the time of the kill. The probe happened
before every stored journey's first event, so moving event time to it fires
nothing else (lateness 0, idle advance off). The second worker's log gives
the parts: process start to Faust's first line, Faust's recovery (the
changelog records it read: its tail, or all of it), the timer index (states
read), ready to the moment.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    READY_MARK,
    BenchError,
    TopicReader,
    Worker,
    log,
    produce_records,
    rss_kib,
    worker_env,
)
from bench.e2e import topics
from bench.memory import states

STORES = ("memory://", "rocksdb://")
PARTITIONS = 4
ROW = re.compile(r"^\|\s*(\S+)\s*\|\s*(\d+)\s*\|\s*(-?\d+)\s*\|\s*$")
INDEXED = re.compile(
    r"partition (\d+): timer index of (\d+) journeys rebuilt in ([\d.]+)s \((\d+) states read\)"
)
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", re.M)


def _iso(ms: int) -> str:
    seconds, milli = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{milli:03d}Z"


def _probe(tag: str, occurred_ms: int) -> tuple[bytes, bytes]:
    key = f"resume-probe-{tag}"
    event = {
        "event_id": f"{key}-ev",
        "occurred_at": _iso(occurred_ms),
        "customer_id": key,
        "session_id": f"{key}-s",
        "channel": "web",
        "type": "page_view",
        "properties": {
            "url": "https://shop.example/gone/resume",
            "http_status": 404,
            "page_category": "product",
        },
    }
    return key.encode(), orjson.dumps(event)


def _when(line_start: str) -> float:
    return datetime.strptime(line_start, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _first_at(text: str, mark: str) -> float | None:
    """The time (the log's own stamp) of the first line holding ``mark``."""
    at = text.find(mark)
    if at < 0:
        return None
    stamps = [m for m in STAMP.finditer(text, 0, at + 1)]
    return _when(stamps[-1].group(1)) if stamps else None


def _offsets(text: str, title: str) -> dict[tuple[str, int], int]:
    """A table Faust logs at recovery (its last with ``title``): offset by changelog partition."""
    at = text.rfind(title)
    out: dict[tuple[str, int], int] = {}
    if at < 0:
        return out
    topic = ""
    for line in text[at:].splitlines()[3:]:
        match = ROW.match(line)
        if match is None:
            break
        name, partition, offset = match.groups()
        topic = topic if name == "〃" else name  # a repeated topic is a ditto mark
        out[(topic, int(partition))] = int(offset)
    return out


def _indexed(text: str) -> dict[int, tuple[int, float, int]]:
    """Per partition (the last time each was indexed): journeys, seconds, states read."""
    return {int(p): (int(n), float(s), int(r)) for p, n, s, r in INDEXED.findall(text)}


def _recovery(text: str, prefix: str) -> dict[str, Any]:
    """What the worker's log says of its start: changelog records read, index built, when."""
    changelog = f"{prefix}motwatch-journeys-changelog"
    starts, ends = _offsets(text, "Reading Starts At - Active"), _offsets(text, "Highwater - Active")
    parts = [tp for tp in ends if tp[0] == changelog]
    indexed = _indexed(text)
    first = STAMP.search(text)
    return {
        "changelog_records_read": sum(max(0, ends[tp] - max(starts.get(tp, -1), 0) + 1) for tp in parts)
        if parts
        else None,
        "changelog_records": sum(ends[tp] + 1 for tp in parts) if parts else None,
        "journeys_indexed": sum(n for n, _, _ in indexed.values()),
        "states_read": sum(r for _, _, r in indexed.values()),
        "index_s": round(sum(s for _, s, _ in indexed.values()), 2),
        "first_log_at": _when(first.group(1)) if first else None,
        "recovery_started_at": _first_at(text, "Restoring state from changelog topics")
        or _first_at(text, "Resuming flow"),
        "recovery_done_at": _first_at(text, "Recovery complete"),
        "ready_at": _first_at(text, READY_MARK),
    }


async def _wait_indexed(worker: Worker, n: int, timeout: float) -> float:
    """Until every partition's timer index is built and holds the N journeys; when (wall time)."""
    deadline = time.monotonic() + timeout
    while True:
        worker.check_alive()
        indexed = _indexed(worker.log())
        if len(indexed) == PARTITIONS and sum(v[0] for v in indexed.values()) >= n:
            return time.time()
        if time.monotonic() > deadline:
            raise BenchError(f"{worker.name} indexed {indexed} of {n:,} journeys after {timeout:.0f}s")
        await asyncio.sleep(0.2)


async def _fill(bootstrap: str, prefix: str, records: list[tuple[bytes, bytes]]) -> float:
    from motwatch.kafka.admin import create_topics

    await create_topics(bootstrap, topics(prefix), PARTITIONS)
    await create_topics(
        bootstrap,
        [f"{prefix}motwatch-journeys-changelog", f"{prefix}motwatch-clocks-changelog"],
        PARTITIONS,
        config={"cleanup.policy": "compact"},
    )
    started = time.perf_counter()
    await produce_records(bootstrap, f"{prefix}motwatch-journeys-changelog", records, PARTITIONS)
    return time.perf_counter() - started


async def _one(
    bootstrap: str, prefix: str, workdir: Path, store: str, n: int, probe_ms: int, tag: str
) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    env = worker_env(
        bootstrap,
        prefix,
        workdir,
        partitions=PARTITIONS,
        store=store,
        allowed_lateness_s=0,
        idle_advance_s=36000,
    )
    first = Worker(env, workdir, name="first").start()
    second: Worker | None = None
    key, value = _probe(tag, probe_ms)
    moment_at: list[float] = []

    def keep(message: Any, _: float) -> None:
        if message.key == key and not moment_at:
            moment_at.append(message.timestamp / 1000)

    reader = TopicReader(bootstrap, f"{prefix}moments", keep=keep)
    reader.fetch_max_wait_ms = 5
    reader.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    try:
        await asyncio.to_thread(first.wait_ready, 300 + n / 1000)
        live_at = await _wait_indexed(first, n, 300 + n / 1000)
        await asyncio.wait_for(reader.started.wait(), 60)
        await producer.start()
        killed_at = time.time()
        os.kill(first.pid, signal.SIGKILL)
        await asyncio.to_thread(first.proc.wait, 30)  # type: ignore[union-attr]
        second = Worker(env, workdir, name="second").start()
        await producer.send_and_wait(f"{prefix}touchpoints", value=value, key=key)
        deadline = time.monotonic() + 300 + n / 1000
        while not moment_at:
            second.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"no moment for the probe within {300 + n / 1000:.0f}s ({second.log_path})")
            await asyncio.sleep(0.02)
        resume_s = moment_at[0] - killed_at
        rss = rss_kib(second.pid)
        disk = sum(f.stat().st_size for f in (workdir / "data").rglob("*") if f.is_file())
        parts = _recovery(second.log(), prefix)
        first_parts = _recovery(first.log(), prefix)

        def since_kill(at: float | None) -> float | None:
            return None if at is None else round(at - killed_at, 2)

        result = {
            "store": store,
            "journeys": n,
            "seconds": round(resume_s, 2),
            "first_worker_live_s": round(live_at - first.started_at, 1),
            "first_worker_changelog_records_read": first_parts["changelog_records_read"],
            "changelog_records": parts["changelog_records"],
            "changelog_records_read": parts["changelog_records_read"],
            "journeys_indexed": parts["journeys_indexed"],
            "states_read": parts["states_read"],
            "index_s": parts["index_s"],
            "process_up_s": since_kill(parts["first_log_at"]),
            "recovery_started_s": since_kill(parts["recovery_started_at"]),
            "recovery_done_s": since_kill(parts["recovery_done_at"]),
            "ready_s": since_kill(parts["ready_at"]),
            "rss_mib": round(rss / 1024) if rss else None,
            "data_dir_mib": round(disk / 2**20, 1),
        }
        log(
            f"resume after kill -9, {store}, {n:,} journeys: {resume_s:.1f}s "
            f"(process up {result['process_up_s']}s, recovery done {result['recovery_done_s']}s reading "
            f"{parts['changelog_records_read']} of {parts['changelog_records']} changelog records, "
            f"index {parts['index_s']}s reading {parts['states_read']} states, ready {result['ready_s']}s)"
        )
        return result
    finally:
        await producer.stop()
        first.stop()
        if second is not None:
            second.stop()
        await reader.stop()


async def measure(
    bootstrap: str,
    states_path: Path,
    workdir: Path,
    sizes: list[int],
    run_id: str,
    stores: tuple[str, ...] = STORES,
) -> dict[str, Any]:
    """Every (store, N): the seconds from the kill to the successor's first moment, and their parts."""
    with open(states_path, "rb") as f:
        earliest = min(orjson.loads(line)["first_seen_ms"] for line in f if line.strip())
    probe_ms = earliest - 3_600_000  # before every stored journey: nothing else falls due
    out: dict[str, Any] = {
        "method": "kill -9 of a live worker holding N journeys → its successor's first moment"
    }
    points: list[dict[str, Any]] = []
    for n in sizes:
        started = time.perf_counter()
        records = list(states(states_path, n))
        log(f"recovery: {n:,} journey states packed in {time.perf_counter() - started:.1f}s")
        for store in stores:
            kind = store.split(":")[0]
            prefix = f"bench-{run_id}-rec{n}-{kind}."
            try:
                fill_s = await _fill(bootstrap, prefix, records)
                log(f"recovery: {n:,} states in {prefix}motwatch-journeys-changelog ({fill_s:.1f}s); {store}")
                point = await _one(
                    bootstrap, prefix, workdir / f"rec{n}-{kind}", store, n, probe_ms, f"{kind}{n}"
                )
            except BenchError as exc:
                # One point failing keeps the others' figures.
                out.setdefault("errors", []).append(f"{store} {n:,} journeys: {str(exc)[:300]}")
                log(f"recovery: {store} {n:,} failed: {str(exc)[:300]}")
                continue
            point["fill_s"] = round(fill_s, 1)
            points.append(point)
        del records
    out["points"] = points
    return out
