"""The same simulated file gives the same moments, ids included, however it is run.

(a) ``motwatch detect`` offline; (b) ``motwatch replay --speed 0`` into a
sandbox that a worker with the sandbox prefix processes; (c) ``replay --speed
50`` of a five-minute slice of the same file, against detect on that slice.
The worker's event time comes from the stream alone (no idle advance), so
the pace of the replay must not matter.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime

import orjson
import pytest

from tests.workers import (
    WorkerProcess,
    canonical,
    committed_to_the_end,
    detect_moments,
    motwatch_env,
    read_until_quiet,
    run_cli,
)

pytestmark = pytest.mark.integration

SETTINGS = {"partitions": 4, "idle_advance_s": 36000}
# Quiet this long after the worker committed the input: the last timeouts fire on the next ticks.
QUIET_S = 4.0


def _slice(lines: list[bytes], from_s: float, to_s: float) -> list[bytes]:
    """The lines from ``from_s`` to ``to_s`` seconds of event time after the first."""

    def at(raw: bytes) -> float:
        return datetime.fromisoformat(orjson.loads(raw)["occurred_at"]).timestamp()

    start = at(lines[0])
    return [x for x in lines if from_s <= at(x) - start < to_s]


async def _through_the_worker(bootstrap, sandbox, workdir, path, speed, production_env, expected):
    """Replay ``path`` into the sandbox while its worker runs: the moments reported, the summary line."""
    env = motwatch_env(bootstrap, sandbox, **SETTINGS)
    with WorkerProcess(env, workdir) as worker:
        done = run_cli("replay", str(path), "--prefix", sandbox, "--speed", speed, env=production_env)
        assert done.returncode == 0, done.stderr.decode()
        # Until the worker has committed the whole replay and nothing more came: not until the
        # expected count, so that a moment written after it would be seen too.
        async with committed_to_the_end(bootstrap, f"{sandbox}motwatch", f"{sandbox}touchpoints") as done_:
            records = await read_until_quiet(bootstrap, f"{sandbox}moments", quiet_s=QUIET_S, ready=done_)
        assert worker.alive()
    for record in records:
        assert record.key.decode() == orjson.loads(record.value)["journey_key"]
    return [orjson.loads(r.value) for r in records], done.stdout.decode()


async def test_detect_and_replays_at_any_speed_report_the_same_moments(
    kafka_bootstrap, topic_prefix, tmp_path
):
    # The CLI's own namespace stands for production: replays go beside it, into sandboxes.
    production = motwatch_env(kafka_bootstrap, f"{topic_prefix}prod.", **SETTINGS)
    full, short = tmp_path / "full.jsonl", tmp_path / "short.jsonl"
    done = run_cli(
        "simulate", "--out", str(full), "--journeys", "300", "--rate", "20", "--seed", "37",
        "--fail", "all=0.25", env=production,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    lines = full.read_bytes().splitlines()
    # Five minutes, half an hour in, when the journeys are busiest: about six seconds at 50x.
    short.write_bytes(b"\n".join(_slice(lines, 1800, 2100)) + b"\n")

    # (a) offline
    expected = detect_moments(full, production)
    assert len(Counter(m["kind"] for m in expected)) == 9
    expected_short = detect_moments(short, production)
    kinds = Counter(m["kind"] for m in expected_short)
    assert len(expected_short) >= 15 and len(kinds) >= 5 and "chat_unanswered" in kinds  # a timeout too

    # (b) the real broker and worker, as fast as possible
    got, line = await _through_the_worker(
        kafka_bootstrap, f"{topic_prefix}b.", tmp_path / "b", full, "0", production, expected
    )
    assert line.startswith(f"replayed {len(lines)} messages to {topic_prefix}b.touchpoints")
    assert canonical(got) == canonical(expected)

    # (c) at 50 times the original pace: the slice's five minutes take about six seconds
    got, line = await _through_the_worker(
        kafka_bootstrap, f"{topic_prefix}c.", tmp_path / "c", short, "50", production, expected_short
    )
    seconds = float(re.search(r" in ([\d.]+)s ", line).group(1))
    assert 5.5 <= seconds < 60, line
    assert "at 50x the original pace" in line
    assert canonical(got) == canonical(expected_short)
