"""While moments cannot be written, the worker stops taking input instead of holding it: its
memory stays bounded for 60 s of traffic, and nothing is lost once writing resumes.

The moments topic is made unwritable by the broker itself: its
``max.message.bytes`` is set below the size of any moment, so every write
is refused (MESSAGE_TOO_LARGE) while the topic stays readable and every
other topic writable. (A refused batch leaves a gap in the idempotent
producer's sequence, after which the broker would refuse every later one:
the worker must start its sequence afresh when it sends again.) For 60 s the input keeps coming.
The worker must stop at the first batch whose moments it cannot write: it
reads at most a couple of batches more (``BATCH_MAX`` records each, and what
its consumer holds in buffers), its resident memory grows by at most
``RSS_BOUND_MB``, its failed writes are counted. Then the setting goes back:
the worker writes what waited, reads the rest, and the moments are
``motwatch detect``'s, ids included.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from motwatch.agents.journeys import BATCH_MAX
from tests.faults.harness import (
    FaultKafka,
    FaultWorker,
    Group,
    bursts,
    collect_moments,
    create_input,
    judge,
    produce,
    report,
    simulation,
    until,
    workers,
)

SEED = 1517
JOURNEYS = 400
PARTITIONS = 4
SETTINGS = {"partitions": PARTITIONS, "session_timeout_s": 10}
OUTAGE_S = 60.0
BURSTS = 12
# Resident memory the worker may gain while its output is blocked and input keeps coming.
RSS_BOUND_MB = 64
WRITE_FAILURES = "motwatch_write_failures_total"
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1048588


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def _max_message_bytes(kafka: FaultKafka, topic: str, size: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": str(size)})
        await admin.alter_configs([resource])
    finally:
        await admin.close()


def _moment_write_failures(worker: FaultWorker) -> float:
    text = worker.metrics_text()
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith(WRITE_FAILURES + "{") and 'stream="moments"' in line
    )


async def test_blocked_moments_stop_the_input_and_memory_stays_bounded(
    fault_kafka: FaultKafka, topic_prefix: str, tmp_path: Path, record_property
) -> None:
    began = time.monotonic()
    sim = simulation(tmp_path, JOURNEYS, SEED)
    simulated = time.monotonic()
    rng = random.Random(SEED)
    half = len(sim.lines) // 3
    first, during = sim.lines[:half], sim.lines[half:]
    topic = await create_input(fault_kafka, topic_prefix, PARTITIONS)
    moments = f"{topic_prefix}moments"
    await produce(fault_kafka, topic, first)
    async with Group(fault_kafka, topic_prefix) as group, workers() as running:
        worker = FaultWorker(fault_kafka, topic_prefix, tmp_path / "w1", **SETTINGS)
        running.append(worker)
        worker.start()
        await until(group.caught_up, 180, "the worker to commit the first part", worker)
        live = time.monotonic()
        await _max_message_bytes(fault_kafka, moments, 64)
        before = await worker.received()
        rss_before = _rss_mb(worker.pid())
        peak = rss_before
        started = time.monotonic()
        for n, burst in enumerate(bursts(during, BURSTS, rng)):
            await produce(fault_kafka, topic, burst)
            # The input comes at a steady pace for the whole outage; meanwhile, memory is sampled.
            while time.monotonic() < started + OUTAGE_S * (n + 1) / BURSTS:
                worker.check_alive()
                peak = max(peak, _rss_mb(worker.pid()))
                await asyncio.sleep(0.5)
        taken = await worker.received() - before
        failures = await asyncio.to_thread(_moment_write_failures, worker)
        committed = await group.committed(topic)
        assert not await group.caught_up()
        assert taken <= min(2 * BATCH_MAX, len(during) / 2), (
            f"the worker read {taken} of {len(during)} touchpoints while it could not write"
        )
        assert failures >= 1, "failed writes of moments are counted"
        assert peak - rss_before <= RSS_BOUND_MB, f"grew {peak - rss_before:.0f} MiB"

        await _max_message_bytes(fault_kafka, moments, KAFKA_DEFAULT_MAX_MESSAGE_BYTES)
        unblocked = time.monotonic()
        got = await collect_moments(fault_kafka, topic_prefix)
        worker.check_alive()
        assert await group.committed(topic) != committed
    repeats = judge(got, sim.expected)
    report(
        record_property,
        touchpoints=len(sim.lines),
        read_while_blocked=taken,
        produced_while_blocked=len(during),
        rss_before_mb=round(rss_before),
        rss_growth_mb=round(peak - rss_before, 1),
        moment_write_failures=failures,
        repeats=repeats,
        simulate_s=round(simulated - began),
        first_part_s=round(live - simulated),
        catch_up_s=round(time.monotonic() - unblocked),
    )
