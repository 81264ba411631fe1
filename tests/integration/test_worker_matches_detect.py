"""The worker behind the real broker and ``motwatch detect`` agree, moment for moment.

Simulated journeys of every kind go through ``motwatch produce`` into a
four-partition input topic while ``motwatch worker`` runs; the moments it
writes must be the very records ``motwatch detect`` writes for the same file,
ids included. Then a restarted worker, resuming from the table changelog,
must neither lose nor repeat open timeouts.
"""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from motwatch.simulation import SimulationConfig, simulate
from tests.workers import (
    WorkerProcess,
    committed_to_the_end,
    motwatch_env,
    read_until_quiet,
    run_cli,
)
from tests.workers import canonical as _canonical
from tests.workers import detect_moments as _detect

pytestmark = pytest.mark.integration

# Idle advance far beyond the test: only the stream itself moves event time.
SETTINGS = {"partitions": 4, "idle_advance_s": 36000}


async def _until_quiet(bootstrap: str, prefix: str) -> list:
    """The moments topic, read until the worker has committed the input and nothing more came."""
    async with committed_to_the_end(bootstrap, f"{prefix}motwatch", f"{prefix}touchpoints") as done:
        return await read_until_quiet(bootstrap, f"{prefix}moments", quiet_s=4.0, ready=done)


async def test_worker_reports_what_detect_reports(kafka_bootstrap, topic_prefix, tmp_path):
    sim = simulate(SimulationConfig(journeys=150, seed=11))
    path = tmp_path / "journeys.jsonl"
    path.write_bytes(b"\n".join(sim.lines) + b"\n")
    env = motwatch_env(kafka_bootstrap, topic_prefix, **SETTINGS)

    expected = _detect(path, env)
    kinds = Counter(m["kind"] for m in expected)
    assert len(kinds) == 9, f"the simulation should exercise every kind, got {sorted(kinds)}"

    with WorkerProcess(env, tmp_path / "w") as worker:
        assert run_cli("produce", str(path), env=env).returncode == 0
        records = await _until_quiet(kafka_bootstrap, topic_prefix)
        got = [orjson.loads(r.value) for r in records]
        assert worker.alive()

    assert _canonical(got) == _canonical(expected)
    for record in records:
        assert record.key.decode() == orjson.loads(record.value)["journey_key"]


async def test_a_restarted_worker_resumes_journeys_and_open_timeouts(kafka_bootstrap, topic_prefix, tmp_path):
    sim = simulate(SimulationConfig(journeys=80, seed=5))
    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(b"\n".join(sim.lines) + b"\n")
    half = len(sim.lines) // 2
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"\n".join(sim.lines[:half]) + b"\n")
    second.write_bytes(b"\n".join(sim.lines[half:]) + b"\n")
    env = motwatch_env(kafka_bootstrap, topic_prefix, **SETTINGS)
    expected = _detect(whole, env)
    expected_first = _detect(first, env)
    assert len(expected) > len(expected_first)

    with WorkerProcess(env, tmp_path / "w1"):
        assert run_cli("produce", str(first), env=env).returncode == 0
        records = await _until_quiet(kafka_bootstrap, topic_prefix)
        assert _canonical([orjson.loads(r.value) for r in records]) == _canonical(expected_first)
    # A new process: state and open timeouts come back from the changelog.
    with WorkerProcess(env, tmp_path / "w2"):
        assert run_cli("produce", str(second), env=env).returncode == 0
        records = await _until_quiet(kafka_bootstrap, topic_prefix)
    # At least once: a repeat after the restart carries the same id and the same content.
    unique = {orjson.loads(r.value)["moment_id"]: orjson.loads(r.value) for r in records}
    assert _canonical(list(unique.values())) == _canonical(expected)
