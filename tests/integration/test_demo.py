"""The demo's feed and watch against the real broker: Ctrl-C ends it at once, whatever it waits for."""

from __future__ import annotations

import os
import signal
import time

import pytest

from motwatch.commands import demo
from motwatch.commands.demo import PREFIX, Tally
from motwatch.kafka.admin import create_topics
from motwatch.simulation import SimulationConfig, simulate

pytestmark = pytest.mark.integration


async def test_ctrl_c_once_the_feed_is_done_ends_the_wait_for_moments(
    kafka_bootstrap, tmp_path, monkeypatch
) -> None:
    topics = [f"{PREFIX}{t}" for t in ("touchpoints", "moments", "deadletter")]
    await create_topics(kafka_bootstrap, topics, 1)
    lines = simulate(SimulationConfig(journeys=3, seed=1)).lines
    tally = Tally()
    interrupted_at: list[float] = []
    feed = demo._feed

    async def feed_then_ctrl_c(*args: object) -> None:
        await feed(*args)  # type: ignore[arg-type]
        interrupted_at.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(demo, "_feed", feed_then_ctrl_c)
    settle_s = 20
    with open(tmp_path / "moments.jsonl", "wb") as out:
        # No worker runs, so the moments never come: the demo would wait its whole settle time.
        interrupted = await demo._run(kafka_bootstrap, lines, 5000, settle_s, tally, 10**6, out)
        ended_at = time.monotonic()
    assert interrupted
    assert tally.sent == len(lines)
    # Ended by the Ctrl-C, not by the settle deadline.
    assert ended_at - interrupted_at[0] < settle_s / 2
