"""Workers killed with SIGKILL while they read lose no moment and invent none, and each new one
resumes where the group was.

A seeded simulation goes in burst by burst. A worker reads what is there
until its group has committed it all; the next burst comes, and once the
worker has read a seeded share of it (it holds its partitions, has committed
offsets, moments are flowing) it is killed with SIGKILL. Right after each kill
the group's committed offsets (input and re-keyed topic) are read; a new
worker, with a data directory of its own, must then read exactly the input
past them and no more of the re-keyed topic than lies past them: it resumes
from the committed offsets with its journeys restored from the changelog,
not from the first record with the repeats dropped. After the last kill a
worker reads the rest to the end. The moments written, repeats aside, must
be ``motwatch detect``'s on the same file, ids included, and every repeat the
very record of its first emission.
"""

from __future__ import annotations

import random
from pathlib import Path

from tests.faults.harness import (
    LONG,
    FaultKafka,
    FaultWorker,
    Group,
    Resumption,
    after_stop,
    bursts,
    collect_moments,
    create_input,
    event_time_past,
    judge,
    kill_while_reading,
    produce,
    report,
    resumed,
    simulation,
    until,
    workers,
)

SEED = 1207
KILLS = 9 if LONG else 5
JOURNEYS = 1500 if LONG else 250
PARTITIONS = 4
# A killed worker's partitions go to the next one once its session has timed out.
SETTINGS = {"partitions": PARTITIONS, "session_timeout_s": 6}


async def test_workers_killed_mid_stream_lose_no_moment(
    fault_kafka: FaultKafka, topic_prefix: str, tmp_path: Path, record_property
) -> None:
    sim = simulation(tmp_path, JOURNEYS, SEED)
    rng = random.Random(SEED)
    parts = bursts(sim.lines, KILLS + 2, rng)
    topic = await create_input(fault_kafka, topic_prefix, PARTITIONS)
    await produce(fault_kafka, topic, parts[0])
    resumptions: list[Resumption] = []
    kill_points: list[int] = []
    async with Group(fault_kafka, topic_prefix) as group, workers() as running:
        worker = FaultWorker(fault_kafka, topic_prefix, tmp_path / "w0", **SETTINGS)
        running.append(worker)
        worker.start()
        await until(group.caught_up, 180, "w0 to commit the first burst", worker)
        for n, burst in enumerate(parts[1:-1], start=1):
            at = rng.randint(max(1, len(burst) // 10), max(1, len(burst) // 2))
            kill_points.append(at)
            await kill_while_reading(worker, group, fault_kafka, burst, at)
            left, rekeyed = await after_stop(group)
            assert left.rekeyed_committed > 0, "the group had committed the re-keyed topic before the kill"
            worker = FaultWorker(fault_kafka, topic_prefix, tmp_path / f"w{n}", **SETTINGS)
            running.append(worker)
            worker.start()
            resumptions.append(await resumed(group, worker, left, rekeyed))
        await produce(fault_kafka, topic, parts[-1])
        await event_time_past(worker, PARTITIONS, sim.expected)
        got = await collect_moments(fault_kafka, topic_prefix)
        worker.check_alive()
    repeats = judge(got, sim.expected)
    report(
        record_property,
        kills=KILLS,
        touchpoints=len(sim.lines),
        moments=len(sim.expected),
        repeats=repeats,
        kill_points=kill_points,
        reread_touchpoints=[r.read_input for r in resumptions],
        reread_rekeyed=[r.read_rekeyed for r in resumptions],
        # Partitions a new worker found nothing committed for, then had committed offsets when
        # asked again (a group coordinator that moved or was loading: streams/committed.py).
        asked_again=sum(w.log().count("asked again, the group coordinator") for w in running),
    )
    # Killed before they committed what they read: each new worker had some of it to read again.
    assert sum(r.unread_input for r in resumptions) > 0
    assert all(r.read_input < len(sim.lines) // 2 for r in resumptions), "none re-read the whole input"
