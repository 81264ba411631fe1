"""The input topic's records in a vendor's format, as the touchpoint records they carry.

With ``input_format`` set to a vendor, the worker and ``motwatch detect``
read the input topic through :func:`input_format`: each record is
converted as the collector converts an HTTP message (the same adapters,
the same mapping), and each touchpoint it carries goes on as a record in
motwatch's own format, read from the record's place. A vendor event that
cannot be a touchpoint is a rejection, dead-lettered with the whole record
and its place in it; one that is not meant to be one (``no_touchpoint``: a
page ping, a one-sided identify) is left out, as the collector leaves it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from motwatch.adapters.intake import check_message
from motwatch.adapters.mapping import Mappings
from motwatch.core.dispatch import Inbound, InputFormat
from motwatch.core.validation import Rejection
from motwatch.settings import Settings

# Events a vendor sends that are not touchpoints, and not mistakes either.
NOT_A_TOUCHPOINT = "no_touchpoint"


def input_format(settings: Settings, now: Callable[[], datetime] | None = None) -> InputFormat | None:
    """How the dispatch reads the input topic under ``settings.input_format`` (None: motwatch's own).

    A record's arrival is its Kafka timestamp; one without (a plain line of
    a file) arrives at ``now()``, as ``detect`` takes such lines to.
    """
    vendor = settings.input_format
    if vendor == "motwatch":
        return None
    mappings = Mappings.from_settings(settings)
    limits = settings.limits
    clock = now or (lambda: datetime.now(UTC))

    def touchpoints(record: Inbound) -> list[Inbound | Rejection]:
        arrived = (
            clock()
            if record.timestamp_ms is None
            else datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
        )
        checked = check_message(
            vendor, record.value, arrived, mappings, headers=record.headers, limits=limits
        )
        out: list[Inbound | Rejection] = []
        for accepted in checked.accepted:
            out.append(
                Inbound(
                    accepted.raw,
                    record.partition,
                    key=accepted.journey_key.encode(),
                    timestamp_ms=record.timestamp_ms,
                    behind=record.behind,
                    topic=record.topic,
                    offset=record.offset,
                    in_file=record.in_file,
                )
            )
        out.extend(r.as_rejection() for r in checked.rejected if r.reason != NOT_A_TOUCHPOINT)
        return out

    return touchpoints
