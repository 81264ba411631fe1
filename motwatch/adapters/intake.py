"""The one path from a vendor message to validated touchpoints, for every caller (HTTP or Kafka input).

``check_message`` takes a message as it arrived (body bytes, and headers for
a binary-mode CloudEvent); ``check_payload`` one already parsed (a query
string, a form). Both convert with the vendor's adapter, then put each
touchpoint made through motwatch's own validator
(:func:`motwatch.core.validation.validate_touchpoint`, with the limits, and
:func:`~motwatch.core.validation.check_arrival` when a future skew is
given), and return a :class:`Checked`: the touchpoints as the bytes to
produce, and every vendor event rejected, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from motwatch.adapters import cloudevents, ga4, segment, snowplow
from motwatch.adapters.base import Converted, Rejected, received_ms
from motwatch.adapters.mapping import DEFAULT_MAPPINGS, VENDORS, Mappings
from motwatch.core.events import Touchpoint
from motwatch.core.validation import DEFAULT_LIMITS, Rejection, check_arrival, validate_touchpoint
from motwatch.settings import Limits

Converter = Callable[[Any, datetime, Mappings], Converted]
CONVERTERS: dict[str, Converter] = {
    "segment": segment.convert,
    "snowplow": snowplow.convert,
    "ga4": ga4.convert,
    "cloudevents": cloudevents.convert,
}


@dataclass(frozen=True, slots=True)
class Accepted:
    """A touchpoint made from a vendor event and accepted by the validator.

    ``raw``: its JSON, the bytes to produce to the touchpoints topic;
    ``event``: the validated touchpoint; ``item``: where it was in the vendor message.
    """

    raw: bytes
    event: Touchpoint
    item: str = ""

    @property
    def journey_key(self) -> str:
        """The key to produce it under: its journey."""
        return self.event.journey_key


@dataclass(slots=True)
class Checked:
    """A vendor message's outcome: the touchpoints accepted and the vendor events rejected, in order."""

    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def _callers_mistakes(vendor: str, received_at: datetime) -> None:
    """Raise ValueError for an unknown vendor or a naive arrival time: the caller's mistakes."""
    if vendor not in CONVERTERS:
        raise ValueError(f"unknown vendor {vendor!r}: one of {', '.join(VENDORS)}")
    received_ms(received_at)


def _guarded(vendor: str, run: Callable[[], Converted]) -> Converted:
    """``run()``, or when the adapter itself fails (a bug), the message rejected as ``internal_error``."""
    try:
        return run()
    except Exception as exc:  # never lose a message to a bug: it is rejected, with where it failed
        out = Converted()
        out.reject("internal_error", f"the {vendor} adapter failed: {type(exc).__name__}: {exc}")
        return out


def convert(
    vendor: str,
    payload: Any,
    received_at: datetime,
    mappings: Mappings = DEFAULT_MAPPINGS,
    *,
    kind: str | None = None,
) -> Converted:
    """The vendor's adapter on a parsed payload (a JSON value, or a Snowplow GET's query parameters).

    ``vendor``: one of ``VENDORS``; ``received_at``: an aware datetime (either
    wrong is the caller's mistake: a ValueError). ``kind``: for Segment, the
    message type its endpoint implies (``/v1/track``: ``"track"``); unused
    by the other vendors.
    """
    _callers_mistakes(vendor, received_at)
    if vendor == "segment":
        return _guarded(vendor, lambda: segment.convert(payload, received_at, mappings, kind=kind))
    return _guarded(vendor, lambda: CONVERTERS[vendor](payload, received_at, mappings))


def convert_message(
    vendor: str,
    body: bytes,
    received_at: datetime,
    mappings: Mappings = DEFAULT_MAPPINGS,
    *,
    headers: cloudevents.Headers | None = None,
    kind: str | None = None,
) -> Converted:
    """A message as it arrived: a binary-mode CloudEvent when its headers say so, else JSON to convert."""
    _callers_mistakes(vendor, received_at)
    if vendor == "cloudevents" and cloudevents.is_binary(headers):
        return _guarded(
            vendor, lambda: cloudevents.convert_binary(headers or {}, body, received_at, mappings)
        )
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        out = Converted()
        out.reject("invalid_json", f"not valid JSON: {exc}")
        return out
    return convert(vendor, payload, received_at, mappings, kind=kind)


def check(
    converted: Converted,
    received_at: datetime,
    *,
    limits: Limits = DEFAULT_LIMITS,
    max_future_skew_s: float | None = None,
) -> Checked:
    """Each touchpoint of a conversion through the validator (and the future-skew check when given)."""
    out = Checked(rejected=list(converted.rejections))
    arrived = received_ms(received_at)
    skew_ms = None if max_future_skew_s is None else round(max_future_skew_s * 1000)
    for event, item in zip(converted.events, converted.items, strict=True):
        try:
            raw = orjson.dumps(event)
        except orjson.JSONEncodeError as exc:
            out.rejected.append(Rejected("bad_property", f"cannot be written as JSON: {exc}", item))
            continue
        result = validate_touchpoint(raw, limits)
        if not isinstance(result, Rejection) and skew_ms is not None:
            result = check_arrival(result, arrived, skew_ms) or result
        if isinstance(result, Rejection):
            out.rejected.append(Rejected(result.reason, result.error, item))
        else:
            out.accepted.append(Accepted(raw, result, item))
    return out


def check_payload(
    vendor: str,
    payload: Any,
    received_at: datetime,
    mappings: Mappings = DEFAULT_MAPPINGS,
    *,
    kind: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    max_future_skew_s: float | None = None,
) -> Checked:
    """Convert a parsed vendor payload and validate what it made: :func:`convert`, then :func:`check`."""
    converted = convert(vendor, payload, received_at, mappings, kind=kind)
    return check(converted, received_at, limits=limits, max_future_skew_s=max_future_skew_s)


def check_message(
    vendor: str,
    body: bytes,
    received_at: datetime,
    mappings: Mappings = DEFAULT_MAPPINGS,
    *,
    headers: cloudevents.Headers | None = None,
    kind: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    max_future_skew_s: float | None = None,
) -> Checked:
    """Convert a message as it arrived and validate what it made: :func:`convert_message`, :func:`check`."""
    converted = convert_message(vendor, body, received_at, mappings, headers=headers, kind=kind)
    return check(converted, received_at, limits=limits, max_future_skew_s=max_future_skew_s)
