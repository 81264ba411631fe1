"""The records on the re-keyed topic, besides touchpoints: their headers and bodies.

A touchpoint travels as its producer's bytes, untouched, with headers saying
which source partition it came from and how far that source had read. A
touchpoint one journey hands to another (an ``identify`` forwarded to the
anonymous journey it joins) carries the ``mw-forwarded`` header, so readers
of the topic can tell it from the producer's original. Every other record
names itself in the ``mw-record`` header.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def touchpoint_headers(source: str, progress_ms: int) -> list[tuple[str, bytes]]:
    return [(SOURCE, source.encode()), (PROGRESS, str(progress_ms).encode())]


def forwarded_headers() -> list[tuple[str, bytes]]:
    return [(FORWARDED, b"1")]


def control_headers(kind: str) -> list[tuple[str, bytes]]:
    return [(RECORD, kind.encode())]


def encode_body(body: Mapping[str, Any]) -> bytes:
    return orjson.dumps(body)


def decode_body(raw: bytes) -> dict[str, Any]:
    return orjson.loads(raw)
