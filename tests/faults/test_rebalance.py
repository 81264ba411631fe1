"""Workers joining and leaving an 8-partition group mid-stream lose no moment and invent none.

Two workers share the eight partitions; a third joins while a burst is read
and gets a share; then one leaves by SIGTERM (exit code 0, within
``shutdown_grace_s``) and one is killed with SIGKILL, each while a burst is
read. The last reads the rest to the end, holding every partition. Each has
its own data directory and web port. The moments written, repeats aside,
must be ``motwatch detect``'s on the same file, ids included, and every repeat
the very record of its first emission.
"""

from __future__ import annotations

import random
from pathlib import Path

from tests.faults.harness import (
    LONG,
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

SEED = 1208
JOURNEYS = 1500 if LONG else 300
PARTITIONS = 8
GRACE_S = 20.0
SETTINGS = {"partitions": PARTITIONS, "session_timeout_s": 6, "shutdown_grace_s": GRACE_S}
EVERY = set(range(PARTITIONS))


async def test_workers_joining_and_leaving_mid_stream_lose_no_moment(
    fault_kafka: FaultKafka, topic_prefix: str, tmp_path: Path, record_property
) -> None:
    sim = simulation(tmp_path, JOURNEYS, SEED)
    rng = random.Random(SEED)
    parts = iter(bursts(sim.lines, 6, rng))
    topic = await create_input(fault_kafka, topic_prefix, PARTITIONS)
    await produce(fault_kafka, topic, next(parts))
    async with Group(fault_kafka, topic_prefix) as group, workers() as running:

        def worker(name: str) -> FaultWorker:
            started = FaultWorker(fault_kafka, topic_prefix, tmp_path / name, **SETTINGS)
            running.append(started)
            return started.start()

        async def shared_by(count: int) -> bool:
            """``count`` members, each with some partitions, all of them held."""
            held = await group.members()
            return len(held) == count and all(held) and set().union(*held) == EVERY

        async def read_into(burst: list[bytes], *readers: FaultWorker) -> None:
            """Produce ``burst``; return once ``readers`` have read a seeded share of it."""
            base = sum([await w.received() for w in readers])
            at = rng.randint(len(burst) // 10, len(burst) // 2)
            await produce(fault_kafka, topic, burst)

            async def reading() -> bool:
                return sum([await w.received() for w in readers]) >= base + at

            await until(reading, 120, f"{at} of {len(burst)} new touchpoints to be read", *readers)

        a, b = worker("a"), worker("b")
        await until(lambda: shared_by(2), 120, "a and b to share the partitions", a, b)
        await until(group.caught_up, 180, "a and b to commit the first burst", a, b)

        # c joins while a burst is read, and takes a share of the next.
        await read_into(next(parts), a, b)
        c = worker("c")
        await until(lambda: shared_by(3), 120, "a, b and c to share the partitions", a, b, c)
        await until(group.caught_up, 180, "the group to commit the second burst", a, b, c)
        await read_into(next(parts), a, b, c)
        await until(group.caught_up, 180, "the group to commit the third burst", a, b, c)
        assert await c.received() > 0, "c read its share"

        # a leaves by SIGTERM, while a burst is read.
        await read_into(next(parts), a, b, c)
        code, took = await a.terminate(GRACE_S + 20)
        assert code == 0, f"a's exit code after SIGTERM: {code}\n{a.log()[-3000:]}"
        assert took < GRACE_S, f"a took {took:.1f}s to stop (shutdown_grace_s {GRACE_S:g})"
        await until(lambda: shared_by(2), 120, "b and c to share a's partitions", b, c)

        # b is killed, while a burst is read; c takes everything once b's session has timed out.
        await read_into(next(parts), b, c)
        b.kill9()
        await until(lambda: shared_by(1), 120, "c to hold every partition", c)
        await produce(fault_kafka, topic, next(parts))
        got = await collect_moments(fault_kafka, topic_prefix)
        c.check_alive()
    repeats = judge(got, sim.expected)
    report(
        record_property,
        touchpoints=len(sim.lines),
        moments=len(sim.expected),
        repeats=repeats,
        a_stop_s=round(took, 2),
    )
