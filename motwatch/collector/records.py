"""A vendor request's outcome as the records to produce: touchpoints keyed by journey, and dead letters.

Every vendor event of a request ends in one of three places: a touchpoint
on the touchpoints topic (keyed by its journey key), a dead letter on the
dead-letter topic (the worker's record format, :mod:`motwatch.core.deadletter`,
with the reason), or, for a well-formed event that carries no touchpoint
(``no_touchpoint``: a Snowplow page ping, a Segment group call), a count
only. A dead letter's ``raw`` is the vendor event as the collector parsed
it, written again as JSON (a write key in it left out), or the request's
body as it came when the whole request is what was rejected, cut at
``limits.max_message_bytes`` as the worker cuts a message too large; its
``source`` names the endpoint and the event's place in the request.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from motwatch.adapters import Checked
from motwatch.collector.sink import Outgoing
from motwatch.core.deadletter import dead_letter_record, encode_dead_letter

# Rejections counted but not dead-lettered: well-formed vendor events that are no touchpoint.
COUNTED_ONLY = frozenset({"no_touchpoint"})
_ITEM = re.compile(r"([A-Za-z_]*)\[([0-9]+)\]")


@dataclass(frozen=True, slots=True)
class Topics:
    """Where accepted touchpoints and dead letters go."""

    touchpoints: str
    deadletter: str


@dataclass(slots=True)
class Outcome:
    """The records of one request, and what they count: touchpoints accepted, rejections by reason."""

    records: list[Outgoing] = field(default_factory=list)
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def events(self) -> int:
        """Vendor events the request held (as far as the adapter could tell them apart)."""
        return self.accepted + sum(self.rejected.values())


def http_source(route: str, vendor: str, item: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A dead letter's ``source`` for an HTTP request: the endpoint, the vendor, where the event was."""
    source: dict[str, Any] = {"http": route, "vendor": vendor}
    if item:
        source["item"] = item
    if extra:
        source.update(extra)
    return source


def located(payload: Any, item: str) -> Any:
    """The vendor event at ``item`` (``batch[2]``, ``[0]``, ``data[1]``) in a parsed payload; None if none."""
    match = _ITEM.fullmatch(item)
    if match is None:
        return None
    name, index = match.group(1), int(match.group(2))
    container = payload.get(name) if name and isinstance(payload, dict) else (None if name else payload)
    if isinstance(container, list) and index < len(container):
        return container[index]
    return None


def raw_finder(payload: Any, body: bytes) -> Callable[[str], bytes]:
    """The raw bytes to dead-letter for an item: the located event as JSON, else the whole payload or body."""
    whole = body if payload is None else orjson.dumps(payload)

    def raw_of(item: str) -> bytes:
        if not item:
            return whole
        event = located(payload, item)
        return whole if event is None else orjson.dumps(event)

    return raw_of


def outcome_of(
    checked: Checked,
    topics: Topics,
    *,
    route: str,
    vendor: str,
    raw_of: Callable[[str], bytes],
    received_at: datetime,
    raw_limit: int,
    source_extra: Mapping[str, Any] | None = None,
) -> Outcome:
    """Records for the touchpoints accepted and the dead letters of the events rejected, in that order."""
    out = Outcome()
    for accepted in checked.accepted:
        out.records.append(Outgoing(topics.touchpoints, accepted.journey_key.encode(), accepted.raw))
        out.accepted += 1
    for rejected in checked.rejected:
        out.rejected[rejected.reason] += 1
        if rejected.reason in COUNTED_ONLY:
            continue
        record = dead_letter_record(
            raw_of(rejected.item)[:raw_limit],
            rejected.as_rejection(),
            http_source(route, vendor, rejected.item, source_extra),
            received_at,
        )
        out.records.append(Outgoing(topics.deadletter, None, encode_dead_letter(record)))
    return out
