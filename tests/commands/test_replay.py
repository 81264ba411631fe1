"""Replay without Kafka: sources, ranges, safety, pacing, id rewriting and the progress line."""

from __future__ import annotations

import base64
import io
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
import pytest

from motwatch.commands import replay as replay_module
from motwatch.commands.common import UsageError, parse_duration, parse_offsets, parse_time
from motwatch.commands.replay import (
    Progress,
    ReplayError,
    in_time_order,
    iterate,
    replay,
    resolve_target,
    rewrite_ids,
)
from motwatch.kafka.recording import Record, record_of_line, records_of_file
from tests.journeys import T0_MS, line


def test_times_are_rfc3339_or_relative_to_now():
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    noon = round(now.timestamp() * 1000)
    assert parse_time("2026-03-02T12:00:00Z") == noon
    assert parse_time("2026-03-02T13:00:00.000+01:00") == noon
    assert parse_time("2h", now=now) == noon - 2 * 3600_000
    assert parse_time("90m", now=now) == noon - 90 * 60_000
    assert parse_time("1.5d", now=now) == noon - 36 * 3600_000
    assert parse_duration("45s") == 45 and parse_duration("1w") == 7 * 86400
    assert parse_duration("soon") is None


@pytest.mark.parametrize("text", ["yesterday", "2026-03-02T12:00:00", "2h ago", "-2h", ""])
def test_bad_times_are_one_line_errors(text):
    with pytest.raises(UsageError) as err:
        parse_time(text)
    assert "\n" not in str(err.value)


def test_offset_ranges_are_inclusive_and_may_be_open():
    assert parse_offsets("0:100-200, 1:50-,2:-99") == {0: (100, 200), 1: (50, None), 2: (None, 99)}
    for bad in ("0:5-2", "0", "a:1-2", "0:1-2,x"):
        with pytest.raises(UsageError):
            parse_offsets(bad)


def test_a_record_with_meta_line_keeps_key_timestamp_and_headers():
    meta = {
        "topic": "motwatch.touchpoints",
        "key": None,
        "key_b64": base64.b64encode(b"\xfe\x01").decode(),
        "value": None,
        "value_b64": base64.b64encode(b"\xff not utf-8").decode(),
        "partition": 2,
        "offset": 17,
        "timestamp": 1_772_460_000_123,
        "headers": [["trace", "abc"], ["bin", {"b64": base64.b64encode(b"\x00\xff").decode()}]],
    }
    rec = record_of_line(orjson.dumps(meta))
    assert rec == Record(
        value=b"\xff not utf-8",
        key=b"\xfe\x01",
        timestamp_ms=1_772_460_000_123,
        headers=[("trace", b"abc"), ("bin", b"\x00\xff")],
        partition=2,
    )


def test_a_plain_event_is_keyed_by_journey_and_timed_by_itself():
    raw = line("page_view", 5, key="cust-7", url="https://shop.example/", http_status=200)
    assert record_of_line(raw) == Record(value=raw, key=b"cust-7", timestamp_ms=T0_MS + 5000)
    anonymous = line("page_view", 0, key=None, anon="anon-3", url="https://shop.example/", http_status=200)
    assert record_of_line(anonymous).key == b"anon-3"


def test_malformed_lines_are_replayed_as_they_are():
    for raw in (b"<html>502</html>", b'{"event_id": "x"}', b"\xff\xfe"):
        assert record_of_line(raw) == Record(value=raw)
    assert [r.value for r in records_of_file([b"a", b"", b"  ", b"b"])] == [b"a", b"b"]


def test_a_recording_is_replayed_partitions_side_by_side_each_in_its_own_order():
    def rec(partition: int, ms: int) -> Record:
        return Record(f"{partition}@{ms}".encode(), timestamp_ms=ms, partition=partition)

    # As record writes a topic: partition after partition; partition 1 has a timestamp going back.
    recording = [rec(0, 10), rec(0, 30), rec(0, 50), rec(1, 20), rec(1, 15), rec(1, 60), rec(2, 5)]
    ordered = [r.value.decode() for r in in_time_order(recording)]
    assert ordered == ["2@5", "0@10", "1@20", "1@15", "0@30", "0@50", "1@60"]
    plain = records_of_file([b"b", b"a"])  # no partition: the file's order
    assert in_time_order(plain) == plain


def test_rewritten_ids_are_fresh_and_stay_valid():
    raw = line("page_view", 0, eid="e" * 125, url="https://shop.example/", http_status=200)
    rec = rewrite_ids(Record(raw, b"k", 5, [("h", b"v")]), "~r1234")
    event = orjson.loads(rec.value)
    assert event["event_id"] == ("e" * 125 + "~r1234")[:128]
    assert (rec.key, rec.timestamp_ms, rec.headers) == (b"k", 5, [("h", b"v")])
    assert rewrite_ids(Record(b"not json"), "~r1").value == b"not json"


def test_the_production_namespace_needs_asking():
    assert resolve_target("touchpoints", "sandbox.", "motwatch.", False) == "sandbox.touchpoints"
    assert resolve_target("my-topic", "sandbox.", "motwatch.", False) == "my-topic"
    with pytest.raises(ReplayError, match="--yes-production"):
        resolve_target("touchpoints", "motwatch.", "motwatch.", False)
    with pytest.raises(ReplayError):
        resolve_target("motwatch.touchpoints", "sandbox.", "motwatch.", False)
    assert resolve_target("touchpoints", "motwatch.", "motwatch.", True) == "motwatch.touchpoints"


async def _replay(records, now=time.monotonic, **kw):
    sent: list[tuple[float, Record]] = []

    async def send(rec: Record) -> None:
        sent.append((now(), rec))

    summary = await replay(iterate(records), send, progress=False, **kw)
    return sent, summary


async def test_replay_sends_in_order_and_sums_up():
    records = [Record(f"v{i}".encode(), b"k", T0_MS + i * 60_000) for i in range(5)] + [Record(b"bad")]
    sent, summary = await _replay(records, speed=0, rewrite=False)
    assert [rec for _, rec in sent] == records
    assert (summary.sent, summary.first_ms, summary.last_ms) == (6, T0_MS, T0_MS + 240_000)
    assert "replayed 6 messages to t in" in summary.line("t", 0)
    assert "as fast as possible, 4m of recorded time" in summary.line("t", 0)


async def test_speed_reproduces_the_original_pace():
    # 0.6 s of recorded time at 2x: at least 0.3 s of wall time, no record early. (How late a
    # record may be is the scheduler's business: see the test with a late clock below.)
    records = [Record(b"a", None, 1000), Record(b"b", None, 1200), Record(b"c", None, 1600)]
    sent, summary = await _replay(records, speed=2, rewrite=False)
    offsets = [at - sent[0][0] for at, _ in sent]
    assert offsets[1] >= 0.099 and offsets[2] >= 0.299
    assert summary.seconds >= 0.3
    assert "at 2x the original pace" in summary.line("t", 2)


class LateClock:
    """The replay's clock and sleep, every sleep overshooting by ``slack`` (a busy machine)."""

    def __init__(self, slack: float) -> None:
        self.slack = slack
        self.now = 500.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds + self.slack


@pytest.mark.parametrize(
    ("slack", "expected"),
    [
        # Each record late by the slack of its own sleep only: due times are absolute, they do not drift.
        (0.04, [0, 0.14, 0.34, 0.39]),
        # A record already due when its turn comes goes at once: the schedule catches up.
        (0.25, [0, 0.35, 0.35, 0.35]),
    ],
)
async def test_a_late_wake_up_delays_only_its_own_record(monkeypatch, slack, expected):
    clock = LateClock(slack)
    monkeypatch.setattr(replay_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(replay_module, "asyncio", SimpleNamespace(sleep=clock.sleep))
    # Due at 0, 0.1, 0.3 and 0.35 s at 2x.
    records = [
        Record(b"a", None, 1000),
        Record(b"b", None, 1200),
        Record(b"c", None, 1600),
        Record(b"d", None, 1700),
    ]
    sent, summary = await _replay(records, now=clock.monotonic, speed=2, rewrite=False)
    assert [at - sent[0][0] for at, _ in sent] == pytest.approx(expected)
    assert summary.seconds == pytest.approx(expected[-1])


async def test_rewrite_ids_gives_one_fresh_suffix_per_run():
    raws = [line("page_view", i, url="https://shop.example/", http_status=200) for i in range(3)]
    records = records_of_file(raws)
    first, _ = await _replay(records, speed=0, rewrite=True, run_id="aa")
    second, _ = await _replay(records, speed=0, rewrite=True, run_id="bb")
    ids = [orjson.loads(r.value)["event_id"] for _, r in first]
    assert ids == [orjson.loads(raw)["event_id"] + "~raa" for raw in raws]
    assert not set(ids) & {orjson.loads(r.value)["event_id"] for _, r in second}
    assert [r.key for _, r in first] == [r.key for r in records]


def test_progress_bar_only_on_a_terminal(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    bar = Progress(total=40, enabled=True)
    bar.update(10, force=True)
    bar.close(40)
    assert (
        err.getvalue() == "\r[#######-----------------------] 10/40\r[##############################] 40/40\n"
    )
    quiet = io.StringIO()
    monkeypatch.setattr("sys.stderr", quiet)
    Progress(total=None).close(3)  # StringIO is no terminal
    assert quiet.getvalue() == ""
