"""Workers joining and leaving an 8-partition group mid-stream lose no moment and invent none.

One worker reads alone; a second joins and then a third, each while records
keep coming (small seeded chunks, the next once some of the last was read, so
the group rebalances while its members are reading); the third reads a share
of the next burst. Then one leaves by SIGTERM (exit code 0 within
``shutdown_grace_s``) and one is killed with SIGKILL, each half-way through a
burst, with records still coming until the survivors have taken their
partitions over. The last reads the rest to the end, holding every partition.
Each has its own data directory and web port. The moments written, repeats
aside, must be ``motwatch detect``'s on the same file, ids included, and every
repeat the very record of its first emission.
"""

from __future__ import annotations

import random
from pathlib import Path

from tests.faults.harness import (
    LONG,
    FaultKafka,
    FaultWorker,
    Feed,
    Group,
    built_between_assignments,
    collect_moments,
    create_input,
    event_time_past,
    judge,
    report,
    simulation,
    until,
    workers,
)

SEED = 1208
JOURNEYS = 1500 if LONG else 400
PARTITIONS = 8
GRACE_S = 20.0
SETTINGS = {"partitions": PARTITIONS, "session_timeout_s": 6, "shutdown_grace_s": GRACE_S}
EVERY = set(range(PARTITIONS))


async def test_workers_joining_and_leaving_mid_stream_lose_no_moment(
    fault_kafka: FaultKafka, topic_prefix: str, tmp_path: Path, record_property
) -> None:
    sim = simulation(tmp_path, JOURNEYS, SEED)
    share = len(sim.lines) // 10
    topic = await create_input(fault_kafka, topic_prefix, PARTITIONS)
    feed = Feed(fault_kafka, topic, sim.lines, random.Random(SEED))
    async with Group(fault_kafka, topic_prefix) as group, workers() as running:

        def worker(name: str) -> FaultWorker:
            started = FaultWorker(fault_kafka, topic_prefix, tmp_path / name, **SETTINGS)
            running.append(started)
            return started.launch()

        async def shared_by(*members: FaultWorker) -> bool:
            """Every one of ``members`` started, and the partitions all held, by them alone."""
            if not all(w.ready() for w in members):
                return False
            held = await group.members()
            return len(held) == len(members) and all(held) and set().union(*held) == EVERY

        await feed.send(share)
        a = worker("a")
        await until(lambda: shared_by(a), 120, "a to hold every partition", a)
        await until(group.caught_up, 180, "a to commit the first burst", a)

        b = worker("b")
        during_b = await feed.trickle_until(lambda: shared_by(a, b), "b to join", a)
        c = worker("c")
        during_c = await feed.trickle_until(lambda: shared_by(a, b, c), "c to join", a, b)
        await until(group.caught_up, 180, "the group to commit what came while c joined", a, b, c)
        before = await c.received()
        await feed.send(share)
        await until(group.caught_up, 180, "the group to commit the next burst", a, b, c)
        assert await c.received() > before, "c reads its share"

        # a leaves by SIGTERM half-way through a burst.
        await feed.read_into(share, a, b, c)
        code, took = await a.terminate(GRACE_S + 20)
        assert code == 0, f"a's exit code after SIGTERM: {code}\n{a.log()[-3000:]}"
        assert took < GRACE_S, f"a took {took:.1f}s to stop (shutdown_grace_s {GRACE_S:g})"
        after_a = await feed.trickle_until(lambda: shared_by(b, c), "b and c to take a's partitions", b, c)

        # b is killed half-way through a burst; c takes everything once b's session has timed out.
        await feed.read_into(share, b, c)
        b.kill9()
        after_b = await feed.trickle_until(lambda: shared_by(c), "c to take b's partitions", c)
        assert feed.left, "lines are left for the end"
        await feed.send(feed.left)
        await event_time_past(c, PARTITIONS, sim.expected)
        got = await collect_moments(fault_kafka, topic_prefix)
        c.check_alive()
    repeats = judge(got, sim.expected)
    report(
        record_property,
        touchpoints=len(sim.lines),
        moments=len(sim.expected),
        repeats=repeats,
        a_stop_s=round(took, 2),
        sent_while_changing=[during_b, during_c, after_a, after_b],
    )
    # Records taken before a rebalance and applied after the partitions were given up write
    # journeys and clocks of partitions another worker may be restoring, and leave behind an
    # engine that is used, unrebuilt, should the partition come back.
    stray = {w.workdir.name: built_between_assignments(w) for w in (a, b, c)}
    assert not any(stray.values()), f"journeys built between giving partitions up and new ones: {stray}"
