"""aiokafka helpers against the session's real broker: bytes in, the same bytes out."""

from __future__ import annotations

import asyncio
import base64
import io
import socket
import time
from datetime import datetime

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from motwatch.commands.record import record
from motwatch.kafka.admin import create_topics
from motwatch.kafka.connection import BrokerUnreachable, TransportError, wait_for_broker
from motwatch.kafka.writer import produce_lines

pytestmark = pytest.mark.integration


def _journey_key(value: bytes) -> bytes | None:
    try:
        return orjson.loads(value)["journey_id"].encode()
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None


async def _record_all(bootstrap: str, topic: str, n: int, *, with_meta: bool = False) -> bytes:
    """Exactly ``n`` messages from the start (max_messages avoids waiting for idleness)."""
    out = io.BytesIO()
    count = await asyncio.wait_for(
        record(
            bootstrap,
            topic,
            out,
            from_beginning=True,
            idle_s=10,
            max_messages=n,
            with_meta=with_meta,
        ),
        timeout=20,
    )
    assert count == n
    return out.getvalue()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_lines_round_trip_byte_for_byte(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = topic_prefix + "raw"
    await create_topics(kafka_bootstrap, [topic], partitions=1)
    lines = [
        b'{"journey_id": "j1", "type": "page_view"}\n',
        b"\xff\xfe\x00 not utf-8 \x80\n",
        "Đèn đẹp 🛵\n".encode(),
        b"\n",  # empty: skipped
        b"{not json\r\n",  # CRLF terminator dropped, the rest kept
        b"  padded  \n",
        b"last line without newline",
    ]
    sent = await produce_lines(kafka_bootstrap, topic, lines, _journey_key)
    assert sent == 6
    got = await _record_all(kafka_bootstrap, topic, 6)
    assert got == (
        b'{"journey_id": "j1", "type": "page_view"}\n'
        b"\xff\xfe\x00 not utf-8 \x80\n" + "Đèn đẹp 🛵\n".encode() + b"{not json\n"
        b"  padded  \n"
        b"last line without newline\n"
    )


async def test_record_with_meta(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = topic_prefix + "meta"
    await create_topics(kafka_bootstrap, [topic], partitions=1)
    before_ms = int(time.time() * 1000)
    await produce_lines(
        kafka_bootstrap,
        topic,
        [b'{"journey_id": "j9"}', b"\xff\xfe", "Đèn đẹp".encode()],
        _journey_key,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, b"with headers", key=b"\xfe", headers=[("h", b"v"), ("bin", b"\xff")]
        )
    finally:
        await producer.stop()
    after_ms = int(time.time() * 1000)

    rows = [
        orjson.loads(line)
        for line in (await _record_all(kafka_bootstrap, topic, 4, with_meta=True)).splitlines()
    ]

    assert [row["offset"] for row in rows] == [0, 1, 2, 3]
    assert {row["partition"] for row in rows} == {0}
    assert {row["topic"] for row in rows} == {topic}
    assert rows[0]["key"] == "j9" and rows[0]["value"] == '{"journey_id": "j9"}'
    assert rows[1]["key"] is None and rows[1]["value"] is None
    assert base64.b64decode(rows[1]["value_b64"]) == b"\xff\xfe"
    assert rows[2]["value"] == "Đèn đẹp" and "value_b64" not in rows[2]
    assert rows[3]["key"] is None and base64.b64decode(rows[3]["key_b64"]) == b"\xfe"
    assert rows[3]["headers"] == [["h", "v"], ["bin", {"b64": base64.b64encode(b"\xff").decode()}]]
    assert rows[0]["headers"] == []
    for row in rows:
        assert before_ms - 5000 <= row["timestamp"] <= after_ms + 5000
        stamp = datetime.fromisoformat(row["timestamp_iso"].replace("Z", "+00:00"))
        assert int(stamp.timestamp() * 1000) == row["timestamp"]


async def test_same_key_lands_on_same_partition(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = topic_prefix + "keyed"
    await create_topics(kafka_bootstrap, [topic], partitions=4)
    lines = [orjson.dumps({"journey_id": f"j{i % 5}", "n": i}) for i in range(40)]
    assert await produce_lines(kafka_bootstrap, topic, lines, _journey_key) == 40
    rows = [
        orjson.loads(line)
        for line in (await _record_all(kafka_bootstrap, topic, 40, with_meta=True)).splitlines()
    ]
    partition_of: dict[str, set[int]] = {}
    for row in rows:
        partition_of.setdefault(row["key"], set()).add(row["partition"])
    assert set(partition_of) == {f"j{i}" for i in range(5)}
    assert all(len(parts) == 1 for parts in partition_of.values())
    # order within a journey is kept
    numbers = [orjson.loads(row["value"])["n"] for row in rows if row["key"] == "j3"]
    assert numbers == sorted(numbers)


async def test_record_from_end_sees_only_new_messages(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = topic_prefix + "tail"
    await create_topics(kafka_bootstrap, [topic], partitions=2)
    await produce_lines(kafka_bootstrap, topic, [b"old-1", b"old-2"], None)
    out = io.BytesIO()
    ready = asyncio.Event()
    task = asyncio.create_task(
        record(
            kafka_bootstrap,
            topic,
            out,
            from_beginning=False,
            idle_s=10,
            max_messages=2,
            with_meta=False,
            ready=ready,
        )
    )
    await asyncio.wait_for(ready.wait(), 10)
    await produce_lines(kafka_bootstrap, topic, [b"new-1", b"new-2"], None)
    assert await asyncio.wait_for(task, 20) == 2
    assert sorted(out.getvalue().splitlines()) == [b"new-1", b"new-2"]


async def test_record_stops_when_idle(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = topic_prefix + "quiet"
    await create_topics(kafka_bootstrap, [topic], partitions=1)
    await produce_lines(kafka_bootstrap, topic, [b"only"], None)
    out = io.BytesIO()
    started = time.monotonic()
    count = await asyncio.wait_for(
        record(
            kafka_bootstrap,
            topic,
            out,
            from_beginning=True,
            idle_s=0.5,
            max_messages=None,
            with_meta=False,
        ),
        timeout=15,
    )
    elapsed = time.monotonic() - started
    assert (count, out.getvalue()) == (1, b"only\n")
    assert 0.5 <= elapsed < 10


async def test_record_stops_at_max_messages(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = topic_prefix + "many"
    await create_topics(kafka_bootstrap, [topic], partitions=1)
    await produce_lines(kafka_bootstrap, topic, [f"m{i}".encode() for i in range(10)], None)
    out = io.BytesIO()
    started = time.monotonic()
    count = await asyncio.wait_for(
        record(
            kafka_bootstrap,
            topic,
            out,
            from_beginning=True,
            idle_s=60,
            max_messages=3,
            with_meta=False,
        ),
        timeout=20,
    )
    assert count == 3
    assert out.getvalue() == b"m0\nm1\nm2\n"
    assert time.monotonic() - started < 20  # did not wait for the 60 s idle timeout


async def test_record_missing_topic(kafka_bootstrap: str, topic_prefix: str) -> None:
    with pytest.raises(TransportError, match="does not exist"):
        await record(
            kafka_bootstrap,
            topic_prefix + "nope",
            io.BytesIO(),
            from_beginning=True,
            idle_s=1,
            max_messages=None,
            with_meta=False,
        )


async def test_create_topics_is_idempotent(kafka_bootstrap: str, topic_prefix: str) -> None:
    names = [topic_prefix + "a", topic_prefix + "b"]
    created = await create_topics(kafka_bootstrap, names, partitions=3, config={"retention.ms": 3_600_000})
    assert sorted(created) == names
    assert await create_topics(kafka_bootstrap, [*names, names[0]], partitions=3) == []

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics(names)}
        assert [len(described[name]["partitions"]) for name in names] == [3, 3]
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, names[0], {"retention.ms": None})]
        )
        configs = {entry[0]: entry[1] for entry in response.resources[0][4]}
        assert configs["retention.ms"] == "3600000"
    finally:
        await admin.close()


async def test_create_topics_reports_broker_refusal(kafka_bootstrap: str, topic_prefix: str) -> None:
    with pytest.raises(TransportError, match=r"cannot create topic .*replication factor"):
        await create_topics(kafka_bootstrap, [topic_prefix + "r3"], partitions=1, replication=3)


async def test_wait_for_broker_when_up(kafka_bootstrap: str) -> None:
    await wait_for_broker(kafka_bootstrap, timeout=5)


async def test_unreachable_broker_is_one_line() -> None:
    bootstrap = f"127.0.0.1:{_closed_port()}"
    expected = f"cannot reach Kafka at {bootstrap}: connection refused"
    started = time.monotonic()
    with pytest.raises(BrokerUnreachable) as info:
        await wait_for_broker(bootstrap, timeout=0.5)
    assert str(info.value) == expected
    assert time.monotonic() - started < 5
    calls = [
        create_topics(bootstrap, ["x"], partitions=1),
        produce_lines(bootstrap, "x", [b"v"], None),
        record(
            bootstrap,
            "x",
            io.BytesIO(),
            from_beginning=True,
            idle_s=1,
            max_messages=None,
            with_meta=False,
        ),
    ]
    for call in calls:
        with pytest.raises(BrokerUnreachable) as info:
            await asyncio.wait_for(call, 10)
        assert str(info.value) == expected


async def test_port_that_is_not_kafka_is_unreachable() -> None:
    """Something listens but never speaks Kafka (a wrong --broker port, say)."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(BrokerUnreachable, match="port is open but Kafka does not answer"):
            await asyncio.wait_for(wait_for_broker(f"127.0.0.1:{port}", timeout=1), 10)
    finally:
        server.close()
