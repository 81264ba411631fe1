"""A worker stopped with SIGTERM mid-stream flushes, commits what it processed, leaves its
group and exits 0 within ``shutdown_grace_s``; the next one repeats nothing.

Half-way through a burst the worker gets SIGTERM by its PID (no SIGKILL
after it: a worker that needs one fails). It must exit with code 0 before
``shutdown_grace_s`` (past it, the worker gives up with code 1), and be out
of the group at once, not when its session times out. The committed offsets
must then be what it processed: a new worker reads exactly the input past
them (no gap, no overlap), and once it has read the rest no moment is
written twice and no touchpoint re-keyed twice, while every moment is
``motwatch detect``'s on the same file, ids included.
"""

from __future__ import annotations

import random
from pathlib import Path

from tests.faults.harness import (
    LONG,
    FaultKafka,
    FaultWorker,
    Group,
    after_stop,
    bursts,
    collect_moments,
    create_input,
    event_time_past,
    judge,
    produce,
    rekeyed_repeats,
    report,
    resumed,
    simulation,
    until,
    workers,
)

SEED = 1209
JOURNEYS = 1000 if LONG else 250
PARTITIONS = 4
GRACE_S = 15.0
# Longer than the check that the worker left: staying until the session times out is not leaving.
SESSION_S = 10
SETTINGS = {"partitions": PARTITIONS, "session_timeout_s": SESSION_S, "shutdown_grace_s": GRACE_S}


async def test_sigterm_mid_stream_commits_what_was_processed_and_repeats_nothing(
    fault_kafka: FaultKafka, topic_prefix: str, tmp_path: Path, record_property
) -> None:
    sim = simulation(tmp_path, JOURNEYS, SEED)
    rng = random.Random(SEED)
    first, middle, rest = bursts(sim.lines, 3, rng)
    topic = await create_input(fault_kafka, topic_prefix, PARTITIONS)
    await produce(fault_kafka, topic, first)
    async with Group(fault_kafka, topic_prefix) as group, workers() as running:
        stopped = FaultWorker(fault_kafka, topic_prefix, tmp_path / "w1", **SETTINGS)
        running.append(stopped)
        stopped.start()
        await until(group.caught_up, 180, "w1 to commit the first burst", stopped)
        base = await stopped.received()
        await produce(fault_kafka, topic, middle)
        at = rng.randint(len(middle) // 10, len(middle) // 2)

        async def reading() -> bool:
            return await stopped.received() >= base + at

        await until(reading, 120, f"w1 to read {at} of the burst", stopped)
        code, took = await stopped.terminate(GRACE_S + 20)
        assert code == 0, f"exit code {code} after SIGTERM:\n{stopped.log()[-3000:]}"
        assert took < GRACE_S, f"took {took:.1f}s to stop (shutdown_grace_s {GRACE_S:g})"

        async def left_the_group() -> bool:
            return await group.members() == []

        await until(left_the_group, SESSION_S / 2, "the stopped worker to be out of its group")
        left, rekeyed = await after_stop(group)
        successor = FaultWorker(fault_kafka, topic_prefix, tmp_path / "w2", **SETTINGS)
        running.append(successor)
        successor.start()
        resumption = await resumed(group, successor, left, rekeyed)
        await produce(fault_kafka, topic, rest)
        await event_time_past(successor, PARTITIONS, sim.expected)
        got = await collect_moments(fault_kafka, topic_prefix)
        successor.check_alive()
    repeats = judge(got, sim.expected)
    twice = await rekeyed_repeats(fault_kafka, topic_prefix, sim.lines)
    report(
        record_property,
        touchpoints=len(sim.lines),
        moments=len(sim.expected),
        stop_s=round(took, 2),
        left_for_the_next=resumption.unread_input,
        repeats=repeats,
        rekeyed_twice=twice,
    )
    assert repeats == 0, "after a clean stop no moment is written twice"
    assert twice == 0, "after a clean stop no touchpoint is re-keyed twice"
