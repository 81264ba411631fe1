"""The demo's feed and watch against the real broker: Ctrl-C ends it at once, whatever it waits for."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from motwatch.demo import PREFIX, Tally, _run
from motwatch.simulate import SimulationConfig, simulate
from motwatch.transport import create_topics

pytestmark = pytest.mark.integration


async def test_ctrl_c_once_the_feed_is_done_ends_the_wait_for_moments(kafka_bootstrap, tmp_path) -> None:
    await create_topics(
        kafka_bootstrap, [f"{PREFIX}{t}" for t in ("touchpoints", "moments", "deadletter")], 1
    )
    lines = simulate(SimulationConfig(journeys=3, seed=1)).lines
    tally = Tally()
    interrupted_at: list[float] = []

    async def interrupt_once_fed() -> None:
        deadline = time.monotonic() + 30
        while tally.sent < len(lines) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the poll interval of a wait with a deadline
        interrupted_at.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    settle_s = 20
    with open(tmp_path / "moments.jsonl", "wb") as out:
        interrupter = asyncio.create_task(interrupt_once_fed())
        # No worker runs, so the moments never come: the demo would wait its whole settle time.
        interrupted = await _run(kafka_bootstrap, lines, 5000, settle_s, tally, 10**6, out)
        ended_at = time.monotonic()
        await interrupter
    assert interrupted
    assert tally.sent == len(lines)
    # Ended by the Ctrl-C, not by the settle deadline.
    assert ended_at - interrupted_at[0] < settle_s / 2
