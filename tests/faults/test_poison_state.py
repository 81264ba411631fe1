"""Stored state that cannot be read does not crash-loop the worker: it goes to the quarantine
topic, is counted and logged, and its journey (or clock) starts afresh.

Before any worker runs, the tables' changelogs get records no worker could
have written: a torn packed state, a state of a newer format, a state of the
wrong shape, one under a key that is not UTF-8, one for a journey no event
names, and a partition clock that is not JSON. Three of the journeys are in
the simulation. A worker then reads the whole input. It must stay up, set
each record aside once (quarantine topic, with the table and the reason in
its headers; the counter; a log line), and report exactly what ``motwatch
detect`` reports, since a journey that starts afresh before its first event
is a journey with no past. A worker started after a kill -9 on the same
changelogs finds nothing more to set aside: the unreadable records were
deleted from the changelog once they were safe in the quarantine topic.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from motwatch.core.journey import JourneyState
from motwatch.core.partitioner import murmur2
from motwatch.kafka.admin import create_topics
from tests.clients import journey_key
from tests.faults.harness import (
    FaultKafka,
    FaultWorker,
    Group,
    collect_moments,
    create_input,
    judge,
    produce,
    report,
    simulation,
    until,
    workers,
)
from tests.workers import read_topic

SEED = 1402
JOURNEYS = 150
PARTITIONS = 4
SETTINGS = {"partitions": PARTITIONS, "session_timeout_s": 10}
QUARANTINED = "motwatch_state_quarantined_total"


def _partition(key: bytes) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % PARTITIONS


def _poison(lines: list[bytes]) -> list[tuple[str, bytes, bytes]]:
    """(table, key, value) of records no worker could read: three of the simulation's journeys,
    a journey no event names, a key that is not UTF-8, and partition 0's clock."""
    keys: list[bytes] = []
    for line in lines:
        key = journey_key(line)
        if key not in keys:
            keys.append(key)
        if len(keys) == 3:
            break
    return [
        ("journeys", keys[0], b"\x01torn: not a packed state"),
        ("journeys", keys[1], orjson.dumps({"v": 99, "key": keys[1].decode()})),
        ("journeys", keys[2], orjson.dumps({"key": keys[2].decode(), "seen": "not a map"})),
        ("journeys", b"nobody-at-all", b"{"),
        ("journeys", b"\xff\xfenot-text", JourneyState("not-text").pack()),
        ("clocks", b"0", b"{not a clock"),
    ]


async def _write_changelogs(kafka: FaultKafka, prefix: str, poison: list[tuple[str, bytes, bytes]]) -> None:
    app = f"{prefix}motwatch"
    names = [f"{app}-journeys-changelog", f"{app}-clocks-changelog"]
    await create_topics(
        kafka.bootstrap, names, PARTITIONS, kafka.replication, config={"cleanup.policy": "compact"}
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for table, key, value in poison:
            partition = int(key) if table == "clocks" else _partition(key)
            await producer.send_and_wait(f"{app}-{table}-changelog", value, key=key, partition=partition)
    finally:
        await producer.stop()


def _quarantined(worker: FaultWorker) -> dict[str, float]:
    """The worker's quarantine counter, by table."""
    counts = {}
    for line in worker.metrics_text().splitlines():
        if line.startswith(QUARANTINED + "{"):
            labels, _, value = line.partition("} ")
            counts[labels.split('table="')[1].rstrip('"')] = float(value)
    return counts


async def test_unreadable_state_is_set_aside_once_and_its_journey_starts_afresh(
    fault_kafka: FaultKafka, topic_prefix: str, tmp_path: Path, record_property
) -> None:
    sim = simulation(tmp_path, JOURNEYS, SEED)
    poison = _poison(sim.lines)
    await _write_changelogs(fault_kafka, topic_prefix, poison)
    topic = await create_input(fault_kafka, topic_prefix, PARTITIONS)
    await produce(fault_kafka, topic, sim.lines[: len(sim.lines) // 2])
    quarantine = f"{topic_prefix}quarantine"
    async with Group(fault_kafka, topic_prefix) as group, workers() as running:
        first = FaultWorker(fault_kafka, topic_prefix, tmp_path / "w1", **SETTINGS)
        running.append(first)
        first.start()
        pid = first.pid()
        await until(group.caught_up, 180, "w1 to commit the first half", first)
        records = await read_topic(fault_kafka.bootstrap, quarantine, lambda got: len(got) >= len(poison))
        assert sorted((r.key, r.value) for r in records) == sorted((k, v) for _, k, v in poison)
        tables = sorted(dict(r.headers)["mw-table"].decode() for r in records)
        assert tables == sorted(table for table, _, _ in poison)
        assert all(dict(r.headers)["mw-reason"] for r in records)
        assert _quarantined(first) == {"journeys": 5.0, "clocks": 1.0}
        assert first.log().count("could not be read") == len(poison)
        first.kill9()
        assert first.pid() == pid  # one process all along: it never restarted itself

        second = FaultWorker(fault_kafka, topic_prefix, tmp_path / "w2", **SETTINGS)
        running.append(second)
        second.start()
        await produce(fault_kafka, topic, sim.lines[len(sim.lines) // 2 :])
        got = await collect_moments(fault_kafka, topic_prefix)
        second.check_alive()
        assert _quarantined(second) == {}, "set aside once: the changelog no longer holds them"
        assert "could not be read" not in second.log()
    again = await read_topic(fault_kafka.bootstrap, quarantine, lambda got: False, timeout=5)
    assert len(again) == len(poison)
    repeats = judge(got, sim.expected)
    report(record_property, quarantined=len(poison), moments=len(sim.expected), repeats=repeats)
