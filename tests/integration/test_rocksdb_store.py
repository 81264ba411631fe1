"""The RocksDB store: a worker killed -9 mid-stream resumes on its data dir from the changelog's tail.

A worker with ``store = "rocksdb://"`` takes the first part of a seeded
simulation, then is killed -9 while it reads the rest. A new worker on the
same data dir (the same static member of the group, on another web port)
takes its partitions back and finds its journeys on disk: Faust's recovery reads only the changelog
records written after the store's persisted offsets (its log shows where
it starts and where the changelog ends), the timer index comes back from
the due times kept beside the store with few states read, and the moments
of the whole run are ``motwatch detect``'s, ids included (repeats allowed:
at least once).
"""

from __future__ import annotations

import re
import urllib.request

import orjson
import pytest

from motwatch.simulation import SimulationConfig, simulate
from tests.workers import (
    WorkerProcess,
    canonical,
    committed_to_the_end,
    detect_moments,
    free_port,
    motwatch_env,
    read_until_quiet,
    run_cli,
    wait_for,
)

pytestmark = pytest.mark.integration

SETTINGS = {"partitions": 4, "idle_advance_s": 36000, "store": "rocksdb://"}
# "written": at most 100 changed journeys wait for a commit, none packed: the run has many flushes,
# and the last one before the kill holds a few of the journeys, not all of them. "packed": past 20
# they wait packed, unsent, for the commit: the kill loses them, and the journeys' states come back
# from the last commit's.
CACHES = {
    "written": {"state_cache_journeys": 100, "state_cache_mib": 0},
    "packed": {"state_cache_journeys": 20, "state_cache_mib": 64},
}
ROW = re.compile(r"^\|\s*(\S+)\s*\|\s*(\d+)\s*\|\s*(-?\d+)\s*\|\s*$")


def _offsets(log: str, title: str) -> dict[tuple[str, int], int]:
    """A table Faust logs at recovery (its last one with ``title``): offset by changelog partition."""
    start = log.rindex(title)
    out: dict[tuple[str, int], int] = {}
    topic = ""
    for line in log[start:].splitlines()[3:]:
        match = ROW.match(line)
        if match is None:
            break
        name, partition, offset = match.groups()
        topic = topic if name == "〃" else name  # Faust writes a repeated topic as a ditto mark
        out[(topic, int(partition))] = int(offset)
    return out


def _received(port: str) -> float:
    """The worker's count of touchpoints read (``motwatch_events_received_total``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith("motwatch_events_received")
    )


@pytest.mark.parametrize("cache", sorted(CACHES))
async def test_a_worker_killed_mid_stream_resumes_from_the_changelog_tail(
    kafka_bootstrap, topic_prefix, tmp_path, cache
):
    lines = simulate(SimulationConfig(journeys=400, seed=23)).lines
    whole, first, rest = tmp_path / "whole.jsonl", tmp_path / "first.jsonl", tmp_path / "rest.jsonl"
    cut = len(lines) * 2 // 3
    whole.write_bytes(b"\n".join(lines) + b"\n")
    first.write_bytes(b"\n".join(lines[:cut]) + b"\n")
    rest.write_bytes(b"\n".join(lines[cut:]) + b"\n")
    # One data dir for both workers: the second is the first restarted (on another web port, which
    # its assignment handed back by the group does not name).
    env = motwatch_env(kafka_bootstrap, topic_prefix, data_dir=tmp_path / "data", **SETTINGS, **CACHES[cache])
    expected = detect_moments(whole, env)
    group, touchpoints = f"{topic_prefix}motwatch", f"{topic_prefix}touchpoints"
    changelog = f"{topic_prefix}motwatch-journeys-changelog"

    killed = WorkerProcess(env, tmp_path / "w1").start()
    try:
        assert run_cli("produce", str(first), env=env).returncode == 0
        async with committed_to_the_end(kafka_bootstrap, group, touchpoints) as done:
            await wait_for(done, 180, "the first part processed")
        assert run_cli("produce", str(rest), env=env).returncode == 0
        port = env["MOTWATCH_WEB_PORT"]

        async def reading_the_rest() -> bool:
            return _received(port) > cut

        await wait_for(reading_the_rest, 60, "the worker reading the rest", interval=0.01)
        assert killed.proc is not None
        killed.proc.kill()  # SIGKILL: no flush, no commit, no goodbye to the group
        killed.proc.wait(30)
    finally:
        killed.stop()
    async with committed_to_the_end(kafka_bootstrap, group, touchpoints) as done:
        assert not await done(), "killed mid-stream: the rest was not all read and committed"

    with WorkerProcess({**env, "MOTWATCH_WEB_PORT": str(free_port())}, tmp_path / "w2") as resumed:
        async with committed_to_the_end(kafka_bootstrap, group, touchpoints) as done:
            records = await read_until_quiet(
                kafka_bootstrap, f"{topic_prefix}moments", quiet_s=4.0, ready=done
            )
        assert resumed.alive()
        log = resumed.log()

    unique = {orjson.loads(r.value)["moment_id"]: orjson.loads(r.value) for r in records}
    assert canonical(list(unique.values())) == canonical(expected)

    # Faust read the journeys changelog from the store's persisted offsets: its tail, not all of it.
    starts = _offsets(log, "Reading Starts At - Active")
    ends = _offsets(log, "Highwater - Active")
    parts = [tp for tp in ends if tp[0] == changelog]
    assert len(parts) == 4
    tail = sum(ends[tp] - max(starts[tp], 0) + 1 for tp in parts)  # from the start offset on, -1: 0
    written = sum(ends[tp] + 1 for tp in parts)
    indexed = [
        (int(n), int(r), int(again or 0))
        for n, r, again in re.findall(
            r"partition \d+: timer index of (\d+) journeys rebuilt .*? \((\d+) states read\)"
            r"(?:; (\d+) of the last flush)?",
            log,
        )
    ]
    journeys = sum(n for n, _, _ in indexed)
    read = sum(r for _, r, _ in indexed)
    last_flush = sum(a for _, _, a in indexed)
    print(
        f"changelog records read {tail} of {written}; {journeys} journeys, {read} states read, "
        f"{last_flush} of the last flush"
    )
    assert journeys > 400 and written >= journeys
    assert tail * 10 < journeys, f"read {tail} changelog records for {journeys} journeys"
    # Only the states of the last flush before the kill were read (how many depends on where the
    # kill fell); every other journey was indexed from the due time kept beside the store.
    assert last_flush > 0 and read <= last_flush, (read, last_flush, journeys)
    if cache == "written":
        assert last_flush < journeys, (read, last_flush, journeys)
