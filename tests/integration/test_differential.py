"""The worker reports what ``motwatch detect`` reports, whoever produces and whenever it starts.

A matrix against the real broker: producers {``motwatch produce`` (keyed,
Kafka's murmur2 partitioner); confluent-kafka's producer keyed by journey
(librdkafka's CRC32 partitioner); the same unkeyed (sticky partitions)} ×
starts {the worker running before the traffic; started on the full
backlog; killed with SIGKILL mid-backlog and started again} ×
``allowed_lateness_s`` {0, 120}. Each run's moments must be ``detect``'s on
the same file, ids included (after a kill, repeats with the same id and
content are allowed), and its dead letters ``detect``'s too.

The input is a small seeded simulation that has what broke event time
before: guests who start a checkout anonymously and order as customers,
``identify`` joining keys that live on different partitions, events out of
order (within the lateness), a few malformed messages, and two events from
devices with a wrong clock (year 9999, and a day ahead). It is sent in one
burst. The moments topic is read until the worker has committed the whole
input and then nothing came for a while, never until an expected count.

One more run has idle advance on: the input ends with a customer nobody
answers, whose chat only the wall-clock ticks can time out; it must get
what ``detect --flush`` reports. And in one the input topic gains two
partitions while the worker runs.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from motwatch.core.events import Touchpoint
from motwatch.core.moments import iso_ms
from motwatch.core.partitioner import partition_for_key
from motwatch.core.validation import validate_touchpoint
from motwatch.kafka.admin import create_topics
from motwatch.simulation import SimulationConfig, simulate
from tests.clients import crc32_partition, journey_key, produce_with_librdkafka
from tests.workers import (
    WorkerProcess,
    canonical,
    committed_to_the_end,
    end_offsets,
    motwatch_env,
    read_topic,
    read_until_quiet,
    run_cli,
    wait_for,
    wait_until,
)

# Eighteen runs of workers against the broker: in make test's second session, beside the rest.
pytestmark = [pytest.mark.integration, pytest.mark.background]

PARTITIONS = 4
JOURNEYS = 40
# After the worker has committed the whole input: the last timeouts fire on the next ticks.
QUIET_S = 4.0


@dataclass(frozen=True)
class Inputs:
    """One input file and what ``detect`` makes of it."""

    path: Path
    lines: list[bytes]
    moments: list[dict[str, Any]]
    dead_letters: Counter[tuple[str, str]]


def _iso(when: datetime) -> str:
    return iso_ms(round(when.timestamp() * 1000))


def _wrong_clocks(lines: list[bytes]) -> list[bytes]:
    """A page view from year 9999 and one a day ahead of today, among the first events."""
    first = orjson.loads(lines[0])
    out = []
    for n, at in enumerate(("9999-12-31T23:59:59.000Z", _iso(datetime.now(UTC) + timedelta(days=1)))):
        event = {
            "event_id": f"wrong-clock-{n}",
            "occurred_at": at,
            "customer_id": first.get("customer_id") or first["anonymous_id"],
            "channel": "web",
            "type": "page_view",
            "properties": {"url": "https://shop.example/", "http_status": 200, "page_category": "home"},
        }
        out.append(orjson.dumps(event))
    return out


def _make_inputs(directory: Path, lateness_s: float) -> Inputs:
    config = SimulationConfig(
        journeys=JOURNEYS,
        seed=17,
        anonymous_share=0.6,
        guest_share=0.7,
        invalid_share=0.01,
        # Out of order within the lateness; with none, events must come in order.
        disorder_s=lateness_s / 2,
        allowed_lateness_s=lateness_s,
    )
    lines = simulate(config).lines
    lines[5:5] = _wrong_clocks(lines)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"journeys-{lateness_s:g}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    dead = directory / f"dead-{lateness_s:g}.jsonl"
    env = motwatch_env("127.0.0.1:9", "unused.", allowed_lateness_s=lateness_s)
    done = run_cli("detect", str(path), "--dead-letter", str(dead), env=env)
    assert done.returncode == 0, done.stderr.decode()
    moments = [orjson.loads(line) for line in done.stdout.splitlines()]
    letters = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    return Inputs(path, lines, moments, Counter((d["reason"], d["raw"]) for d in letters))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Inputs]:
    directory = tmp_path_factory.mktemp("differential")
    return {lateness: _make_inputs(directory, lateness) for lateness in (0, 120)}


def _events(lines: list[bytes]) -> list[dict[str, Any]]:
    """The valid touchpoints among the lines, as dicts."""
    return [orjson.loads(line) for line in lines if isinstance(validate_touchpoint(line), Touchpoint)]


def test_the_input_has_what_broke_event_time_before(inputs: dict[float, Inputs]) -> None:
    for lateness, given in inputs.items():
        assert len(set(given.lines)) == len(given.lines), "each line once: its place in the file is known"
        events = _events(given.lines)
        joins = [(e["anonymous_id"], e["customer_id"]) for e in events if e["type"] == "identify"]
        apart = [
            (a, c)
            for a, c in joins
            if partition_for_key(a, PARTITIONS) != partition_for_key(c, PARTITIONS)
            and crc32_partition(a, PARTITIONS) != crc32_partition(c, PARTITIONS)
        ]
        assert len(apart) >= 3, "identifies whose two keys live on different partitions"
        anonymous_checkouts = {e.get("anonymous_id") for e in events if e["type"] == "checkout_started"}
        guests = [a for a, _ in joins if a in anonymous_checkouts]
        assert len(guests) >= 3, "guests who start a checkout anonymously and order as customers"
        kinds = Counter(m["kind"] for m in given.moments)
        assert len(kinds) >= 7, kinds
        reasons = Counter(reason for reason, _ in given.dead_letters.elements())
        assert reasons["future_timestamp"] == 2 and len(reasons) >= 3, reasons
        times = [e["occurred_at"] for e in events if not e["event_id"].startswith("wrong-clock")]
        disorder = sum(later < earlier for earlier, later in itertools.pairwise(times))
        assert (disorder > 0) == (lateness > 0), disorder


async def _produce(producer: str, bootstrap: str, topic: str, given: Inputs, env: dict[str, str]) -> None:
    if producer == "motwatch":
        done = await asyncio.to_thread(run_cli, "produce", str(given.path), "--topic", topic, env=env)
        assert done.returncode == 0, done.stderr.decode()
    else:
        keyed = producer == "librdkafka-keyed"
        await asyncio.to_thread(produce_with_librdkafka, bootstrap, topic, given.lines, keyed=keyed)
    await _assert_in_file_order(bootstrap, topic, given.lines)


async def _assert_in_file_order(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    """Each partition holds its records in the file's order: what ``detect`` reads is what the
    worker reads, partition by partition (else events out of order beyond the lateness come late)."""
    place = {line: n for n, line in enumerate(lines)}
    records = await read_topic(bootstrap, topic, lambda got: len(got) >= len(lines))
    assert len(records) == len(lines)
    for partition in {r.partition for r in records}:
        held = [place[r.value] for r in sorted(records, key=lambda r: r.offset) if r.partition == partition]
        assert held == sorted(held), f"{topic}[{partition}] is out of the file's order"


async def _kill_mid_backlog(worker: WorkerProcess, bootstrap: str, changelog: str) -> None:
    """SIGKILL once the worker has written journeys (it has its partitions and is at work)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()

    async def wrote_a_journey() -> bool:
        assert worker.alive(), worker.log()[-3000:]
        return sum((await end_offsets(consumer, changelog)).values()) > 0

    try:
        await wait_for(wrote_a_journey, 60, "the worker to write a journey")
    finally:
        await consumer.stop()
    assert worker.proc is not None
    worker.proc.kill()
    worker.proc.wait(10)


async def _run(
    bootstrap: str,
    prefix: str,
    tmp_path: Path,
    given: Inputs,
    producer: str,
    start: str,
    quiet_s: float = QUIET_S,
    **settings: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Produce and run the worker as the cell says; the moments and dead letters it wrote."""
    env = motwatch_env(bootstrap, prefix, partitions=PARTITIONS, **settings)
    touchpoints = f"{prefix}touchpoints"
    if start == "before":
        worker = WorkerProcess(env, tmp_path / "w1").start()
        await _produce(producer, bootstrap, touchpoints, given, env)
    else:
        await create_topics(bootstrap, [touchpoints], PARTITIONS, 1)
        await _produce(producer, bootstrap, touchpoints, given, env)
        worker = WorkerProcess(env, tmp_path / "w1").start()
        if start == "killed":
            await _kill_mid_backlog(worker, bootstrap, f"{prefix}motwatch-journeys-changelog")
            worker = WorkerProcess(env, tmp_path / "w2").start()
    try:
        async with committed_to_the_end(bootstrap, f"{prefix}motwatch", touchpoints) as done:
            moments = await read_until_quiet(bootstrap, f"{prefix}moments", quiet_s=quiet_s, ready=done)
        letters = await read_until_quiet(bootstrap, f"{prefix}deadletter", quiet_s=0.5)
        assert worker.alive(), worker.log()[-3000:]
    finally:
        worker.stop()
    return [orjson.loads(r.value) for r in moments], [orjson.loads(r.value) for r in letters]


def _same_moments(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Equal whole, ids included; on failure, says which are extra and which are missing."""
    if canonical(got) == canonical(expected):
        return
    ids = {m["moment_id"] for m in expected}
    mine = {m["moment_id"] for m in got}

    def brief(m: dict[str, Any]) -> str:
        return f"{m['kind']} {m['status']} {m['journey_key']} at {m['occurred_at']} {m['evidence']}"

    extra = [brief(m) for m in got if m["moment_id"] not in ids]
    missing = [brief(m) for m in expected if m["moment_id"] not in mine]
    raise AssertionError(f"extra (not from detect): {extra}\nmissing (detect's): {missing}")


def _distinct(moments: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Moments by id, each repeat checked to be the same record; and how many repeats."""
    first: dict[str, dict[str, Any]] = {}
    for moment in moments:
        seen = first.setdefault(moment["moment_id"], moment)
        assert seen == moment, f"two different moments with one id: {seen} / {moment}"
    return list(first.values()), len(moments) - len(first)


@pytest.mark.parametrize("lateness", [0, 120])
@pytest.mark.parametrize("start", ["before", "backlog", "killed"])
@pytest.mark.parametrize("producer", ["motwatch", "librdkafka-keyed", "unkeyed"])
async def test_the_worker_reports_what_detect_reports(
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    inputs: dict[float, Inputs],
    producer: str,
    start: str,
    lateness: float,
) -> None:
    given = inputs[lateness]
    got, letters = await _run(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        given,
        producer,
        start,
        allowed_lateness_s=lateness,
        idle_advance_s=36000,
        # The killed worker's partitions go to the new one once its session has timed out.
        session_timeout_s=8,
    )
    distinct, repeats = _distinct(got)
    _same_moments(distinct, given.moments)
    if start != "killed":
        assert repeats == 0
    rejected = Counter((d["reason"], d["raw"]) for d in letters)
    assert set(rejected) == set(given.dead_letters)
    if start != "killed":
        assert rejected == given.dead_letters


async def test_wall_clock_ticks_time_out_a_silent_customer(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Idle advance on: after the burst, nothing comes; the ticks move event time on and fire
    the chat nobody answered, as ``detect --flush`` does at the end of the file."""
    lines = simulate(SimulationConfig(journeys=15, seed=23, allowed_lateness_s=0, tail_s=3600)).lines
    last = max(e["occurred_at"] for e in _events(lines))
    at = datetime.fromisoformat(last) + timedelta(seconds=1)
    silent = {
        "event_id": "silent-chat",
        "occurred_at": _iso(at),
        "customer_id": "cust-silent",
        "channel": "chat",
        "type": "chat_started",
        "properties": {"chat_id": "chat-silent"},
    }
    lines.append(orjson.dumps(silent))
    path = tmp_path / "journeys.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    settings = {
        "allowed_lateness_s": 0,
        "idle_advance_s": 2,
        # A short SLA, so that a few seconds of wall clock time the chat out.
        "kinds__chat_unanswered__sla_s": 4,
    }
    env = motwatch_env(kafka_bootstrap, topic_prefix, partitions=PARTITIONS, **settings)
    plain, flushed = (run_cli("detect", str(path), *extra, env=env) for extra in ((), ("--flush",)))
    assert plain.returncode == flushed.returncode == 0
    expected = [orjson.loads(line) for line in flushed.stdout.splitlines()]
    without = [orjson.loads(line) for line in plain.stdout.splitlines()]
    by_the_clock = set(canonical(expected)) - set(canonical(without))
    assert [(m["kind"], m["journey_key"]) for m in map(orjson.loads, by_the_clock)] == [
        ("chat_unanswered", "cust-silent")
    ]
    given = Inputs(path, lines, expected, Counter())
    # Idle for 2 s, then a second of event time a second: the 4 s SLA passes within ~8 s.
    got, _ = await _run(
        kafka_bootstrap, topic_prefix, tmp_path, given, "librdkafka-keyed", "backlog", quiet_s=12, **settings
    )
    distinct, repeats = _distinct(got)
    _same_moments(distinct, expected)
    assert repeats == 0


async def test_partitions_added_to_the_input_topic_are_waited_for_and_read(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The input topic grows from 4 to 6 partitions while the worker runs: it finds the new ones,
    waits for them, re-keys every touchpoint from then on, and still reports what detect does."""
    lines = simulate(SimulationConfig(journeys=JOURNEYS, seed=29, anonymous_share=0.6, guest_share=0.7)).lines
    path = tmp_path / "journeys.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    env = motwatch_env(
        kafka_bootstrap,
        topic_prefix,
        partitions=PARTITIONS,
        allowed_lateness_s=0,
        idle_advance_s=36000,
        metadata_refresh_s=1,
    )
    expected = [orjson.loads(line) for line in run_cli("detect", str(path), env=env).stdout.splitlines()]
    touchpoints = f"{topic_prefix}touchpoints"
    half = len(lines) // 2
    with WorkerProcess(env, tmp_path / "w") as worker:
        first = lines[:half]
        await asyncio.to_thread(produce_with_librdkafka, kafka_bootstrap, touchpoints, first, keyed=True)
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_partitions({touchpoints: NewPartitions(total_count=PARTITIONS + 2)})
        finally:
            await admin.close()
        found = f"{touchpoints} now has {PARTITIONS + 2} partitions"
        await asyncio.to_thread(wait_until, lambda: found in worker.log(), 60, "the worker to find them")
        assert "from now on every touchpoint is re-keyed" in worker.log()
        second = lines[half:]
        await asyncio.to_thread(produce_with_librdkafka, kafka_bootstrap, touchpoints, second, keyed=True)
        on_new = [k for k in map(journey_key, second) if k and crc32_partition(k.decode(), 6) >= PARTITIONS]
        assert on_new, "the second half reaches the new partitions"
        async with committed_to_the_end(kafka_bootstrap, f"{topic_prefix}motwatch", touchpoints) as done:
            records = await read_until_quiet(
                kafka_bootstrap, f"{topic_prefix}moments", quiet_s=QUIET_S, ready=done
            )
    distinct, repeats = _distinct([orjson.loads(r.value) for r in records])
    _same_moments(distinct, expected)
    assert repeats == 0
