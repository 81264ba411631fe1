"""A vendor's input topic read by the worker: binary-mode CloudEvents, produced by librdkafka.

A service that emits CloudEvents to Kafka (attributes in ``ce_`` headers, the
data as the body) writes a seeded simulation's touchpoints, with
confluent-kafka's producer, before any worker runs. A worker with
``input_format = "cloudevents"`` then starts on that backlog. What it
reports must be what ``motwatch detect`` reports, under the same setting,
for the records in the order they were produced (as ``record --with-meta``
writes them, headers kept), ids included; and the same failures, for the
same journeys, as ``detect`` finds in the touchpoints as motwatch's own
JSON: the conversion loses nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from types import SimpleNamespace

import orjson
import pytest

from motwatch.kafka.admin import create_topics
from motwatch.kafka.recording import meta_line
from motwatch.simulation import SimulationConfig, simulate
from tests.adapters.cloudevents_binary import as_cloudevent
from tests.clients import journey_key, produce_with_librdkafka
from tests.workers import (
    WorkerProcess,
    canonical,
    committed_to_the_end,
    detect_moments,
    motwatch_env,
    read_until_quiet,
)

pytestmark = pytest.mark.integration

PARTITIONS = 4
SETTINGS = {"partitions": PARTITIONS, "idle_advance_s": 36000}


def _failures(moments: list[dict]) -> Counter:
    return Counter((m["kind"], m["status"], m["journey_key"]) for m in moments)


async def test_a_worker_reads_binary_cloudevents_as_detect_does(kafka_bootstrap, topic_prefix, tmp_path):
    lines = simulate(SimulationConfig(journeys=120, seed=31)).lines
    native = tmp_path / "native.jsonl"
    native.write_bytes(b"\n".join(lines) + b"\n")
    events = [orjson.loads(line) for line in lines]
    sent = [as_cloudevent(event) for event in events if isinstance(event, dict) and "event_id" in event]
    env = motwatch_env(kafka_bootstrap, topic_prefix, input_format="cloudevents", **SETTINGS)
    touchpoints = f"{topic_prefix}touchpoints"

    await create_topics(kafka_bootstrap, [touchpoints], PARTITIONS, 1)
    bodies = [body for _, body in sent]
    keys = [journey_key(line) for line in lines if isinstance(orjson.loads(line), dict)]
    produce_with_librdkafka(
        kafka_bootstrap,
        touchpoints,
        bodies,
        keyed=False,
        key_of=lambda i, _body: keys[i],
        headers=[headers for headers, _ in sent],
    )
    # What detect reads: the same records in the order they were produced, headers kept.
    recording = tmp_path / "sent.jsonl"
    now_ms = round(time.time() * 1000)
    recording.write_bytes(
        b"".join(
            meta_line(
                SimpleNamespace(
                    topic=touchpoints,
                    key=keys[i],
                    value=body,
                    partition=0,
                    offset=i,
                    timestamp=now_ms,
                    headers=headers,
                )
            )
            for i, (headers, body) in enumerate(sent)
        )
    )
    expected = detect_moments(recording, env)
    assert len(expected) > 20

    with WorkerProcess(env, tmp_path / "w") as worker:
        async with committed_to_the_end(kafka_bootstrap, f"{topic_prefix}motwatch", touchpoints) as caught_up:
            records = await read_until_quiet(
                kafka_bootstrap, f"{topic_prefix}moments", quiet_s=4.0, ready=caught_up
            )
        letters = await read_until_quiet(kafka_bootstrap, f"{topic_prefix}deadletter", quiet_s=0.5)
        assert worker.alive(), worker.log()[-3000:]

    got = [orjson.loads(r.value) for r in records]
    assert canonical(list({m["moment_id"]: m for m in got}.values())) == canonical(expected)
    assert not letters, [orjson.loads(r.value)["reason"] for r in letters[:5]]
    # The same failures of the same journeys as the touchpoints in motwatch's own format give.
    native_env = motwatch_env(kafka_bootstrap, topic_prefix, **SETTINGS)
    assert _failures(expected) == _failures(detect_moments(native, native_env))
