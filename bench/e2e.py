"""motwatch end to end: ``motwatch worker`` on a pre-filled topic, first event consumed to last moment.

The touchpoints topic is filled before the worker starts. The clock starts when
the worker's ``motwatch_events_received_total`` first moves (its /metrics is
polled every 50 ms; the time it became ready is kept too) and stops at the
broker timestamp (CreateTime, the worker's wall clock) of the last moment
record, once as many moments are on the topic as ``motwatch detect`` reports
for the same file. The worker's resident memory and CPU time are sampled
every second, the broker's CPU time too.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from bench import profile as profiler
from bench.common import (
    BenchError,
    TopicReader,
    Worker,
    cpu_seconds,
    end_offsets,
    ids_digest,
    iter_file,
    log,
    metric,
    produce_fast,
    rate,
    rss_kib,
    scrape,
    worker_env,
)

# Only the stream moves event time (as in the integration tests): a stall of the
# worker must not let idle advance change what it reports.
WORKER_SETTINGS = {"idle_advance_s": 36000}


def topics(prefix: str) -> list[str]:
    return [f"{prefix}{t}" for t in ("touchpoints", "touchpoints-by-journey", "moments", "deadletter")]


async def prefill(bootstrap: str, prefix: str, path: Path, partitions: int) -> dict[str, Any]:
    from motwatch.kafka.admin import create_topics

    await create_topics(bootstrap, topics(prefix), partitions)
    started = time.perf_counter()
    sent = await produce_fast(bootstrap, f"{prefix}touchpoints", iter_file(path), partitions)
    seconds = time.perf_counter() - started
    log(f"pre-filled {prefix}touchpoints: {sent:,} events in {seconds:.1f}s")
    return {"events": sent, "seconds": round(seconds, 1), "events_per_s": rate(sent, seconds)}


async def run_workers(
    bootstrap: str,
    prefix: str,
    workdir: Path,
    *,
    events: int,
    expected_moments: int,
    expected_digest: str | None = None,
    partitions: int,
    workers: int = 1,
    timeout: float,
    broker_pid: int | None = None,
    settings: dict[str, Any] | None = None,
    gauges: bool = True,
    produce: Callable[[], Awaitable[Any]] | None = None,
    profile_s: float = 0,
) -> dict[str, Any]:
    """Start ``workers`` workers; time from the first event consumed until every expected moment is written.

    Without ``produce`` the topic is pre-filled and the workers start on it. With it,
    the workers first settle (ready, every rebalance done) and ``produce()`` fills the
    topic then: several workers then measure their steady state, not their first rebalance.
    On ``timeout`` the result is partial: the rate of events the journey agent applied so far.
    ``profile_s``: the first worker is profiled for that long from its first event (``bench/profile.py``).
    """
    env_settings = {"partitions": partitions, **WORKER_SETTINGS, **(settings or {})}
    # A data directory each: the worker's name in the group (static membership) is kept there,
    # and two workers under one name fence each other out of the group, rebalancing for ever.
    procs = [
        Worker(
            worker_env(bootstrap, prefix, workdir / f"worker{i}", **env_settings), workdir, name=f"worker{i}"
        )
        for i in range(workers)
    ]
    # Distinct moment ids: more than detect finds means the worker reported moments it did not.
    ids: set[str] = set()
    reader = TopicReader(
        bootstrap,
        f"{prefix}moments",
        keep=lambda message, _: ids.add(orjson.loads(message.value)["moment_id"]),
    ).start()
    samples: list[dict[str, Any]] = []
    broker_cpu0 = cpu_seconds(broker_pid) if broker_pid else None
    profiling: asyncio.Future[dict[str, Any]] | None = None
    try:
        await asyncio.wait_for(reader.started.wait(), 60)
        if reader.error:
            raise BenchError(f"cannot read {prefix}moments: {reader.error}")
        for w in procs:
            w.start()
        producing: asyncio.Task[Any] | None = None
        if produce is not None:
            await _settle(procs, timeout=180)
            producing = asyncio.get_running_loop().create_task(produce())
        deadline = time.monotonic() + timeout
        first_at: float | None = None
        rss_ready: dict[str, int | None] = {}
        next_sample = 0.0
        while True:
            now_mono = time.monotonic()
            if now_mono > deadline:
                if first_at is None:
                    raise BenchError(f"no event consumed within {timeout:.0f}s")
                log(f"time is up: {reader.count:,} of {expected_moments:,} moments; the result is partial")
                break
            for w in procs:
                if w.ready_at is None and w.is_ready():
                    rss_ready[w.name] = rss_kib(w.pid)
                w.check_alive()
            if first_at is None and any(w.ready_at for w in procs):
                for w in procs:
                    if w.ready_at is not None:
                        received = metric(scrape(w.web_port, 1.0), "motwatch_events_received_total")
                        if received:
                            first_at = time.time()
                            log(f"first event consumed {first_at - w.started_at:.1f}s after start")
                            break
                if first_at is not None and profile_s:
                    out = workdir / "worker0-profile.txt"
                    run = asyncio.get_running_loop().run_in_executor
                    profiling = run(None, profiler.profile, procs[0].pid, profile_s, out)
            if now_mono >= next_sample:
                next_sample = now_mono + 1.0
                samples.append(
                    {
                        "t": round(time.time(), 2),
                        "moments": reader.count,
                        **{f"{w.name}_rss_kib": rss_kib(w.pid) for w in procs},
                        **{f"{w.name}_cpu_s": cpu_seconds(w.pid) for w in procs},
                    }
                )
            if reader.count >= expected_moments and first_at is not None:
                break
            await asyncio.sleep(0.05 if first_at is None else 0.2)
        complete = reader.count >= expected_moments
        if producing is not None:
            await producing
        if complete:
            # Let the last records land, to see repeats (at-least-once) if any.
            await asyncio.sleep(1.0)
            elapsed = reader.max_timestamp_ms / 1000 - first_at
            done = events
        else:
            series = [scrape(w.web_port, 5) for w in procs]
            elapsed = time.time() - first_at
            # Touchpoints the journey agent applied (each observed once for the lag histogram).
            done = int(sum(metric(m, "motwatch_event_lag_seconds_count") or 0 for m in series))
        result: dict[str, Any] = {
            "complete": complete,
            "events": events,
            "events_applied": done,
            "partitions": partitions,
            "workers": workers,
            "expected_moments": expected_moments,
            "moments_written": reader.count,
            "moments_distinct": len(ids),
            "moment_ids_digest": ids_digest(ids),
            "moments_equal_detect": None if expected_digest is None else ids_digest(ids) == expected_digest,
            "seconds": round(elapsed, 2),
            "events_per_s": rate(done, elapsed),
            "events_per_s_per_worker": rate(done / workers, elapsed),
            "start_to_ready_s": {w.name: round((w.ready_at or 0) - w.started_at, 2) for w in procs},
            "ready_to_first_event_s": round(first_at - min(w.ready_at or first_at for w in procs), 2),
            "worker_cpu_s": {w.name: cpu_seconds(w.pid) for w in procs},
        }
        if broker_cpu0 is not None and broker_pid:
            result["broker_cpu_s"] = round((cpu_seconds(broker_pid) or 0) - broker_cpu0, 1)
        result["worker_cpu_share"] = {
            w.name: round((cpu_seconds(w.pid) or 0) / max(elapsed, 1e-9), 2) for w in procs
        }
        log(
            f"{done:,} events in {elapsed:.1f}s: {result['events_per_s']} events/s; "
            f"worker CPU share {result['worker_cpu_share']}, broker CPU {result.get('broker_cpu_s', '?')} s"
        )
        result["rss_ready_kib"] = rss_ready
        result["rss_end_kib"] = {w.name: rss_kib(w.pid) for w in procs}
        if gauges:
            # The journey gauge is refreshed every 15 s; wait for a value that counts every journey.
            result["active_journeys"] = await _active_journeys(procs, timeout=40)
        result["samples"] = samples
        if profiling is not None:
            try:
                result["profile"] = await profiling
            except (BenchError, OSError, subprocess.SubprocessError) as exc:
                result["profile"] = {"error": f"{type(exc).__name__}: {exc}"}
            # Samples taken after the last moment was written are of an idle worker.
            result["profile"]["within_the_run"] = profile_s <= elapsed - 1
        return result
    finally:
        for w in procs:
            code = w.stop()
            if code not in (0, -15, None):
                log(f"{w.name} exited with {code}; log {w.log_path}")
        await reader.stop()


async def changelog_writes(bootstrap: str, prefix: str, events: int) -> dict[str, Any]:
    """Journey states the workers wrote to the journeys changelog, per input event (the workers
    stopped: what they wrote before stopping included)."""
    ends = await end_offsets(bootstrap, f"{prefix}motwatch-journeys-changelog")
    records = sum(ends.values())
    return {"changelog_records": records, "changelog_records_per_event": round(records / max(events, 1), 3)}


async def _settle(procs: list[Worker], timeout: float) -> None:
    """Every worker ready, and its last rebalance finished (recovery done) 3 s ago or more.

    Read from the workers' logs: Faust's rebalance gauges do not always come back to 0.
    """
    deadline = time.monotonic() + timeout
    for w in procs:
        await asyncio.to_thread(w.wait_ready, max(deadline - time.monotonic(), 1))
    last: list[tuple[int, int]] = []
    since = time.monotonic()
    while time.monotonic() < deadline:
        state = []
        for w in procs:
            w.check_alive()
            text = w.log()
            state.append((text.rfind("(Re-)joining group"), text.rfind("[^---Recovery]: Worker ready")))
        if state != last:
            last, since = state, time.monotonic()
        elif all(done > join for join, done in state) and time.monotonic() - since >= 3:
            return
        await asyncio.sleep(0.25)
    raise BenchError(f"workers did not settle within {timeout:.0f}s")


async def _active_journeys(procs: list[Worker], timeout: float) -> dict[str, Any]:
    """The journeys in state once processing is over: the gauge is refreshed every 15 s."""
    await asyncio.sleep(min(16.0, timeout))
    values = [metric(scrape(w.web_port), "motwatch_active_journeys") for w in procs]
    known = [v for v in values if v is not None]
    return {
        "journeys": int(sum(known)) if known else None,
        "per_worker": values,
        "rss_kib": {w.name: rss_kib(w.pid) for w in procs},
    }
