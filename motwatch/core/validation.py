"""Turns raw message bytes into a touchpoint, or into a reason it was rejected.

Bytes go in, never decoded objects: every message, however broken, gets an
answer here, so nothing upstream can fail on it and lose it. The limits
(``Settings.limits``) come first, cheapest first: the size before anything is
parsed; the nesting, the strings and the properties only of a message whose
bytes could break one (most touchpoints are a few hundred bytes, and are not
walked at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json

from motwatch.core.events import CHANNELS, EVENT_TYPES, TOUCHPOINT_ADAPTER, Touchpoint
from motwatch.core.moments import iso_ms
from motwatch.settings import Limits

DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message is not a touchpoint: a machine-readable code and a sentence for people."""

    reason: str
    error: str


# Most telling first: a message that is not JSON says nothing else worth reporting.
_RANK = {
    "invalid_json": 0,
    "unknown_type": 1,
    "missing_field": 2,
    "unknown_channel": 3,
    "bad_timestamp": 4,
    "unsupported_schema_version": 5,
    "bad_property": 6,
    "bad_field": 7,
}

# Every reason a message is dead-lettered for (EVENTS.md §3), and what it means.
REASONS: dict[str, str] = {
    "invalid_json": "not JSON, not UTF-8, or not a JSON object",
    "missing_field": "a required field (or both journey ids) missing",
    "unknown_type": "type is not one of the known types",
    "unknown_channel": "channel is not one of the known channels",
    "bad_timestamp": "occurred_at is not RFC 3339 with an offset",
    "unsupported_schema_version": "schema_version other than 1",
    "bad_property": "a property of the wrong type or value",
    "bad_field": "another field of the wrong type",
    "future_timestamp": "occurred_at further ahead of the message's arrival than max_future_skew_s",
    "too_large": "more bytes than limits.max_message_bytes (the dead letter keeps that many)",
    "too_deep": "objects and arrays nested deeper than limits.max_depth",
    "too_many_properties": "properties has more members than limits.max_properties",
    "string_too_long": "a string (or member name) longer than limits.max_string_length",
    "internal_error": "ingest failed on the message (a bug: the error says where)",
    "processing_error": "the journey agent failed on the message (a bug: the error says where)",
}


def _classify(error: dict) -> Rejection:
    kind = error["type"]
    loc = tuple(str(p) for p in error["loc"])
    # loc is (event type, field, ...) once the type tag was recognised.
    path = loc[1:] if len(loc) > 1 else ()
    field = ".".join(path)
    if kind == "json_invalid" and "recursion limit" in error["msg"]:
        # Only with limits.max_depth above the parser's own limit (200 levels).
        return Rejection(
            "too_deep", f"nested too deep to parse: {error['msg'].removeprefix('Invalid JSON: ')}"
        )
    if kind == "json_invalid":
        return Rejection("invalid_json", f"not valid JSON: {error['msg'].removeprefix('Invalid JSON: ')}")
    if kind in {"dict_type", "model_type"} and not path:
        return Rejection("invalid_json", "expected a JSON object")
    if kind == "union_tag_not_found":
        return Rejection("missing_field", "type is required")
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag", "?")
        return Rejection(
            "unknown_type",
            f"type {tag!r} is not one of the {len(EVENT_TYPES)} known types",
        )
    if kind == "missing_journey":
        return Rejection("missing_field", error["msg"])
    if kind == "missing":
        return Rejection("missing_field", f"{field} is required")
    if path[:1] == ("channel",):
        if kind == "literal_error":
            return Rejection(
                "unknown_channel", f"channel {error['input']!r} is not one of {', '.join(CHANNELS)}"
            )
        return Rejection("bad_field", f"channel: {error['msg']}")
    if path[:1] == ("occurred_at",):
        return Rejection("bad_timestamp", f"occurred_at: {error['msg']} (RFC 3339 with an offset)")
    if path[:1] == ("schema_version",):
        return Rejection("unsupported_schema_version", "schema_version: only 1 is supported")
    if path[:1] == ("properties",):
        return Rejection("bad_property", f"{field}: {error['msg']}")
    return Rejection("bad_field", f"{field or 'event'}: {error['msg']}")


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _over_a_limit(raw: bytes, limits: Limits) -> Rejection | None:
    """The first limit the message breaks, None when it breaks none.

    Bytes that cannot break a limit are not parsed here: a string has no
    more characters than the message has bytes, nesting needs a bracket a
    level, a member a colon. The parse that remains is bounded (pydantic's
    parser stops at 200 levels, with an error, not a RecursionError) and the
    walk keeps its own stack.
    """
    size = len(raw)
    if size > limits.max_message_bytes:
        return Rejection(
            "too_large",
            f"the message is {size:,} bytes; at most {limits.max_message_bytes:,} are accepted "
            f"(limits.max_message_bytes), and kept in its dead letter",
        )
    if (
        size <= limits.max_string_length
        and raw.count(b"{") + raw.count(b"[") <= limits.max_depth
        and raw.count(b":") <= limits.max_properties
        and b"NaN" not in raw
        and b"Infinity" not in raw
    ):
        return None
    try:
        # NaN and Infinity are not JSON (pydantic's own parse takes them, a float field then not).
        value = from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        if "recursion limit" in str(exc):
            return Rejection(
                "too_deep", f"nested too deep to parse ({exc}); limits.max_depth: {limits.max_depth}"
            )
        return Rejection("invalid_json", f"not valid JSON: {exc}")
    props = value.get("properties") if isinstance(value, dict) else None
    if isinstance(props, dict) and len(props) > limits.max_properties:
        return Rejection(
            "too_many_properties",
            f"properties has {len(props):,} members; at most {limits.max_properties} (limits.max_properties)",
        )
    return _walk(value, limits)


def _walk(value: Any, limits: Limits) -> Rejection | None:
    """The first string too long or container too deep in a parsed message, by a walk with its own stack."""
    longest = limits.max_string_length
    deepest = limits.max_depth
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if len(node) > longest:
                return Rejection(
                    "string_too_long",
                    f"a string of {len(node):,} characters ({_shown(node)}); "
                    f"at most {longest:,} (limits.max_string_length)",
                )
            continue
        if isinstance(node, dict):
            items: Any = node.values()
            for name in node:
                if len(name) > longest:
                    return Rejection(
                        "string_too_long",
                        f"a member name of {len(name):,} characters ({_shown(name)}); "
                        f"at most {longest:,} (limits.max_string_length)",
                    )
        elif isinstance(node, list):
            items = node
        else:
            continue
        if depth > deepest:
            return Rejection("too_deep", f"nested deeper than {deepest} (limits.max_depth)")
        stack.extend((item, depth + 1) for item in items)
    return None


def validate_touchpoint(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> Touchpoint | Rejection:
    """Parse and validate one message value against the contract and the limits."""
    over = _over_a_limit(raw, limits)
    if over is not None:
        return over
    try:
        return TOUCHPOINT_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        rejections = [_classify(e) for e in exc.errors(include_url=False)]
        return min(rejections, key=lambda r: _RANK.get(r.reason, 99))
    except UnicodeDecodeError:
        return Rejection("invalid_json", "not valid UTF-8")


def journey_key_of(raw: bytes) -> str | None:
    """The journey key of a message when it validates, for keying on produce."""
    event = validate_touchpoint(raw)
    return event.journey_key if isinstance(event, Touchpoint) else None


def check_arrival(event: Touchpoint, arrived_ms: int | None, max_skew_ms: int) -> Rejection | None:
    """A touchpoint that happened further in the future than ``max_skew_ms`` after it arrived
    (a device with a wrong clock, a test event from year 9999) is rejected: it would move
    event time for every journey of its partition. ``arrived_ms`` None: unknown, accepted."""
    if arrived_ms is None or arrived_ms < 0 or event.occurred_ms <= arrived_ms + max_skew_ms:
        return None
    ahead_s = (event.occurred_ms - arrived_ms) / 1000
    return Rejection(
        "future_timestamp",
        f"occurred_at is {ahead_s:,.0f} s ahead of the time the message arrived ({iso_ms(arrived_ms)}); "
        f"at most {max_skew_ms / 1000:g} s (max_future_skew_s) is accepted",
    )
