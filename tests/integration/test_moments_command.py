"""``motwatch moments`` against the session's broker: real moments (``motwatch detect`` on a seeded
simulation) on a 3-partition moments topic, some stamped hours ago and some minutes ago; the command's
rows are the expected subset, newest first, its counts right, ``--since`` reads no older record and
``--until`` no newer one.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from motwatch.core.partitioner import partition_for_key
from motwatch.kafka.admin import create_topics
from tests.workers import detect_moments, motwatch_env, run_cli

pytestmark = pytest.mark.integration

PARTITIONS = 3
HOUR_MS = 3_600_000


def _newest_first(moments: list[dict]) -> list[dict]:
    return sorted(
        moments, key=lambda m: (-datetime.fromisoformat(m["occurred_at"]).timestamp(), m["moment_id"])
    )


def _read(stderr: bytes) -> int:
    found = re.search(rb"read (\d+) records", stderr)
    assert found, stderr.decode()
    return int(found.group(1))


def _counts(lines: list[str]) -> dict[str, dict[str, int]]:
    """The summary's per-kind lines: ``kind  failed N  recovered M``."""
    out = {}
    for line in lines:
        cells = line.split()
        if len(cells) == 5 and cells[1] == "failed":
            out[cells[0]] = {"failed": int(cells[2]), "recovered": int(cells[4])}
    return out


def _expected_counts(moments: list[dict]) -> dict[str, dict[str, int]]:
    tally = Counter((m["kind"], m["status"]) for m in moments)
    kinds = {kind for kind, _ in tally}
    return {k: {"failed": tally[(k, "failed")], "recovered": tally[(k, "recovered")]} for k in kinds}


@pytest.fixture(scope="module")
def stocked(kafka_bootstrap, tmp_path_factory):
    """The environment, with every moment put on the topic, and which of them are recent."""
    prefix = f"t{uuid.uuid4().hex[:8]}.momcmd."  # topic_prefix is per test; these tests share a topic
    env = motwatch_env(kafka_bootstrap, prefix, partitions=PARTITIONS)
    work: Path = tmp_path_factory.mktemp("moments")
    events = work / "events.jsonl"
    done = run_cli(
        "simulate", "--out", str(events), "--journeys", "40", "--seed", "7", "--tail", "1d",
        "--fail", "all=0.3", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    moments = detect_moments(events, env)
    assert len(moments) > 50
    rng = random.Random(11)
    recent_ids = {m["moment_id"] for m in moments if rng.random() < 0.5}
    old = [m for m in moments if m["moment_id"] not in recent_ids]
    recent = [m for m in moments if m["moment_id"] in recent_ids]
    topic = f"{prefix}moments"

    async def produce() -> None:
        await create_topics(kafka_bootstrap, [topic], PARTITIONS)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            now_ms = int(time.time() * 1000)
            stamped = [(m, now_ms - 3 * HOUR_MS + i) for i, m in enumerate(old)]
            stamped += [(m, now_ms - HOUR_MS // 3 + i) for i, m in enumerate(recent)]
            for m, stamp in stamped:  # each partition's timestamps rise with its offsets
                await producer.send(topic, orjson.dumps(m), key=m["journey_key"].encode(), timestamp_ms=stamp)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(produce())
    return env, moments, recent


def test_json_the_recent_moments_newest_first_reading_none_older(stocked):
    env, moments, recent = stocked
    done = run_cli("moments", "--since", "1h", "--json", env=env)
    assert done.returncode == 0, done.stderr.decode()
    rows = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert rows == _newest_first(recent)
    assert len(recent) < len(moments)
    assert _read(done.stderr) == len(recent)
    summary = done.stderr.decode().splitlines()
    assert f"{len(recent)} moments matched, {len(recent)} shown" in summary
    assert _counts(summary) == _expected_counts(recent)


def test_filters_and_limit(stocked):
    env, _, recent = stocked
    kinds = ("abandoned_checkout", "chat_unanswered")
    expected = _newest_first([m for m in recent if m["kind"] in kinds and m["status"] == "failed"])
    assert len(expected) > 2
    done = run_cli(
        "moments", "--since", "45m", "--kind", kinds[0], "--kind", kinds[1], "--status", "failed",
        "--limit", "2", "--json", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert [orjson.loads(line) for line in done.stdout.splitlines()] == expected[:2]
    summary = done.stderr.decode().splitlines()
    assert f"{len(expected)} moments matched, 2 shown" in summary
    assert _counts(summary) == _expected_counts(expected)

    owner, moment = recent[0]["owner"], recent[0]["moment"]
    done = run_cli("moments", "--owner", owner, "--moment", moment, "--json", env=env)  # default --since 1h
    assert done.returncode == 0, done.stderr.decode()
    rows = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert rows == _newest_first([m for m in recent if m["owner"] == owner and m["moment"] == moment])


def test_journey_reads_only_its_partition(stocked):
    env, moments, recent = stocked
    key = Counter(m["journey_key"] for m in recent).most_common(1)[0][0]
    partition = partition_for_key(key, PARTITIONS)
    done = run_cli("moments", "--journey", key, "--json", env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert [orjson.loads(line) for line in done.stdout.splitlines()] == _newest_first(
        [m for m in recent if m["journey_key"] == key]
    )
    in_partition = [m for m in recent if partition_for_key(m["journey_key"], PARTITIONS) == partition]
    assert _read(done.stderr) == len(in_partition) < len(recent)

    old = next(m for m in moments if m not in recent)  # found by its short id with a wider --since
    done = run_cli("moments", "--since", "4h", "--id", old["moment_id"][:12], "--json", env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert [orjson.loads(line) for line in done.stdout.splitlines()] == [old]


def test_until_and_the_table(stocked):
    env, moments, recent = stocked
    old = [m for m in moments if m not in recent]
    done = run_cli("moments", "--since", "4h", "--until", "2h", env=env)
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    expected = _newest_first(old)
    assert lines[0].split()[:6] == ["OCCURRED_AT", "KIND", "STATUS", "OWNER", "JOURNEY", "MOMENT_ID"]
    body = lines[1 : 1 + len(expected)]
    assert [row.split()[:6] for row in body] == [
        [m["occurred_at"], m["kind"], m["status"], m["owner"], m["journey_key"], m["moment_id"][:12]]
        for m in expected
    ]
    assert lines[1 + len(expected)] == f"{len(expected)} moments matched, {len(expected)} shown"
    assert _counts(lines[2 + len(expected) :]) == _expected_counts(old)
    # Each partition's reading stopped at its first record past --until: the recent ones were not read.
    assert _read(done.stderr) == len(old) < len(moments)
