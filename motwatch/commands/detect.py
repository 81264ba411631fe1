"""``motwatch detect``: the core on a JSONL file, without Kafka.

The file is one partition of the input topic, read in file order, through the
same :class:`~motwatch.core.dispatch.JourneyDispatch` as the worker's journey
agent; the records it would send through the re-keyed topic (an ``identify``
joining two journeys) loop straight back into it.

When a line arrived, against which ``max_future_skew_s`` is checked: a
``motwatch record --with-meta`` recording carries each record's timestamp,
which is when it reached Kafka; a plain event arrives when ``detect`` reads
it (the wall clock), as it would reach a worker sent now.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from motwatch.adapters.records import input_format
from motwatch.commands.common import add_config, close_out, open_out, read_lines
from motwatch.core.clock import PartitionClock
from motwatch.core.deadletter import encode_dead_letter
from motwatch.core.dispatch import Inbound, JourneyDispatch, Outcome
from motwatch.core.engine import JourneyEngine
from motwatch.core.moments import Moment
from motwatch.core.records import header_map
from motwatch.core.records import source_name as _source
from motwatch.garbage import collecting_less_often
from motwatch.kafka.recording import is_meta, record_of_meta
from motwatch.settings import Settings, load_settings


@dataclass
class DetectSummary:
    events: int = 0
    rejected: int = 0
    duplicates: int = 0
    late: int = 0
    moments: Counter[str] = field(default_factory=Counter)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    open_timeouts: int = 0

    def lines(self) -> list[str]:
        out = [
            f"events: {self.events}  rejected: {self.rejected}  duplicates: {self.duplicates}  "
            f"late: {self.late}  open timeouts at end: {self.open_timeouts}"
        ]
        for reason, n in sorted(self.rejected_by_reason.items()):
            out.append(f"  rejected {reason}: {n}")
        total = sum(self.moments.values())
        out.append(f"moments: {total}")
        for kind, n in sorted(self.moments.items()):
            out.append(f"  {kind}: {n}")
        return out


def arrivals(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes, int, dict[str, str] | None]]:
    """(line number, message, when it arrived, its headers) for each non-blank line.

    A file whose first line is a ``record --with-meta`` line is such a
    recording throughout: each message, its record's timestamp and headers.
    Any other file holds plain messages, which arrive as they are read.
    """
    recording: bool | None = None
    for number, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\r\n")
        if not raw or raw.isspace():
            continue
        if recording is None:
            try:
                recording = is_meta(orjson.loads(raw))
            except orjson.JSONDecodeError:
                recording = False
        if recording:
            record = record_of_meta(orjson.loads(raw))
            arrived = record.timestamp_ms if record.timestamp_ms is not None else time.time_ns() // 1_000_000
            yield number, record.value, arrived, header_map(record.headers)
        else:
            yield number, raw, time.time_ns() // 1_000_000, None


def run_detect(
    lines: Iterable[bytes],
    settings: Settings,
    on_moment: Callable[[Moment], None],
    on_reject: Callable[[dict[str, Any]], None],
    source_name: str = "-",
    flush: bool = False,
) -> DetectSummary:
    """Run every line through the dispatch and the engine; report moments and rejects."""
    clock = PartitionClock(
        lateness_ms=round(settings.allowed_lateness_s * 1000),
        self_timed=False,
        idle_advance_ms=round(settings.idle_advance_s * 1000),
    )
    clock.learn_inputs([_source(source_name, 0)])
    engine = JourneyEngine(settings, clock=clock)
    dispatch = JourneyDispatch(
        settings, lambda _: engine, partitions=1, direct=True, input_format=input_format(settings)
    )
    summary = DetectSummary()

    def carry_out(outcome: Outcome) -> None:
        for each in dispatch.loop_back(outcome):
            if each.dead_letter is not None:
                summary.rejected += 1
                summary.rejected_by_reason[each.dead_letter["reason"]] += 1
                on_reject(each.dead_letter)
            for step in each.steps:
                summary.duplicates += step.duplicate
                summary.late += step.late
                for moment in step.moments:
                    summary.moments[f"{moment.kind} ({moment.status})"] += 1
                    on_moment(moment)

    for number, raw, arrived, headers in arrivals(lines):
        record = Inbound(
            raw, 0, headers=headers, timestamp_ms=arrived, topic=source_name, offset=number, in_file=True
        )
        for outcome in dispatch.touchpoints(record):
            summary.events += outcome.event is not None
            carry_out(outcome)
    if flush:
        carry_out(dispatch.advance(0, 2**62))
    summary.open_timeouts = engine.open_timeouts()
    return summary


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="run the detectors on a JSONL file, offline, without Kafka")
    p.add_argument("file", metavar="FILE.jsonl", help="touchpoint events ('-' for stdin)")
    p.add_argument("--output", metavar="FILE", help="moment events, one per line (default: stdout)")
    p.add_argument("--dead-letter", metavar="FILE", help="rejected lines, as dead-letter records")
    p.add_argument(
        "--flush", action="store_true", help="at the end, fire every open timeout as if the stream went on"
    )
    add_config(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    lines = read_lines(args.file)
    out = open_out(args.output)
    dead: IO[bytes] | None = open_out(args.dead_letter) if args.dead_letter else None
    try:
        with collecting_less_often():
            summary = run_detect(
                lines,
                settings,
                on_moment=lambda m: out.write(m.to_json() + b"\n"),
                on_reject=lambda r: dead.write(encode_dead_letter(r) + b"\n") if dead else None,
                source_name=args.file,
                flush=args.flush,
            )
    finally:
        close_out(out)
        if dead is not None:
            dead.close()
    for line in summary.lines():
        print(line, file=sys.stderr)
    return 0
