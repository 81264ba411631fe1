"""``motwatch explain KEY``: one journey's story on one screen, from its worker and from Kafka.

The state (open deadlines, milestones, events held for the watermark, the
partition's watermark) comes from the worker that owns the journey:
``GET /journeys/{key}`` on the web server of the worker the settings (or
``--url``) name, followed once to the owner a worker names when another holds
the journey's partition (``streams/journey_view.py``). With no worker that
answers, the state is the one the worker last wrote to the journeys table's
changelog (and the watermark its clock's changelog last holds), and one line
on stderr says so. The journey's touchpoints are read from its partition of
the input topic (the records whose journey it is) and of the re-keyed topic
(the records keyed to it); its moments from its partition of the moments
topic. With a known state, only records stamped since the journey began (less
``max_future_skew_s``) are read. The story (:mod:`motwatch.core.story`) is
printed as text, or as one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import orjson

from motwatch.adapters.records import input_format
from motwatch.commands.common import UsageError, add_broker, point_in_time, settings_of
from motwatch.commands.moments import Filters as MomentFilters
from motwatch.commands.moments import read_range, select
from motwatch.commands.status import StatusError, split_worker_url, url_of_settings
from motwatch.core.clock import NEVER, PartitionClock
from motwatch.core.dispatch import Inbound
from motwatch.core.events import Touchpoint
from motwatch.core.journey import JourneyState, UnreadableStateError
from motwatch.core.partitioner import partition_for_key
from motwatch.core.records import RECORD, header_map
from motwatch.core.story import assemble, render
from motwatch.core.validation import validate_touchpoint
from motwatch.kafka.admin import partition_ids
from motwatch.kafka.connection import wait_for_broker
from motwatch.kafka.rights import reader_rights, require_rights
from motwatch.kafka.security import Target, endpoint_of
from motwatch.settings import Settings

WORKER_TIMEOUT_S = 5.0


# -- the worker ----------------------------------------------------------------
@dataclass
class WorkerAnswer:
    """What the owning worker said: its state of the journey (None: it holds none) and its watermark."""

    url: str
    partition: int
    state: JourneyState | None
    watermark_ms: int | None


class NoWorker(Exception):
    """No worker answered for the journey; the message says why, in a few words."""


def base_url(url: str) -> str:
    """``host:port``, a base URL or the worker's /metrics URL, as its base URL."""
    parts = split_worker_url(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=WORKER_TIMEOUT_S) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise NoWorker(f"no worker answers at {base_url(url)} ({reason})") from None
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise NoWorker(
            f"{base_url(url)} answered HTTP {status} without JSON: not a motwatch worker?"
        ) from None
    return status, answer if isinstance(answer, dict) else {}


def ask_worker(url: str, key: str) -> WorkerAnswer:
    """The journey as its worker holds it, asking at ``url`` and then at the owner it names."""
    path = "/journeys/" + urllib.parse.quote(key, safe="")
    base = base_url(url)
    status, answer = _get(base + path)
    if status == 421 and isinstance(answer.get("owner"), str):
        base = base_url(answer["owner"])
        status, answer = _get(base + path)
    if status not in (200, 404):
        raise NoWorker(f"the worker at {base} answered HTTP {status}: {answer.get('error', '')}".rstrip(": "))
    state = answer.get("state")
    return WorkerAnswer(
        url=base,
        partition=int(answer.get("partition", -1)),
        state=JourneyState.from_dict(state) if isinstance(state, dict) else None,
        watermark_ms=answer.get("watermark_ms"),
    )


# -- Kafka ---------------------------------------------------------------------
@dataclass
class KafkaRead:
    """What Kafka holds of a journey."""

    touchpoints: list[Touchpoint] = field(default_factory=list)
    moments: list[dict[str, Any]] = field(default_factory=list)
    # The state the journeys changelog last holds for the key (None: none, deleted, or unreadable).
    stored: JourneyState | None = None
    watermark_ms: int | None = None


def touchpoints_of(values: list[Inbound], settings: Settings, vendor: bool) -> list[Touchpoint]:
    """The touchpoints among records in motwatch's format, or (``vendor``) the input topic's format."""
    convert = input_format(settings) if vendor else None
    out = []
    for record in values:
        items = [record] if convert is None else [i for i in convert(record) if isinstance(i, Inbound)]
        for item in items:
            event = validate_touchpoint(item.value, settings.limits)
            if isinstance(event, Touchpoint):
                out.append(event)
    return out


def _inbound(record: Any) -> Inbound:
    return Inbound(
        record.value or b"",
        record.partition,
        key=record.key,
        headers=header_map(record.headers),
        timestamp_ms=record.timestamp,
        topic=record.topic,
        offset=record.offset,
    )


async def read_kafka(
    target: Target, settings: Settings, key: str, since_ms: int, with_state: bool
) -> KafkaRead:
    """The journey's touchpoints and moments (and, ``with_state``, its last stored state and watermark)."""
    out = KafkaRead()
    topics = [settings.touchpoints_topic, settings.by_journey_topic, settings.moments_topic]
    journeys, clocks = settings.changelog_topic("journeys"), settings.changelog_topic("clocks")
    if with_state:
        topics += [journeys, clocks]
    counts = {topic: len(await partition_ids(target, topic)) for topic in topics}
    counts.setdefault(journeys, 0)
    counts.setdefault(clocks, 0)
    present = [topic for topic in topics if counts[topic]]
    await require_rights(target, [right for topic in present for right in reader_rights(topic)])

    # Journey partitions (the re-keyed topic, the tables) are the worker's; the other topics are keyed.
    journey_partition = partition_for_key(key, settings.partitions)
    own = {settings.by_journey_topic, journeys, clocks}

    async def read(topic: str, since: int, wanted: bool = True) -> list[Any]:
        if not wanted or not counts[topic]:
            return []
        partition = journey_partition if topic in own else partition_for_key(key, counts[topic])
        if partition >= counts[topic]:
            return []
        records, _ = await read_range(target, topic, since, None, partition)
        return records

    encoded = key.encode("utf-8", "surrogateescape")
    inputs, by_journey, moments, stored, clock = await asyncio.gather(
        read(settings.touchpoints_topic, since_ms),
        read(settings.by_journey_topic, since_ms),
        read(settings.moments_topic, since_ms),
        read(journeys, 0, with_state),
        read(clocks, 0, with_state),
    )
    mine = [
        e
        for e in touchpoints_of([_inbound(r) for r in inputs], settings, vendor=True)
        if e.journey_key == key or (e.type == "identify" and e.anonymous_id == key)
    ]
    rekeyed = [_inbound(r) for r in by_journey if r.key == encoded]
    # The re-keyed topic carries touchpoints in motwatch's format, and the worker's own records.
    mine += touchpoints_of([r for r in rekeyed if RECORD not in (r.headers or {})], settings, vendor=False)
    out.touchpoints = mine
    out.moments = select((r.value for r in moments), MomentFilters(journey=key)).moments
    last = next((r.value for r in reversed(stored) if r.key == encoded), None)
    if last:
        try:
            out.stored = JourneyState.unpack(last)
        except UnreadableStateError:
            out.stored = None
    for record in clock:
        if record.key == str(journey_partition).encode() and record.value:
            try:
                watermark = PartitionClock.from_json(record.value).watermark_ms
            except ValueError:
                continue
            out.watermark_ms = None if watermark <= NEVER else watermark
    return out


# -- the command ---------------------------------------------------------------
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="one journey's story: touchpoints, open deadlines, moments and why",
        description=(
            "Print one journey's touchpoints in event-time order with their moment of truth and phase, "
            "its open deadlines and when they fall due, each moment it raised or recovered with the "
            "evidence events and the threshold that decided it, and whether it was joined from an "
            "anonymous journey. The state comes from the worker that owns the journey, else from Kafka."
        ),
    )
    p.add_argument("key", metavar="JOURNEY_KEY", help="the journey: a customer_id, or an anonymous_id")
    p.add_argument("--json", action="store_true", help="the same story as one JSON object")
    p.add_argument(
        "--url",
        metavar="URL",
        help="a worker to ask: host:port or its base URL (default: web_port of the settings; for port 0, "
        "the URL the worker wrote to <data_dir>/<app id>/web.url)",
    )
    p.add_argument("--kafka-only", action="store_true", help="ask no worker: the state as Kafka holds it")
    p.add_argument(
        "--since",
        metavar="TIME",
        type=point_in_time,
        help="read records stamped from then on: RFC 3339, or relative like 2h, 7d "
        "(default: since the journey began, when its state is known; else all that is kept)",
    )
    add_broker(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.key:
        raise UsageError("JOURNEY_KEY is empty")
    settings = settings_of(args)
    key = args.key
    answer: WorkerAnswer | None = None
    why = "--kafka-only"
    if not args.kafka_only:
        try:
            answer = ask_worker(args.url or url_of_settings(settings), key)
        except StatusError:
            why = "no worker URL: web_port is 0 and no running worker wrote web.url; give --url"
        except NoWorker as exc:
            why = str(exc)
    state = answer.state if answer is not None else None
    if args.since is not None:
        since_ms = round(args.since.timestamp() * 1000)
    elif state is not None:
        since_ms = max(0, state.first_seen_ms - round(settings.max_future_skew_s * 1000))
    else:
        since_ms = 0
    kafka = endpoint_of(settings)

    async def go() -> KafkaRead:
        await wait_for_broker(kafka, timeout=3)
        return await read_kafka(kafka, settings, key, since_ms, with_state=answer is None)

    read = asyncio.run(go())
    if answer is not None:
        watermark = answer.watermark_ms
        held = "" if state is not None else "; it holds no state for the journey (never seen, or expired)"
        source = {
            "from": "worker",
            "url": answer.url,
            "partition": answer.partition,
            "note": f"state from the worker at {answer.url} (partition {answer.partition}){held}",
        }
    else:
        state = read.stored
        watermark = read.watermark_ms
        found = "no stored state" if state is None else "the state the worker last stored"
        source = {
            "from": "kafka",
            "reason": why,
            "note": f"{why}: {found}, from Kafka",
        }
    if state is None and not read.touchpoints and not read.moments:
        asked = "the worker" if answer is not None else "Kafka (no worker answered)"
        raise UsageError(f"no journey {key!r}: {asked} knows no state, touchpoints or moments of it")
    if answer is None:
        print(f"motwatch explain: {source['note']}", file=sys.stderr)
    story = assemble(
        key, read.touchpoints, read.moments, state, settings, watermark_ms=watermark, source=source
    )
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(story) + b"\n")
        sys.stdout.flush()
    else:
        print("\n".join(render(story)))
    return 0
