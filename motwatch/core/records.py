"""The records of the re-keyed topic besides touchpoints: their headers and their bodies.

A touchpoint travels as its producer's bytes, untouched, with a header saying
which source partition it came from. How far that source has read travels
only in the progress records, each sent once every record sent before it is
written (``agents/input_topic.py``); an earlier motwatch also wrote it on
every touchpoint (``mw-progress``), which is still read. A
touchpoint one journey hands to another (an anonymous-only event sent on to
the customer's journey it was joined to) carries the ``mw-forwarded`` header,
so readers of the topic can tell it from the producer's original. Every other
record names itself in the ``mw-record`` header: a tick, the sources'
progress, or a merge between two journeys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

RECORD = "mw-record"
SOURCE = "mw-source"
PROGRESS = "mw-progress"
FORWARDED = "mw-forwarded"

TICK = "tick"
SOURCE_PROGRESS = "progress"
MERGE_REQUEST = "merge_request"
MERGE = "merge"


def header_map(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> dict[str, str]:
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for k, v in items}


def touchpoint_headers(source: str) -> list[tuple[str, bytes]]:
    """A re-keyed touchpoint's headers: the source partition it was read from."""
    return [(SOURCE, source.encode())]


def forwarded_headers() -> list[tuple[str, bytes]]:
    return [(FORWARDED, b"1")]


def control_headers(kind: str) -> list[tuple[str, bytes]]:
    return [(RECORD, kind.encode())]


def encode_body(body: Mapping[str, Any]) -> bytes:
    return orjson.dumps(body)


def decode_body(raw: bytes) -> dict[str, Any]:
    return orjson.loads(raw)


def tick_body(wall_ms: int) -> bytes:
    return encode_body({"wall_ms": wall_ms})


@dataclass(frozen=True, slots=True)
class Progress:
    """What a progress record tells a journey partition about the input topic's partitions.

    ``reads``: the latest event time read from each source partition (those
    the announcing worker has read from); ``unread``: source partitions it
    reads and has read nothing from yet; ``behind``: which of either had
    records still waiting to be read, or None when the record does not say
    (an earlier version wrote it); ``inputs``: partitions per input topic.
    """

    reads: dict[str, int]
    behind: frozenset[str] | None = None
    unread: frozenset[str] = frozenset()
    inputs: dict[str, int] = field(default_factory=dict)


def progress_body(
    reads: Mapping[str, int | None], behind: Iterable[str], inputs: Mapping[str, int] | None = None
) -> bytes:
    """A progress record's body; a source read nothing from yet has no time (null)."""
    body: dict[str, Any] = {"sources": dict(reads), "behind": sorted(behind)}
    if inputs:
        body["inputs"] = dict(inputs)
    return encode_body(body)


def read_progress(raw: bytes) -> Progress:
    """A progress record's body, as written now or by earlier versions (one source per record)."""
    body = decode_body(raw)
    if "sources" not in body:
        return Progress({body["source"]: int(body["max_seen_ms"])})
    sources: dict[str, Any] = body["sources"]
    behind = body.get("behind")
    return Progress(
        reads={s: int(ms) for s, ms in sources.items() if ms is not None},
        behind=None if behind is None else frozenset(behind),
        unread=frozenset(s for s, ms in sources.items() if ms is None),
        inputs={topic: int(n) for topic, n in body.get("inputs", {}).items()},
    )


def source_name(topic: str, partition: int) -> str:
    """How a source partition of the input topic is named in headers, progress and clocks."""
    return f"{topic}:{partition}"


def input_sources(inputs: Mapping[str, int]) -> list[str]:
    """Every source partition of the input topics, named."""
    return [source_name(topic, p) for topic, n in sorted(inputs.items()) for p in range(n)]
