"""``motwatch moments``: the moments reported in a time range, filtered, newest first, with counts.

What an on-call person reads after an alert. ``--since`` and ``--until`` are
record times (when the worker reported the moment): the read starts, per
partition, at the first record of ``--since`` and stops at the first one
past ``--until`` (Kafka's offsets by time: the moments topic's records are
stamped when written), or at the end each partition had when the command
began, so a busy topic is never read whole. ``--journey`` reads only the partition that journey's
moments are keyed to (Kafka's default partitioner). The rows are sorted by
``occurred_at`` (event time), newest first, ties by ``moment_id``. Output is
a table, or JSON lines with ``--json`` (the counts then go to stderr, so
stdout stays pure JSONL). How many records were read goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from motwatch.commands.common import add_broker, point_in_time, positive, settings_of
from motwatch.core.moments import KINDS
from motwatch.core.partitioner import partition_for_key
from motwatch.kafka.admin import partition_ids
from motwatch.kafka.connection import wait_for_broker
from motwatch.kafka.reader import Selection, read_records
from motwatch.kafka.rights import reader_rights, require_rights
from motwatch.kafka.security import Target, endpoint_of
from motwatch.settings import MomentOfTruth

DEFAULT_SINCE = "1h"
STATUSES = ("failed", "recovered")
MOMENTS = tuple(m.value for m in MomentOfTruth)
SHORT_ID = 12  # characters of moment_id the table shows; --id takes them
DETAIL_WIDTH = 60
# Later than any record: the read stops at the end each partition had when it began.
_OPEN_END_MS = 2**63 - 1


# -- filtering, sorting, counting (no Kafka) -----------------------------------
@dataclass(frozen=True)
class Filters:
    """Which moments to keep: every filter given must match (several values of one: any of them)."""

    kinds: frozenset[str] = frozenset()
    owners: frozenset[str] = frozenset()
    moment: str | None = None
    status: str | None = None
    journey: str | None = None
    id_prefix: str | None = None

    def matches(self, m: dict[str, Any]) -> bool:
        if self.kinds and m.get("kind") not in self.kinds:
            return False
        if self.owners and m.get("owner") not in self.owners:
            return False
        if self.moment is not None and m.get("moment") != self.moment:
            return False
        if self.status is not None and m.get("status") != self.status:
            return False
        if self.journey is not None and m.get("journey_key") != self.journey:
            return False
        return self.id_prefix is None or str(m.get("moment_id", "")).startswith(self.id_prefix)


def occurred(m: dict[str, Any]) -> datetime | None:
    """The moment's ``occurred_at`` as an aware time; None when it has none that parses."""
    text = m.get("occurred_at")
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def moment_of(value: bytes | None) -> dict[str, Any] | None:
    """A record's value as a moment dict; None when it is not one (no JSON object, no id or time)."""
    try:
        m = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(m, dict) or not isinstance(m.get("moment_id"), str) or occurred(m) is None:
        return None
    return m


@dataclass
class Found:
    """What a read kept: the matching moments, one per id, and what it passed over."""

    moments: list[dict[str, Any]]
    unreadable: int = 0
    repeats: int = 0


def select(values: Iterable[bytes | None], filters: Filters) -> Found:
    """The moments among record values that match ``filters``, a repeated ``moment_id`` once."""
    found = Found([])
    ids: set[str] = set()
    for value in values:
        m = moment_of(value)
        if m is None:
            found.unreadable += 1
        elif filters.matches(m):
            if m["moment_id"] in ids:
                found.repeats += 1
            else:
                ids.add(m["moment_id"])
                found.moments.append(m)
    return found


def newest_first(moments: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sorted by ``occurred_at``, newest first; moments of the same time by ``moment_id``."""
    by_id = sorted(moments, key=lambda m: m["moment_id"])
    return sorted(by_id, key=lambda m: occurred(m) or datetime.min, reverse=True)


def counts(moments: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """{kind: {status: how many}}, kinds in name order."""
    tally = Counter((str(m.get("kind")), str(m.get("status"))) for m in moments)
    out: dict[str, dict[str, int]] = {}
    for (kind, status), n in sorted(tally.items()):
        out.setdefault(kind, {})[status] = n
    return out


def detail(m: dict[str, Any], width: int = DETAIL_WIDTH) -> str:
    """One line about the moment: moment of truth, severity, channel and its details as key=value."""
    parts = [str(m.get(k)) for k in ("moment", "severity", "channel") if m.get(k) is not None]
    details = m.get("details")
    if isinstance(details, dict):
        parts += [f"{k}={_flat(v)}" for k, v in details.items()]
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def _flat(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return " ".join(text.split())


TABLE_COLUMNS = ("OCCURRED_AT", "KIND", "STATUS", "OWNER", "JOURNEY", "MOMENT_ID", "DETAIL")


def table(moments: Sequence[dict[str, Any]]) -> list[str]:
    """The moments as aligned text rows under a header, in the order given."""
    rows = [TABLE_COLUMNS] + [
        (
            str(m.get("occurred_at")),
            str(m.get("kind")),
            str(m.get("status")),
            str(m.get("owner")),
            _flat(str(m.get("journey_key"))),
            m["moment_id"][:SHORT_ID],
            detail(m),
        )
        for m in moments
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS) - 1)]
    return [
        "  ".join([cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)] + [row[-1]]).rstrip()
        for row in rows
    ]


def summary(matched: Sequence[dict[str, Any]], shown: int) -> list[str]:
    """The counts per kind and status of every matching moment, and how many of them were shown."""
    lines = [f"{len(matched)} moments matched, {shown} shown"]
    per_kind = counts(matched)
    if per_kind:
        width = max(len(kind) for kind in per_kind)
        for kind, by_status in per_kind.items():
            cells = "  ".join(f"{status} {by_status.get(status, 0)}" for status in STATUSES)
            lines.append(f"  {kind.ljust(width)}  {cells}")
    return lines


# -- arguments -----------------------------------------------------------------
def _kind(text: str) -> str:
    if text not in KINDS:
        raise argparse.ArgumentTypeError(f"unknown kind {text!r}; one of {', '.join(KINDS)}")
    return text


def _moment(text: str) -> str:
    if text not in MOMENTS:
        raise argparse.ArgumentTypeError(f"unknown moment {text!r}; one of {', '.join(MOMENTS)}")
    return text


def _time_ms(text: str) -> int:
    return round(point_in_time(text).timestamp() * 1000)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "moments",
        help="the moments reported lately, filtered, newest first, with counts per kind",
        description=(
            "Read the moments topic from --since (default 1h ago) to --until (default: its end now), "
            "keep the moments every given filter matches, print them newest first by occurred_at "
            "(a table, or JSON lines with --json) and their counts per kind and status."
        ),
    )
    p.add_argument("--kind", metavar="KIND", action="append", type=_kind, help="only this kind (repeatable)")
    p.add_argument("--owner", metavar="TEAM", action="append", help="only this owner team (repeatable)")
    p.add_argument(
        "--moment", metavar="MOT", type=_moment, help=f"only this moment of truth: {', '.join(MOMENTS)}"
    )
    p.add_argument("--status", choices=STATUSES, help="only failed or only recovered moments")
    p.add_argument("--journey", metavar="KEY", help="only this journey (reads only its partition)")
    p.add_argument(
        "--id", metavar="MOMENT_ID", dest="moment_id", help="only this moment id, or ids starting so"
    )
    p.add_argument(
        "--since",
        metavar="TIME",
        type=_time_ms,
        default=DEFAULT_SINCE,
        help=f"reported at or after: RFC 3339, or relative like 15m, 2h, 7d (default: {DEFAULT_SINCE})",
    )
    p.add_argument(
        "--until",
        metavar="TIME",
        type=_time_ms,
        help="reported at or before, same forms (default: what the topic holds now)",
    )
    p.add_argument("--limit", metavar="N", type=positive(int), help="show the newest N (counts cover all)")
    p.add_argument(
        "--json", action="store_true", help="JSON lines on stdout, as on the topic; the counts on stderr"
    )
    add_broker(p)
    p.set_defaults(func=run)


def filters_of(args: argparse.Namespace) -> Filters:
    return Filters(
        kinds=frozenset(args.kind or ()),
        owners=frozenset(args.owner or ()),
        moment=args.moment,
        status=args.status,
        journey=args.journey,
        id_prefix=args.moment_id,
    )


# -- reading -------------------------------------------------------------------
async def read_range(
    target: Target, topic: str, since_ms: int, until_ms: int | None, partition: int | None = None
) -> tuple[list[Any], int]:
    """The topic's records (aiokafka's) stamped within the range, and how many records were read.

    With ``partition`` only that partition is read.
    """
    offsets = None if partition is None else {partition: (None, None)}
    selection = Selection(
        since_ms=since_ms,
        until_ms=_OPEN_END_MS if until_ms is None else until_ms,
        offsets=offsets,
        until_ends_read=until_ms is not None,
    )
    read = 0

    def seen(_: Any) -> None:
        nonlocal read
        read += 1

    records = [
        record
        async for record in read_records(
            target, topic, from_beginning=False, idle_s=None, selection=selection, seen=seen
        )
    ]
    return records, read


async def read_values(
    target: Target, topic: str, since_ms: int, until_ms: int | None, journey: str | None
) -> tuple[list[bytes | None], int]:
    """The values of the topic's records stamped within the range, and how many records were read.

    With ``journey`` only the partition its key maps to is read.
    """
    partition = None
    if journey is not None:
        partitions = await partition_ids(target, topic)
        if partitions:
            partition = partition_for_key(journey, len(partitions))
    records, read = await read_range(target, topic, since_ms, until_ms, partition)
    return [record.value for record in records], read


def run(args: argparse.Namespace) -> int:
    if args.until is not None and args.until < args.since:
        print("motwatch moments: error: --until is before --since", file=sys.stderr)
        return 2
    settings = settings_of(args)
    topic = settings.moments_topic
    kafka = endpoint_of(settings)

    async def go() -> tuple[list[bytes | None], int]:
        await wait_for_broker(kafka, timeout=3)
        await require_rights(kafka, reader_rights(topic))
        return await read_values(kafka, topic, args.since, args.until, args.journey)

    values, read = asyncio.run(go())
    found = select(values, filters_of(args))
    matched = newest_first(found.moments)
    shown = matched if args.limit is None else matched[: args.limit]
    notes = [f"read {read} records from {topic}"]
    if found.unreadable:
        notes.append(f"{found.unreadable} not moments")
    if found.repeats:
        notes.append(f"{found.repeats} repeats dropped")
    print(", ".join(notes), file=sys.stderr)
    out = sys.stdout
    if args.json:
        out.buffer.writelines(orjson.dumps(m) + b"\n" for m in shown)
        out.flush()
        print("\n".join(summary(matched, len(shown))), file=sys.stderr)
    else:
        if shown:
            print("\n".join(table(shown)), file=out)
        print("\n".join(summary(matched, len(shown))), file=out)
    return 0
