"""The recording format: what ``record --with-meta`` writes, replay and detect read back unchanged."""

from __future__ import annotations

import orjson
from aiokafka.structs import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st

from motwatch.kafka.recording import Record, is_meta, meta_line, record_of_line, records_of_file
from tests.journeys import line, ms

HEADERS = st.lists(st.tuples(st.text(min_size=1, max_size=20), st.binary(max_size=40)), max_size=4)


def consumed(
    value: bytes | None,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
    *,
    partition: int = 0,
    offset: int = 0,
    timestamp: int = 1_772_409_600_000,
) -> ConsumerRecord:
    """A record as aiokafka hands it to a reader."""
    return ConsumerRecord(
        topic="motwatch.touchpoints",
        partition=partition,
        offset=offset,
        timestamp=timestamp,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=headers or [],
    )


@given(
    value=st.binary(max_size=200),
    key=st.none() | st.binary(max_size=40),
    headers=HEADERS,
    partition=st.integers(0, 63),
    offset=st.integers(0, 2**40),
    timestamp=st.integers(0, 4_102_444_800_000),
)
def test_any_record_reads_back_as_it_was_written(value, key, headers, partition, offset, timestamp) -> None:
    written = meta_line(
        consumed(value, key, headers, partition=partition, offset=offset, timestamp=timestamp)
    )
    assert written.endswith(b"\n") and written.count(b"\n") == 1, "one line per record"
    assert is_meta(orjson.loads(written))
    assert record_of_line(written.rstrip(b"\n")) == Record(
        value=value, key=key, timestamp_ms=timestamp, headers=headers, partition=partition
    )


def test_bytes_that_are_not_utf8_are_written_as_base64_and_text_as_text() -> None:
    written = orjson.loads(
        meta_line(consumed(b"\xff\xfe", b"cust-1", [("mw-record", b"tick"), ("bin", b"\x80")]))
    )
    assert written["value"] is None and written["value_b64"] == "//4="
    assert written["key"] == "cust-1" and "key_b64" not in written
    assert written["headers"] == [["mw-record", "tick"], ["bin", {"b64": "gA=="}]]
    assert written["timestamp_iso"] == "2026-03-02T00:00:00.000Z"


def test_a_file_of_plain_events_reads_as_records_keyed_and_timed_by_each_event() -> None:
    event = line("page_view", 30, url="/")
    records = records_of_file([event, b"", b"{not json"])
    assert [r.value for r in records] == [event, b"{not json"]
    assert records[0].key == b"cust-1" and records[0].timestamp_ms == ms(30)
    assert records[0].partition is None
    assert records[1].key is None and records[1].timestamp_ms is None
