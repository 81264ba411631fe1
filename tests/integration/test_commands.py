"""``simulate --to``, ``produce --topic`` and ``record --max`` as a user runs them, against the session's
real broker: each command in a subprocess, what it put on a topic read back with a plain consumer.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from motwatch.kafka.admin import create_topics
from motwatch.kafka.writer import topic_writer
from tests.clients import journey_key
from tests.journeys import line
from tests.workers import motwatch_env, read_topic, run_cli

pytestmark = pytest.mark.integration

PARTITIONS = 3


async def _all_of(bootstrap: str, topic: str, expected: int) -> list[Any]:
    """The topic's records from the start, once ``expected`` are there (and any more read with them)."""
    return await read_topic(bootstrap, topic, until=lambda records: len(records) >= expected, timeout=60)


def _pairs(records: list[Any]) -> list[tuple[bytes | None, bytes]]:
    return sorted(((r.key, r.value) for r in records), key=repr)


def _file_pairs(lines: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    """Each line with the key a producer keys it by: its journey key when it is a valid touchpoint."""
    return sorted(((journey_key(raw), raw) for raw in lines), key=repr)


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_simulate_to_puts_the_file_on_the_topic_keyed_by_journey(
    kafka_bootstrap, topic_prefix, tmp_path
):
    env = motwatch_env(kafka_bootstrap, f"{topic_prefix}prod.", partitions=PARTITIONS)
    out = tmp_path / "run.jsonl"
    target = f"{topic_prefix}sandbox.touchpoints"  # a logical --to goes under the sandbox --prefix
    done = run_cli(
        "simulate", "--out", str(out), "--journeys", "12", "--seed", "5", "--tail", "1h",
        "--invalid-share", "0.05", "--to", "touchpoints", "--prefix", f"{topic_prefix}sandbox.",
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    lines = [raw for raw in out.read_bytes().splitlines() if raw.strip()]
    assert (tmp_path / "run.truth.jsonl").read_bytes(), "the ground truth is written beside the events"
    assert f"replayed {len(lines)} messages to {target} in " in done.stderr.decode()

    records = await _all_of(kafka_bootstrap, target, len(lines))
    assert len(records) == len(lines)
    assert _pairs(records) == _file_pairs(lines)
    keyed = [r for r in records if r.key is not None]
    assert 0 < len(keyed) < len(records), "valid events and malformed lines both"
    for record in keyed:  # the journey key, and the event's own time (it lies in the past)
        event = orjson.loads(record.value)
        assert record.key.decode() == (event.get("customer_id") or event["anonymous_id"])
        assert record.timestamp == round(datetime.fromisoformat(event["occurred_at"]).timestamp() * 1000)
    # A journey's events share a partition, in the file's order.
    on_topic: dict[bytes, list[tuple[int, int, bytes]]] = defaultdict(list)
    for record in keyed:
        on_topic[record.key].append((record.partition, record.offset, record.value))
    for key, placed in on_topic.items():
        assert len({partition for partition, _, _ in placed}) == 1, key
        assert [value for _, _, value in sorted(placed)] == [raw for raw in lines if journey_key(raw) == key]


async def test_produce_topic_sends_to_that_topic_and_not_the_default(kafka_bootstrap, topic_prefix, tmp_path):
    prefix = f"{topic_prefix}prod."
    env = motwatch_env(kafka_bootstrap, prefix, partitions=PARTITIONS)
    lines = [line("page_view", i, key=f"cust-{i % 3}", url=f"https://shop.example/{i}") for i in range(6)]
    lines += [b'{"event_id": "cut", ', line("search", 9, key=None, anon="anon-1", query="lamp")]
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")

    custom = f"{topic_prefix}elsewhere"
    done = run_cli("produce", str(source), "--topic", custom, env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode() == f"sent {len(lines)} messages to {custom}\n"
    assert _pairs(await _all_of(kafka_bootstrap, custom, len(lines))) == _file_pairs(lines)

    # A logical name gets the configured prefix.
    done = run_cli("produce", str(source), "--topic", "deadletter", env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode() == f"sent {len(lines)} messages to {prefix}deadletter\n"
    assert _pairs(await _all_of(kafka_bootstrap, f"{prefix}deadletter", len(lines))) == _file_pairs(lines)

    mine = {name for name in await _topics(kafka_bootstrap) if name.startswith(topic_prefix)}
    assert mine == {custom, f"{prefix}deadletter"}, "nothing went to the default touchpoints topic"


async def test_record_max_stops_after_exactly_n_messages(kafka_bootstrap, topic_prefix, tmp_path):
    env = motwatch_env(kafka_bootstrap, f"{topic_prefix}prod.")
    topic = f"{topic_prefix}ten"
    await create_topics(kafka_bootstrap, [topic], 1)
    values = [f'{{"n": {i}}}'.encode() for i in range(10)]
    async with topic_writer(kafka_bootstrap, topic) as writer:
        for value in values:
            await writer.send(value, None, None, None)

    out = tmp_path / "four.jsonl"
    # Without --max it would wait ten minutes for a quiet topic; the subprocess has two.
    done = run_cli(
        "record", topic, "--out", str(out), "--from-beginning", "--max", "4", "--idle", "600", "--with-meta",
        env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr.decode() == f"recorded 4 messages from {topic}\n"
    rows = [orjson.loads(raw) for raw in out.read_bytes().splitlines()]
    assert [(row["offset"], row["value"].encode()) for row in rows] == list(enumerate(values[:4]))

    # The values alone, and a --max beyond what the topic holds ends at --idle instead.
    everything = tmp_path / "all.jsonl"
    done = run_cli(
        "record", topic, "--out", str(everything), "--from-beginning", "--max", "50", "--idle", "2", env=env
    )
    assert done.returncode == 0, done.stderr.decode()
    assert everything.read_bytes().splitlines() == values
