"""Memory: the worker's resident memory per active journey, at 100,000 and 1,000,000 journeys.

Loading a million journeys through the worker's agents would take far longer
than the whole benchmark may (see README), so the worker is loaded the way a
restarted worker is: its journeys table's changelog is filled with N journey
states, and ``motwatch worker`` recovers them into memory before it goes on.
The states are the very ones ``motwatch detect`` holds at the end of the
simulated file (``bench.core --states-out``); for a million, they are
repeated with the journey key and every per-journey id renamed.
Figure: (VmRSS once the worker reports N journeys) − (VmRSS of the same
worker recovering nothing), divided by N. The end-to-end run gives a second
figure: live processing of the simulated journeys.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench.common import BenchError, Worker, log, metric, produce_records, rss_kib, scrape, worker_env
from bench.e2e import WORKER_SETTINGS, topics
from motwatch.core.journey import JourneyState

# Maps keyed by what is unique to one journey (event ids, carts, chats, reports).
_PER_JOURNEY_MAPS = ("seen", "reported", "checkouts", "chats", "onboardings", "merges")


def _clone(state: dict[str, Any], copy: int) -> dict[str, Any]:
    """The state as another journey's: its key and every per-journey id renamed (new strings)."""
    if copy == 0:
        return state
    tag = f"~{copy}"
    out = dict(state)
    out["key"] = state["key"] + tag
    if state.get("merged_into"):
        out["merged_into"] = state["merged_into"] + tag
    for name in _PER_JOURNEY_MAPS:
        if state.get(name):
            out[name] = {k + tag: v for k, v in state[name].items()}
    return out


def states(path: Path, n: int) -> Iterator[tuple[bytes, bytes]]:
    """N (key, state) records: the file's states, then renamed copies of them."""
    with open(path, "rb") as f:
        base = [orjson.loads(line) for line in f if line.strip()]
    if not base:
        raise BenchError(f"no journey states in {path}")
    made = 0
    for copy in itertools.count():
        for state in base:
            if made >= n:
                return
            value = _clone(state, copy)
            # As the worker writes them (packed), so recovery holds what a running worker holds.
            yield value["key"].encode(), JourneyState.from_dict(value).pack()
            made += 1


async def _load(bootstrap: str, prefix: str, path: Path, n: int, partitions: int) -> float:
    from motwatch.kafka.admin import create_topics

    changelog = f"{prefix}motwatch-journeys-changelog"
    await create_topics(bootstrap, topics(prefix), partitions)
    # As Faust declares them: compacted. (The re-keyed topic must not be: ticks have no key.)
    await create_topics(
        bootstrap,
        [changelog, f"{prefix}motwatch-clocks-changelog"],
        partitions,
        config={"cleanup.policy": "compact"},
    )
    started = time.perf_counter()
    if n:
        await produce_records(bootstrap, changelog, states(path, n), partitions)
    return time.perf_counter() - started


async def _held(bootstrap: str, prefix: str, workdir: Path, n: int, partitions: int, timeout: float) -> dict:
    env = worker_env(bootstrap, prefix, workdir, partitions=partitions, **WORKER_SETTINGS)
    worker = Worker(env, workdir, name="worker").start()
    try:
        # Faust reports ready once it has recovered the changelog: give it time to read N states.
        await asyncio.to_thread(worker.wait_ready, 120 + n / 2000)
        deadline = time.monotonic() + timeout
        seen: list[float] = []
        # The journey gauge is refreshed every 15 s, once every partition's engine was built
        # (on the first tick); RSS is read with a gauge that counts every journey.
        while True:
            worker.check_alive()
            journeys = metric(scrape(worker.web_port), "motwatch_active_journeys")
            if journeys is not None:
                seen.append(journeys)
            if journeys is not None and journeys >= n and len(seen) >= 2 and seen[-2] == journeys:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"worker holds {journeys} of {n:,} journeys after {timeout:.0f}s")
            await asyncio.sleep(2.0)
        rss = rss_kib(worker.pid)
        return {
            "journeys": int(journeys),
            "rss_kib": rss,
            "ready_after_s": round((worker.ready_at or 0) - worker.started_at, 1),
            "held_after_s": round(time.time() - worker.started_at, 1),
        }
    finally:
        worker.stop()


async def measure(
    bootstrap: str, states_path: Path, workdir: Path, sizes: list[int], partitions: int, run_id: str
) -> dict[str, Any]:
    out: dict[str, Any] = {"method": "changelog recovery of motwatch detect's final journey states"}
    points = []
    baseline = None
    for n in [0, *sizes]:
        prefix = f"bench-{run_id}-mem{n}."
        load_s = await _load(bootstrap, prefix, states_path, n, partitions)
        log(f"memory: {n:,} journey states in the changelog ({load_s:.1f}s); starting a worker")
        try:
            held = await _held(bootstrap, prefix, workdir / f"mem{n}", n, partitions, timeout=300 + n / 4000)
        except BenchError as exc:
            # One size failing keeps the others' figures.
            out.setdefault("errors", []).append(f"{n:,} journeys: {str(exc)[:300]}")
            log(f"memory: {n:,} journeys failed: {str(exc)[:300]}")
            if n == 0:
                break
            continue
        if n == 0:
            baseline = held["rss_kib"]
            out["rss_empty_kib"] = baseline
            continue
        per = (held["rss_kib"] - baseline) * 1024 / held["journeys"] if baseline else None
        points.append({**held, "bytes_per_journey": round(per) if per else None})
        log(f"memory: {held['journeys']:,} journeys: {per:.0f} B each" if per else "memory: no baseline")
    out["points"] = points
    return out
