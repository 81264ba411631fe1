"""``motwatch record`` and ``motwatch replay`` against the session's real broker.

Record keeps what a message is (key, timestamp, headers, partition, offset)
and selects a time range or offset ranges; replay puts a recorded file or a
topic's range back on another topic with keys, timestamps and headers intact.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import orjson
import pytest

from motwatch.kafka.admin import create_topics
from motwatch.kafka.writer import topic_writer
from tests.journeys import line
from tests.workers import motwatch_env, run_cli

pytestmark = pytest.mark.integration

PARTITIONS = 3


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _source(bootstrap: str, topic: str) -> int:
    """Twelve messages a minute apart (30 s past each minute), the first two hours ago; returns its time."""
    base = round(time.time() * 1000) - 2 * 3600_000
    await create_topics(bootstrap, [topic], PARTITIONS)
    async with topic_writer(bootstrap, topic) as writer:
        for i in range(12):
            value = line("page_view", i, key=f"cust-{i % 4}", eid=f"src-{i}", url="https://shop.example/")
            headers = [("trace", f"t{i}".encode()), ("bin", b"\x00\xff")]
            await writer.send(value, f"cust-{i % 4}".encode(), base + i * 60_000 + 30_000, headers)
        # A message that is no event at all, without a key: replayed as it is.
        await writer.send(b"\xff\xfe not utf-8", None, base + 12 * 60_000 + 30_000, None)
    return base


def _record(env, topic: str, path, *options: str) -> list[dict]:
    done = run_cli("record", topic, "--out", str(path), "--with-meta", *options, env=env, timeout=90)
    assert done.returncode == 0, done.stderr.decode()
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def _message(row: dict) -> bytes:
    """What replay must keep: key, value, timestamp and headers (as recorded), comparable."""
    kept = ("key", "key_b64", "value", "value_b64", "timestamp", "headers")
    return orjson.dumps({name: row.get(name) for name in kept})


async def test_record_selects_time_and_offset_ranges_with_meta(kafka_bootstrap, topic_prefix, tmp_path):
    env = motwatch_env(kafka_bootstrap, f"{topic_prefix}prod.")
    topic = f"{topic_prefix}src"
    base = await _source(kafka_bootstrap, topic)
    everything = _record(env, topic, tmp_path / "all.jsonl", "--from-beginning", "--idle", "2")
    assert len(everything) == 13 and {r["topic"] for r in everything} == {topic}
    binary = {"b64": base64.b64encode(b"\x00\xff").decode()}
    for row in everything:
        if row["key"] is not None:
            i = int(orjson.loads(row["value"])["event_id"].removeprefix("src-"))
            assert row["key"] == f"cust-{i % 4}" and row["timestamp"] == base + i * 60_000 + 30_000
            assert row["headers"] == [["trace", f"t{i}"], ["bin", binary]]
    odd = next(r for r in everything if r["key"] is None)
    assert base64.b64decode(odd["value_b64"]) == b"\xff\xfe not utf-8" and odd["headers"] == []

    # A closed time range (RFC 3339, until inclusive) ends by itself: an hour of --idle would
    # outlast the command's timeout.
    since, until = _iso(base + 3 * 60_000), _iso(base + 6 * 60_000 + 30_000)
    window = _record(env, topic, tmp_path / "w.jsonl", "--since", since, "--until", until, "--idle", "3600")
    assert sorted(orjson.loads(r["value"])["event_id"] for r in window) == [f"src-{i}" for i in (3, 4, 5, 6)]

    # Relative: the last 115 minutes are messages 5.. (each 30 s clear of the bound).
    recent = _record(env, topic, tmp_path / "r.jsonl", "--since", "115m", "--idle", "2")
    assert len(recent) == 8 and min(r["timestamp"] for r in recent) == base + 5 * 60_000 + 30_000

    # Offsets per partition, inclusive; partitions not named are not read.
    part = everything[0]["partition"]
    other = (part + 1) % PARTITIONS
    ranged = _record(env, topic, tmp_path / "o.jsonl", "--offsets", f"{part}:1-2,{other}:0-", "--idle", "2")
    wanted = [
        r for r in everything if (r["partition"] == part and 1 <= r["offset"] <= 2) or r["partition"] == other
    ]
    assert sorted(map(_message, ranged)) == sorted(map(_message, wanted))


async def test_replay_of_a_recorded_file_keeps_keys_timestamps_and_headers(
    kafka_bootstrap, topic_prefix, tmp_path
):
    env = motwatch_env(kafka_bootstrap, f"{topic_prefix}prod.", partitions=PARTITIONS)
    source, copy = f"{topic_prefix}src", f"{topic_prefix}copy"
    await _source(kafka_bootstrap, source)
    recorded = _record(env, source, tmp_path / "rec.jsonl", "--from-beginning", "--idle", "2")

    done = run_cli("replay", str(tmp_path / "rec.jsonl"), "--to", copy, env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith(f"replayed 13 messages to {copy} in ")
    assert b"\r" not in done.stderr and b"13/13" not in done.stderr  # no progress bar without a terminal

    replayed = _record(env, copy, tmp_path / "copy.jsonl", "--from-beginning", "--idle", "2")
    assert sorted(map(_message, replayed)) == sorted(map(_message, recorded))
    # Same key, same partition count: same partition and the same order within it.
    keyed = [(r["partition"], r["offset"], _message(r)) for r in recorded if r["key"] is not None]
    assert sorted(keyed) == sorted((r["partition"], r["offset"], _message(r)) for r in replayed if r["key"])


async def test_replay_of_a_topic_range_paced_in_time_order_with_fresh_ids(
    kafka_bootstrap, topic_prefix, tmp_path
):
    env = motwatch_env(kafka_bootstrap, f"{topic_prefix}prod.", partitions=PARTITIONS)
    source, target = f"{topic_prefix}src", f"{topic_prefix}sandbox.touchpoints"
    base = await _source(kafka_bootstrap, source)
    await create_topics(kafka_bootstrap, [target], 1)  # one partition: its offsets show the order sent
    since, until = _iso(base + 2 * 60_000), _iso(base + 6 * 60_000 + 30_000)
    # Four minutes of recorded time at 240x: about a second. A logical --to goes under the sandbox prefix.
    done = run_cli(
        "replay", f"kafka:{source}", "--to", "touchpoints", "--prefix", f"{topic_prefix}sandbox.",
        "--since", since, "--until", until, "--rewrite-ids", "--speed", "240", "--idle", "60",
        env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    summary = done.stdout.decode()
    assert summary.startswith(f"replayed 5 messages to {target} in ")
    assert "at 240x the original pace, 4m of recorded time" in summary
    assert float(summary.split(" in ")[1].split("s ")[0]) >= 0.95

    rows = _record(env, target, tmp_path / "t.jsonl", "--from-beginning", "--idle", "2")
    # The source's partitions were read one after the other, yet they went out in time order.
    assert [r["timestamp"] for r in rows] == [base + i * 60_000 + 30_000 for i in range(2, 7)]
    ids = [orjson.loads(r["value"])["event_id"] for r in rows]
    assert [i.split("~r")[0] for i in ids] == [f"src-{i}" for i in range(2, 7)]
    assert len({i.split("~r")[1] for i in ids}) == 1  # one suffix for the run
    assert [r["key"] for r in rows] == [f"cust-{i % 4}" for i in range(2, 7)]
    assert all(r["headers"][0] == ["trace", f"t{i}"] for r, i in zip(rows, range(2, 7), strict=True))


async def test_replay_refuses_the_production_namespace(kafka_bootstrap, topic_prefix, tmp_path):
    prod = f"{topic_prefix}prod."
    env = motwatch_env(kafka_bootstrap, prod)
    events = tmp_path / "e.jsonl"
    events.write_bytes(line("page_view", 0, url="https://shop.example/") + b"\n")
    done = run_cli("replay", str(events), "--to", "touchpoints", "--prefix", prod, env=env)
    assert done.returncode == 1
    assert done.stderr.decode().count("\n") == 1 and "--yes-production" in done.stderr.decode()
    done = run_cli(
        "replay", str(events), "--to", "touchpoints", "--prefix", prod, "--yes-production", env=env
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith(f"replayed 1 messages to {prod}touchpoints")
