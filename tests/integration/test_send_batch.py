"""``Motwatch.send_batch`` through the real broker: every record lands, in order, and the
offsets it reports are the real offsets of each batch's last record (a RocksDB
store recovers its changelog from the last one)."""

from __future__ import annotations

import asyncio

import pytest

from motwatch.kafka.admin import create_topics
from motwatch.settings import Settings
from motwatch.streams.app import create_app
from tests.workers import read_topic

pytestmark = pytest.mark.integration


async def test_send_batch_writes_every_record_in_order_and_reports_each_batch_end(
    kafka_bootstrap: str, topic_prefix: str, tmp_path
) -> None:
    settings = Settings(broker=kafka_bootstrap, topic_prefix=topic_prefix, data_dir=str(tmp_path))
    topic = f"{topic_prefix}changelog-like"
    await create_topics(kafka_bootstrap, [topic], partitions=2)
    # ~60 KB of records: more than one produce batch (16 KB each by default).
    records = [(f"journey-{i}".encode(), (b"%06d" % i) * 40) for i in range(250)]
    records.append((b"journey-gone", None))  # a tombstone, as a deleted journey writes
    mw = create_app(settings)
    producer = mw.app.producer
    await producer.start()
    written: list[int] = []
    try:
        await mw.send_batch(topic, 1, records, written.append)
        await asyncio.wait_for(producer.flush(), 30)
    finally:
        await producer.stop()

    read = await read_topic(kafka_bootstrap, topic, until=lambda got: len(got) >= len(records))
    assert [(r.key, r.value) for r in read] == records
    assert {r.partition for r in read} == {1}
    assert len(written) > 1, "expected the records to need several batches"
    assert written == sorted(set(written))
    # The last offset of all, not the base offset of the last batch.
    assert written[-1] == read[-1].offset == len(records) - 1
