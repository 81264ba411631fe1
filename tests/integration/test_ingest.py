"""Ingestion through the real broker: valid events reach their journeys, bad ones are dead-lettered.

Lines mixing valid and invalid events are produced round the partitions of
the touchpoints topic, whatever their journey, while ``motwatch worker``
runs. An event read on the partition its journey lives on is applied there;
the re-keyed topic must hold exactly the other valid events, keyed by
journey key (an identify goes to the anonymous journey it joins as well),
and the dead-letter topic exactly the bad ones, each with its reason.
Every valid event's journey reaches the journey table. The dead-letter topic
the worker created keeps its raw payloads for ``deadletter_retention_days``
only. Run at log level info, the worker writes no customer or anonymous id
to its log nor any secret of its settings, and no id or URL becomes a metric
label.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from motwatch.commands.worker import prepare_topics
from motwatch.core.partitioner import partition_for_key
from motwatch.kafka.admin import create_topics
from motwatch.kafka.security import Target, client_options, endpoint_of
from motwatch.settings import Settings, load_settings
from tests.workers import WorkerProcess, motwatch_env, read_topic, run_cli, secured_env, wait_until

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples.jsonl"


def _event(**fields: object) -> bytes:
    base = {
        "event_id": "bad-x",
        "occurred_at": "2026-03-02T15:00:00.000Z",
        "anonymous_id": "anon-bad",
        "channel": "web",
        "type": "page_view",
        "properties": {"url": "https://shop.example/"},
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}, ensure_ascii=False).encode()


BAD_LINES: list[tuple[bytes, str]] = [
    (b'{"event_id": "broken", "occurred_at": ', "invalid_json"),
    (b"\xff\xfe\x00not utf-8 at all \xc3\x28", "invalid_json"),
    (b"[1, 2, 3]", "invalid_json"),
    (_event(event_id=None), "missing_field"),
    (_event(type=None), "missing_field"),
    (_event(anonymous_id=None), "missing_field"),
    (_event(type="identify", properties={}), "missing_field"),
    (_event(type="teleport"), "unknown_type"),
    (_event(channel="carrier_pigeon"), "unknown_channel"),
    (_event(occurred_at="yesterday at noon"), "bad_timestamp"),
    (_event(occurred_at="2026-03-02T15:00:00"), "bad_timestamp"),
    (_event(properties={"url": "https://shop.example/", "http_status": "404"}), "bad_property"),
    (_event(type="review_posted", channel="review", properties={"rating": "five"}), "bad_property"),
    (_event(type="page_view", properties={}), "missing_field"),
]


def _input_file(tmp_path: Path) -> tuple[Path, list[bytes]]:
    valid = [line for line in EXAMPLES.read_bytes().splitlines() if line.strip()]
    lines: list[bytes] = []
    bad = iter(BAD_LINES)
    for i, line in enumerate(valid):
        lines.append(line)
        if i % 2 == 0:
            extra = next(bad, None)
            if extra is not None:
                lines.append(extra[0])
    lines.extend(b for b, _ in bad)
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, valid


def _raw_of(record: dict) -> bytes:
    raw = record["raw"]
    return base64.b64decode(raw) if record["raw_encoding"] == "base64" else raw.encode("utf-8")


def _journey(line: bytes) -> str:
    body = orjson.loads(line)
    return body.get("customer_id") or body["anonymous_id"]


async def _produce_round_the_partitions(
    bootstrap: Target, topic: str, lines: list[bytes], partitions: int
) -> None:
    producer = AIOKafkaProducer(**client_options(bootstrap), acks="all")
    await producer.start()
    try:
        for i, line in enumerate(lines):
            await producer.send_and_wait(topic, line, partition=i % partitions)
    finally:
        await producer.stop()


@pytest.fixture(params=["plaintext", "sasl_ssl"])
async def way_in(request, topic_prefix) -> AsyncIterator[tuple[dict[str, str], Target, str]]:
    """The worker's environment, how the test's producer connects, and where the checks read:
    the session broker in PLAINTEXT, or the secured broker's SCRAM listener, every right granted
    to its user for this test (the checks read on its PLAINTEXT listener)."""
    if request.param == "plaintext":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        yield motwatch_env(bootstrap, topic_prefix), bootstrap, bootstrap
        return
    secure = request.getfixturevalue("secure_kafka_broker")
    env = secured_env(secure, "scram", topic_prefix)
    await secure.grant_all()
    try:
        yield env, endpoint_of(load_settings(None, environ=env)), secure.bootstrap
    finally:
        await secure.revoke_all()


async def test_valid_events_reach_their_journeys_and_bad_ones_are_dead_lettered(
    way_in, topic_prefix, tmp_path
):
    env, producer, kafka_bootstrap = way_in
    settings = Settings(topic_prefix=topic_prefix)
    partitions = settings.partitions
    path, valid = _input_file(tmp_path)
    lines = [line for line in path.read_bytes().splitlines() if line]
    with WorkerProcess(env, tmp_path / "w") as worker:
        await _produce_round_the_partitions(producer, settings.touchpoints_topic, lines, partitions)
        position = {line: i % partitions for i, line in enumerate(lines)}
        away = [
            (key, v)
            for v in valid
            for key in _journeys_of(v)
            if partition_for_key(key, partitions) != position[v]
        ]
        assert away and len(away) < len(valid)

        rekeyed = await read_topic(
            kafka_bootstrap, settings.by_journey_topic, lambda r: _touchpoints(r) >= len(away)
        )
        changelog = f"{settings.worker_app_id}-journeys-changelog"
        journeys = {_journey(v) for v in valid}
        written = await read_topic(
            kafka_bootstrap, changelog, lambda r: {x.key.decode() for x in r} >= journeys
        )
        dead = await read_topic(
            kafka_bootstrap, settings.deadletter_topic, lambda r: len(r) >= len(BAD_LINES)
        )
        assert worker.alive(), worker.log()[-2000:]

        # Exactly the valid events read away from a journey they concern (their own; for an
        # identify, the anonymous journey it joins too), byte for byte, keyed by that journey;
        # nothing forwarded from one journey to another.
        events = [r for r in rekeyed if not _is_control(r)]
        assert not any(_is_forwarded(r) for r in events)
        assert sorted((r.key.decode(), r.value) for r in events) == sorted(away)
        for r in events:
            assert r.timestamp == _ms(orjson.loads(r.value)["occurred_at"])
        # Every journey, whichever way its events came, is in the table.
        assert {x.key.decode() for x in written} >= journeys

        # Exactly the bad lines, untouched, each with the right reason.
        records = [orjson.loads(r.value) for r in dead]
        got = sorted((_raw_of(rec), rec["reason"]) for rec in records)
        assert got == sorted(BAD_LINES)
        for rec in records:
            assert rec["error"] and rec["source"]["topic"] == settings.touchpoints_topic
            assert {"partition", "offset"} <= rec["source"].keys()
        # Kept for the default 7 days only: the raw payloads may hold personal data.
        assert await _retention_ms(kafka_bootstrap, settings.deadletter_topic) == 7 * 86_400_000

        # The worker keeps going: a later valid event, sent by ``motwatch produce`` (keyed by
        # journey, so read where its journey lives), reaches the table without the re-keyed topic.
        later = tmp_path / "later.jsonl"
        later.write_bytes(_event(event_id="after-the-storm", anonymous_id="anon-late") + b"\n")
        assert run_cli("produce", str(later), env=env).returncode == 0
        more = await read_topic(kafka_bootstrap, changelog, lambda r: any(x.key == b"anon-late" for x in r))
        assert any(x.key == b"anon-late" for x in more)
        again = await read_topic(kafka_bootstrap, settings.by_journey_topic, lambda r: len(r) >= len(rekeyed))
        assert not any(x.key == b"anon-late" and not _is_control(x) for x in again)
        assert worker.alive()


def _journeys_of(line: bytes) -> list[str]:
    """The journeys a touchpoint goes to: its own, and for an identify the anonymous one too."""
    body = orjson.loads(line)
    if body["type"] == "identify" and body["anonymous_id"] != body["customer_id"]:
        return [body["customer_id"], body["anonymous_id"]]
    return [_journey(line)]


def _is_control(record) -> bool:
    return any(k == "mw-record" for k, _ in (record.headers or ()))


def _is_forwarded(record) -> bool:
    return any(k == "mw-forwarded" for k, _ in (record.headers or ()))


def _touchpoints(records) -> int:
    return sum(1 for r in records if not _is_control(r) and not _is_forwarded(r))


def _ms(text: str) -> int:
    from datetime import datetime

    return round(datetime.fromisoformat(text).timestamp() * 1000)


async def test_a_touchpoints_topic_partitioned_otherwise_has_every_touchpoint_rekeyed(
    kafka_bootstrap, topic_prefix, tmp_path
):
    """Created beforehand with fewer partitions, the topic is not read where journeys live: all go round."""
    env = motwatch_env(kafka_bootstrap, topic_prefix)
    settings = Settings(topic_prefix=topic_prefix)
    await create_topics(kafka_bootstrap, [settings.touchpoints_topic], 2)
    valid = [line for line in EXAMPLES.read_bytes().splitlines() if line.strip()]
    with WorkerProcess(env, tmp_path / "w") as worker:
        assert f"has 2 partitions, the worker {settings.partitions}" in worker.log()
        await _produce_round_the_partitions(kafka_bootstrap, settings.touchpoints_topic, valid, 2)
        expected = sorted((key, v) for v in valid for key in _journeys_of(v))
        rekeyed = await read_topic(
            kafka_bootstrap, settings.by_journey_topic, lambda r: _touchpoints(r) >= len(expected)
        )
        events = [r for r in rekeyed if not _is_control(r) and not _is_forwarded(r)]
        assert sorted((r.key.decode(), r.value) for r in events) == expected
        journeys = {_journey(v) for v in valid}
        written = await read_topic(
            kafka_bootstrap,
            f"{settings.worker_app_id}-journeys-changelog",
            lambda r: {x.key.decode() for x in r} >= journeys,
        )
        assert {x.key.decode() for x in written} >= journeys
        assert worker.alive(), worker.log()[-2000:]


async def _retention_ms(bootstrap: str, topic: str) -> int:
    """The topic's ``retention.ms``, as the broker describes its configuration."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    entries = {
        entry[0]: entry[1]
        for response in responses
        for resource in response.resources
        if resource[3] == topic
        for entry in resource[4]
    }
    return int(entries["retention.ms"])


async def test_the_deadletter_retention_is_the_configured_one_and_set_only_at_creation(
    kafka_bootstrap, topic_prefix, tmp_path
):
    env = motwatch_env(kafka_bootstrap, topic_prefix, deadletter_retention_days=0.5)
    settings = Settings(broker=kafka_bootstrap, topic_prefix=topic_prefix, deadletter_retention_days=0.5)
    with WorkerProcess(env, tmp_path / "w") as worker:
        assert await _retention_ms(kafka_bootstrap, settings.deadletter_topic) == 43_200_000
        # The other topics keep the broker's own retention.
        assert await _retention_ms(kafka_bootstrap, settings.moments_topic) != 43_200_000
        assert worker.alive()
    # A worker started later with another setting leaves the existing topic as it is.
    await prepare_topics(settings.model_copy(update={"deadletter_retention_days": 3}))
    assert await _retention_ms(kafka_bootstrap, settings.deadletter_topic) == 43_200_000


# Touchpoints of journeys whose ids and URLs a leak would show, beside the examples.
MARKED_LINES = [
    _event(event_id="leak-1", anonymous_id="anon-zq81ka"),
    _event(
        event_id="leak-2",
        anonymous_id="anon-zq81ka",
        customer_id="cust-zq82mb",
        occurred_at="2026-03-02T15:00:01.000Z",
        properties={"url": "https://shop.example/private/zq83nc", "http_status": 404},
    ),
    _event(
        event_id="leak-3",
        anonymous_id=None,
        customer_id="cust-zq84od",
        channel="checkout",
        type="payment_failed",
        occurred_at="2026-03-02T15:00:02.000Z",
        properties={"cart_id": "cart-zq87rg", "reason": "card_declined"},
    ),
    _event(event_id="leak-4", anonymous_id="anon-zq85pe", customer_id="cust-zq85pe", type="teleport"),
]
SECRET = "s3cr3t-zq86qf-never-logged"


def _ids_and_urls(lines: list[bytes]) -> tuple[set[str], set[str]]:
    """Every customer and anonymous id, and every URL, of the lines that parse as JSON objects."""
    ids, urls = set(), set()
    for line in lines:
        try:
            body = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(body, dict):
            continue
        ids |= {body[k] for k in ("customer_id", "anonymous_id") if isinstance(body.get(k), str)}
        props = body.get("properties")
        if isinstance(props, dict) and isinstance(props.get("url"), str):
            urls.add(props["url"])
    return ids, urls


def _samples(url: str) -> list[Sample]:
    """Every sample the worker's /metrics serves."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode("utf-8")
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def _total(samples: list[Sample], name: str) -> float:
    return sum(sample.value for sample in samples if sample.name == name)


async def test_no_id_url_or_secret_reaches_the_info_log_or_the_metric_labels(
    kafka_bootstrap, topic_prefix, tmp_path
):
    """The held-out style mix and a few marked journeys through a worker at log level info, with
    a SASL password in its environment (unused: PLAINTEXT, which validation allows)."""
    env = motwatch_env(kafka_bootstrap, topic_prefix, allowed_lateness_s=0, sasl_password=SECRET)
    settings = Settings(topic_prefix=topic_prefix)
    assert load_settings(environ=env).password() == SECRET  # a setting the worker holds
    path, _ = _input_file(tmp_path)
    lines = [line for line in path.read_bytes().splitlines() if line] + MARKED_LINES
    ids, urls = _ids_and_urls(lines)
    assert {"cust-42", "anon-7f3", "anon-bad", "cust-zq82mb", "anon-zq85pe"} <= ids
    assert "https://shop.example/private/zq83nc" in urls
    metrics = f"http://127.0.0.1:{env['MOTWATCH_WEB_PORT']}/metrics"
    bad = len(BAD_LINES) + 1  # the teleport among the marked lines
    with WorkerProcess(env, tmp_path / "w") as worker:
        await _produce_round_the_partitions(
            kafka_bootstrap, settings.touchpoints_topic, lines, settings.partitions
        )

        def done() -> bool:
            samples = _samples(metrics)
            return (
                _total(samples, "motwatch_events_received_total") == len(lines)
                and _total(samples, "motwatch_events_rejected_total") == bad
                and _total(samples, "motwatch_moments_total") >= 2  # the broken link, the payment
            )

        await asyncio.to_thread(wait_until, done, 120, "every line processed and the moments written")
        labels = {
            value for sample in await asyncio.to_thread(_samples, metrics) for value in sample.labels.values()
        }
        status = await asyncio.to_thread(run_cli, "status", "--url", metrics, "--window", "0", env=env)
        assert worker.alive()
    log = worker.log()

    # The log is an info-level one: a leak at info would be in it.
    assert "[INFO]" in log and "[DEBUG]" not in log and "serving http://127.0.0.1:" in log
    assert SECRET not in log
    assert not {i for i in ids if i in log}, sorted(i for i in ids if i in log)
    # Labels are bounded: channels, kinds, reasons, topics, partitions; never an id or a URL.
    assert {"web", "checkout", "broken_link", "checkout_error", "invalid_json"} <= labels
    assert not labels & (ids | urls), sorted(labels & (ids | urls))
    assert status.returncode == 0, status.stderr.decode()
    assert not {i for i in ids | {SECRET} if i.encode() in status.stdout + status.stderr}
