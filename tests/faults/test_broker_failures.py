"""One worker rides out a broker killed mid-stream and the whole cluster gone for 30 s: the same
process catches up by itself, loses no moment, invents none, and says how long Kafka was away.

On the 3-node cluster (topics of 3 replicas, 2 in sync: the worker's
replication factor left at 0, the cluster's default), a seeded simulation
goes in burst by burst through confluent-kafka. While the worker reads a
burst, the leader of the busiest partition of the touchpoints topic is
killed with SIGKILL, then started again. While it reads the next, every
broker is stopped, and started again on the same data ``OUTAGE_S`` later;
nothing is produced meanwhile. During the outage the worker's
``motwatch_kafka_reachable`` is 0 and ``motwatch status`` says UNREACHABLE;
afterwards the last outage lasted at least ``OUTAGE_S`` less a few seconds,
and status shows it. The worker that started is the one that ends: same
PID, running, one start-up in its log, its counters never reset. The
moments written, repeats aside, must be ``motwatch detect``'s on the same
file, ids included, and every repeat the very record of its first emission.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiokafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from motwatch.kafka.broker.cluster import KafkaCluster
from tests.faults.harness import (
    LONG,
    RECEIVED,
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
from tests.workers import READY_MARK, run_cli

SEED = 1309
JOURNEYS = 1000 if LONG else 300
PARTITIONS = 4
# How long every broker stays down: the point of the test, a fixed wait.
OUTAGE_S = 90.0 if LONG else 30.0
# The last outage as the worker measured it: at least this (probes a second apart, brokers
# that take a moment to stop answering once stopped).
MEASURED_AT_LEAST_S = OUTAGE_S - 5
SETTINGS = {"partitions": PARTITIONS}
REACHABLE = "motwatch_kafka_reachable"
UNREACHABLE_S = "motwatch_kafka_unreachable_seconds"
OUTAGES = "motwatch_kafka_outages_total"
LAST_OUTAGE_S = "motwatch_kafka_last_outage_seconds"
WRITE_FAILURES = "motwatch_write_failures_total"


def answered(check: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    """``check``, counting a broker that cannot answer yet (a leader or coordinator moving) as no."""

    async def guarded() -> bool:
        try:
            return await check()
        except (KafkaError, OSError, TimeoutError):
            return False

    return guarded


def summed(worker: FaultWorker, name: str) -> float:
    """A series of the worker's /metrics summed over its labels."""
    url = worker.url_path.read_text(encoding="utf-8").strip()
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def status_of(worker: FaultWorker) -> str:
    """``motwatch status`` on the worker, as an operator runs it: its output, which must succeed."""
    url = worker.url_path.read_text(encoding="utf-8").strip()
    done = run_cli("status", "--url", url, "--window", "0", env=worker.env, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


async def test_a_worker_rides_out_a_leader_kill_and_a_full_cluster_outage(
    fault_kafka: FaultKafka, topic_prefix: str, tmp_path: Path, record_property
) -> None:
    cluster: KafkaCluster | None = fault_kafka.cluster
    assert cluster is not None, "this test needs the 3-node cluster (motwatch.kafka.broker.cluster)"
    sim = simulation(tmp_path, JOURNEYS, SEED)
    rng = random.Random(SEED)
    parts = bursts(sim.lines, 4, rng)
    topic = await create_input(fault_kafka, topic_prefix, PARTITIONS)
    await produce(fault_kafka, topic, parts[0])
    figures: dict[str, object] = {}
    try:
        async with Group(fault_kafka, topic_prefix) as group, workers() as running:
            caught_up = answered(group.caught_up)
            worker = FaultWorker(fault_kafka, topic_prefix, tmp_path / "w", **SETTINGS)
            worker.env["MOTWATCH_REPLICATION_FACTOR"] = "0"  # the cluster's default: 3 replicas
            running.append(worker)
            worker.start()
            pid = worker.pid()
            seen: list[float] = []  # what the worker had read at each look: it never goes back

            async def metrics() -> dict[str, float]:
                worker.check_alive()
                values = await asyncio.to_thread(worker.metrics)
                seen.append(values[RECEIVED])
                assert seen == sorted(seen), f"the worker's counters went back: {seen}"
                return values

            await until(caught_up, 180, "the worker to commit the first burst", worker)
            moments_topic = f"{topic_prefix}moments"
            assert await cluster.in_sync_replicas(moments_topic, 0) == {1, 2, 3}, "3 replicas by default"
            assert (await metrics())[REACHABLE] == 1

            # 1. The leader of the busiest input partition killed while the worker reads a burst.
            base = (await metrics())[RECEIVED]
            producing = asyncio.create_task(produce(fault_kafka, topic, parts[1]))
            at = rng.randint(len(parts[1]) // 10, len(parts[1]) // 3)

            async def reading() -> bool:
                return (await metrics())[RECEIVED] >= base + at

            await until(reading, 120, f"the worker to read {at} of the second burst", worker)
            ends = await group.ends(topic)
            busiest = max(ends, key=lambda p: (ends[p], -p))
            leader = await cluster.leader_of(topic, busiest)
            assert leader is not None
            await asyncio.to_thread(cluster.kill, leader)
            killed_at = time.monotonic()

            async def new_leader() -> bool:
                return (await cluster.leader_of(topic, busiest)) not in (None, leader)

            await until(answered(new_leader), 60, "a new leader for the busiest partition", worker)
            await producing  # the producer kept going through the election
            await asyncio.to_thread(cluster.start_node, leader)

            async def back_in_sync() -> bool:
                return leader in await cluster.in_sync_replicas(topic, busiest)

            await until(answered(back_in_sync), 120, f"node {leader} back in the ISR", worker)
            figures.update(killed_node=leader, busiest_partition=busiest, killed_after_reading=at)
            figures["node_down_s"] = round(time.monotonic() - killed_at, 1)
            await until(caught_up, 180, "the worker to commit the second burst", worker)
            assert (await metrics())[OUTAGES] == 0, "one broker down is no outage"

            # 2. Every broker stopped while the worker reads the next burst, for OUTAGE_S.
            base = (await metrics())[RECEIVED]
            await produce(fault_kafka, topic, parts[2])
            at = rng.randint(1, len(parts[2]) // 4)
            await until(reading, 120, f"the worker to read {at} of the third burst", worker)
            await asyncio.to_thread(cluster.stop_all)
            down_at = time.monotonic()

            async def unreachable() -> bool:
                return (await metrics())[REACHABLE] == 0

            await until(unreachable, 30, "the worker to find Kafka unreachable", worker)
            figures["noticed_after_s"] = round(time.monotonic() - down_at, 1)
            during = status_of(worker)
            shown = re.search(r"^Kafka +UNREACHABLE for .*$", during, re.MULTILINE)
            assert shown, during
            figures["status_during"] = shown.group(0)
            while (left := down_at + OUTAGE_S - time.monotonic()) > 0:
                values = await metrics()  # alive, and saying so throughout
                assert values[REACHABLE] == 0 and values[UNREACHABLE_S] > 0, values
                await asyncio.sleep(min(left, 2.0))
            await asyncio.to_thread(cluster.start_all)
            restarted_in = time.monotonic() - down_at - OUTAGE_S

            async def reachable_again() -> bool:
                return (await metrics())[REACHABLE] == 1

            await until(reachable_again, 60, "the worker to reach Kafka again", worker)
            after = await metrics()
            figures["measured_outage_s"] = round(after[LAST_OUTAGE_S], 1)
            figures["cluster_restart_s"] = round(restarted_in, 1)
            assert after[OUTAGES] == 1 and after[UNREACHABLE_S] == 0, after
            assert MEASURED_AT_LEAST_S <= after[LAST_OUTAGE_S] <= OUTAGE_S + restarted_in + 15, after
            since = status_of(worker)
            shown = re.search(
                r"^Kafka +reachable \(last outage (.+), ended \S+Z; 1 outage since start\)$",
                since,
                re.MULTILINE,
            )
            assert shown, since
            figures["status_after"] = shown.group(0)

            # 3. The same worker catches up by itself; the last burst, and the judge.
            await until(caught_up, 180, "the worker to commit the third burst after the outage", worker)
            await produce(fault_kafka, topic, parts[3])
            got = await collect_moments(fault_kafka, topic_prefix)
            worker.check_alive()
            assert worker.pid() == pid and worker.log().count(READY_MARK) == 1, "one process, started once"
            last = await metrics()
            figures["write_failures"] = round(await asyncio.to_thread(summed, worker, WRITE_FAILURES))
            figures["write_stalled_s"] = round(last["motwatch_write_stalled_seconds_total"], 1)
            log = worker.log()
            figures["log_unreachable"] = log.count("Kafka unreachable since")
            figures["log_reachable_again"] = log.count("Kafka reachable again after")
    finally:
        if not cluster.running:  # whatever failed, the next test gets the whole cluster
            await asyncio.to_thread(cluster.start_all)
    repeats = judge(got, sim.expected)
    report(
        record_property,
        touchpoints=len(sim.lines),
        moments=len(sim.expected),
        repeats=repeats,
        **figures,
    )
    assert figures["log_unreachable"] == figures["log_reachable_again"] == 1
