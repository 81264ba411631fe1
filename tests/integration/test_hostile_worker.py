"""Hostile messages through a real broker and a real worker, mixed with simulated journeys.

500 messages drawn from ``tests/hostile.py`` (the same every run; two of
them near a megabyte, whose dead letters whole would be larger than Kafka
takes) go in through confluent-kafka's producer, keyed by journey, by
arbitrary bytes or not at all, among valid touchpoints. The worker must stay
up and healthy, commit the input to its end, dead-letter exactly the
messages the in-process ingest path rejects (reason for reason, each
payload kept), write nothing twice for lack of room, and report the moments
``motwatch detect`` reports for the same input.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from prometheus_client.parser import text_string_to_metric_families

from motwatch.core.clock import PartitionClock
from motwatch.core.dispatch import Inbound, JourneyDispatch
from motwatch.core.engine import JourneyEngine
from motwatch.core.validation import journey_key_of
from motwatch.settings import Settings
from motwatch.simulation import SimulationConfig, simulate
from tests.clients import produce_with_librdkafka
from tests.hostile import FAMILIES
from tests.workers import (
    WorkerProcess,
    canonical,
    committed_to_the_end,
    detect_moments,
    motwatch_env,
    read_until_quiet,
)

pytestmark = pytest.mark.integration

HOSTILE = 500
# Idle advance far beyond the test: only the stream itself moves event time.
SETTINGS = {"partitions": 4, "idle_advance_s": 36000}


def _hostile_messages() -> list[bytes]:
    """HOSTILE messages from the families of tests/hostile.py, drawn the same way every run; each
    message's journeys and event ids its own, so that no two meet in a journey."""
    families: list[list[bytes]] = []

    @settings(
        max_examples=300,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(FAMILIES)
    def collect(family: list[bytes]) -> None:
        families.append(family)

    collect()
    drawn: list[bytes] = [
        # Rejected, their dead letters whole would be 5 MB and 1.8 MB: more than Kafka takes.
        b"\x01" * 900_000,
        b'{"event_id":"' + b'\\"' * 450_000 + b'"}',
    ]
    for family in families:
        drawn += family[:: max(1, len(family) // 4)][:4]
    assert len(drawn) >= HOSTILE, len(drawn)
    out = []
    for i, raw in enumerate(drawn[:HOSTILE]):
        mine = b"%d" % i
        out.append(
            raw.replace(b'"ex-', b'"h' + mine + b"-")
            .replace(b"cust-42", b"hc-" + mine)
            .replace(b"anon-7f3", b"ha-" + mine)
        )
    return out


def _mixed(hostile: list[bytes], valid: list[bytes]) -> list[bytes]:
    """The valid lines in their order, the hostile ones spread among them (a valid one first)."""
    rng = random.Random(7)
    slots = sorted(rng.randrange(1, len(valid) + 1) for _ in hostile)
    lines, at = [], 0
    for slot, raw in zip(slots, hostile, strict=True):
        lines += valid[at:slot]
        lines.append(raw)
        at = slot
    return lines + valid[at:]


def _in_process(lines: list[bytes], settings_: Settings) -> tuple[list[bytes], list[bytes], Counter[str]]:
    """What the ingest path does with each line in this process, arriving now: the lines it
    accepts, those it rejects, and the reasons it rejects them for."""
    clock = PartitionClock(lateness_ms=120_000, self_timed=False, idle_advance_ms=36_000_000)
    engine = JourneyEngine(settings_, clock=clock)
    dispatch = JourneyDispatch(settings_, lambda _: engine, partitions=1, direct=True)
    now_ms = round(datetime.now(UTC).timestamp() * 1000)
    accepted: list[bytes] = []
    rejected: list[bytes] = []
    reasons: Counter[str] = Counter()
    for offset, raw in enumerate(lines):
        outcome = dispatch.touchpoint(Inbound(raw, 0, timestamp_ms=now_ms, topic="in", offset=offset))
        if outcome.rejection is not None:
            reasons[outcome.rejection.reason] += 1
            rejected.append(raw)
        else:
            accepted.append(raw)
    return accepted, rejected, reasons


def _mixed_key(i: int, raw: bytes) -> bytes | None:
    """Every third record keyed by journey, every third by bytes of its own (not always UTF-8),
    the rest not keyed."""
    journey = journey_key_of(raw)
    return (journey.encode() if journey else None, raw[-6:] + b"\xff", None)[i % 3]


def _produce(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    """confluent-kafka's producer, its default partitioner, keys mixed (``_mixed_key``)."""
    produce_with_librdkafka(bootstrap, topic, lines, keyed=False, key_of=_mixed_key)


def _raw_of(letter: dict) -> bytes:
    return base64.b64decode(letter["raw"]) if letter["raw_encoding"] == "base64" else letter["raw"].encode()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _counters(text: str, name: str, label: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{name}_total":
                counts[sample.labels.get(label, "")] += int(sample.value)
    return counts


async def test_the_worker_answers_every_hostile_message_as_the_ingest_path_does(
    kafka_bootstrap, topic_prefix, tmp_path
):
    start = datetime(2026, 3, 3, tzinfo=UTC)  # after every time the hostile messages carry
    valid = simulate(SimulationConfig(journeys=40, seed=4, start=start)).lines
    hostile = _hostile_messages()
    lines = _mixed(hostile, valid)
    settings_ = Settings(topic_prefix=topic_prefix, **SETTINGS)
    accepted, rejected, reasons = _in_process(lines, settings_)
    assert sum(reasons.values()) > HOSTILE // 2 and len(accepted) > len(valid), (reasons, len(accepted))
    assert {"too_large", "too_deep", "string_too_long", "invalid_json", "bad_field"} <= set(reasons)

    # detect reads lines: what was accepted, its line breaks (JSON whitespace only) made spaces.
    path = tmp_path / "accepted.jsonl"
    path.write_bytes(b"\n".join(raw.replace(b"\r", b" ").replace(b"\n", b" ") for raw in accepted) + b"\n")
    env = motwatch_env(kafka_bootstrap, topic_prefix, **SETTINGS)
    expected = detect_moments(path, env)
    assert expected, "the simulated journeys should report moments"

    with WorkerProcess(env, tmp_path / "w") as worker:
        await asyncio.to_thread(_produce, kafka_bootstrap, settings_.touchpoints_topic, lines)
        group = settings_.worker_app_id
        async with committed_to_the_end(kafka_bootstrap, group, settings_.touchpoints_topic) as done:
            moments = await read_until_quiet(
                kafka_bootstrap, settings_.moments_topic, quiet_s=4.0, ready=done
            )
        letters = await read_until_quiet(kafka_bootstrap, settings_.deadletter_topic, quiet_s=1.0)
        base = f"http://127.0.0.1:{env['MOTWATCH_WEB_PORT']}"
        health = await asyncio.to_thread(_get, f"{base}/health")
        status, metrics = await asyncio.to_thread(_get, f"{base}/metrics")
        assert worker.alive(), worker.log()[-3000:]

    assert health[0] == 200 and json.loads(health[1]) == {"status": "ok"}, health
    dead = [orjson.loads(r.value) for r in letters]
    assert Counter(d["reason"] for d in dead) == reasons
    assert all(d["error"] for d in dead)
    # Each payload kept: whole, or as much as the limit allows when it was too large.
    limit = settings_.limits.max_message_bytes
    kept = Counter(_raw_of(d) for d in dead)
    assert kept == Counter(raw[:limit] for raw in rejected)
    assert status == 200
    text = metrics.decode()
    assert _counters(text, "motwatch_events_rejected", "reason") == reasons
    # Every dead letter fitted in a Kafka record the first time.
    assert sum(_counters(text, "motwatch_write_failures", "stream").values()) == 0
    assert canonical([orjson.loads(r.value) for r in moments]) == canonical(expected)
