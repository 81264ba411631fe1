"""What a vendor adapter returns: touchpoint events, or rejections with a reason code and a sentence.

Every adapter converts one vendor message (a single event or a batch) into a
:class:`Converted`: the touchpoints it made (dicts shaped as EVENTS.md §1)
and a :class:`Rejected` for every vendor event it could not make one of.
Nothing is dropped silently: each vendor event ends in exactly one of the
two lists. The helpers here (times, ids, digging into payloads) are shared
by the adapters; they raise :class:`Refused`, which the adapters turn into a
rejection of the one event being converted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from motwatch.core.events import FIRST_MS, LAST_MS
from motwatch.core.validation import Rejection

# Every reason an adapter rejects a vendor event for, and what it means. The
# validator's own reasons (motwatch/core/validation.py REASONS) follow for the
# events an adapter made that the contract does not accept.
REASONS: dict[str, str] = {
    "invalid_json": "the message body is not JSON (or not UTF-8)",
    "bad_payload": "not the vendor's documented shape: a field of the wrong type, undecodable base64 or "
    "embedded JSON, a CloudEvents specversion other than 1.0 or data that is not JSON",
    "missing_field": "a field the conversion needs is absent: the event id, the event name, any journey id",
    "bad_timestamp": "a vendor timestamp that cannot be read, or a time outside the years 0001–9999 "
    "once corrected for the device's clock",
    "bad_property": "a vendor property a touchpoint property is read from is an object or an array",
    "unmapped_event": "an event name or kind with no mapping: not in the built-in table, not in "
    "[mapping.<vendor>] and not one of motwatch's own type names",
    "no_touchpoint": "a well-formed vendor message that carries no touchpoint (a Snowplow page ping, a "
    "Segment identify with one id, a Segment group): counted, not an error of the sender",
    "internal_error": "the adapter itself failed on the message (a bug: the error says where)",
}

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WHOLE = re.compile(r"-?[0-9]{1,30}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Rejected:
    """One vendor event that is not a touchpoint: a reason code (``REASONS``), a sentence, and where it was.

    ``item`` locates the event in the vendor message (``batch[2]``,
    ``events[0]``, ``data[1]``; empty: the whole message).
    """

    reason: str
    error: str
    item: str = ""

    def describe(self) -> str:
        """The sentence with the event's place in the message, for a dead letter or a log line."""
        return f"{self.item}: {self.error}" if self.item else self.error

    def as_rejection(self) -> Rejection:
        """As the core's rejection (the reason, the sentence with the place): what a dead letter takes."""
        return Rejection(self.reason, self.describe())


@dataclass(slots=True)
class Converted:
    """The touchpoints made from one vendor message, and the vendor events rejected, in message order.

    ``items[i]`` is where ``events[i]`` came from in the message.
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    rejections: list[Rejected] = field(default_factory=list)

    def add(self, event: dict[str, Any], item: str = "") -> None:
        """Keep a touchpoint made from the vendor event at ``item``."""
        self.events.append(event)
        self.items.append(item)

    def reject(self, reason: str, error: str, item: str = "") -> None:
        """Keep the rejection of the vendor event at ``item``."""
        self.rejections.append(Rejected(reason, error, item))

    def extend(self, other: Converted) -> None:
        """Append another conversion's events and rejections to this one."""
        self.events.extend(other.events)
        self.items.extend(other.items)
        self.rejections.extend(other.rejections)


class Refused(Exception):
    """Raised inside an adapter when the vendor event being converted cannot be a touchpoint."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error


def each_item(
    out: Converted, item: str, make: Callable[[], Iterable[dict[str, Any]] | dict[str, Any]]
) -> None:
    """Run ``make`` for the vendor event at ``item``: its touchpoint(s) go to ``out``, or its refusal does.

    A failure of the adapter itself rejects that one event as ``internal_error``, the others go on.
    """
    try:
        made = make()
    except Refused as refused:
        out.reject(refused.reason, refused.error, item)
        return
    except Exception as exc:  # a bug must not lose the message, nor its neighbours in a batch
        out.reject("internal_error", f"the adapter failed: {type(exc).__name__}: {exc}", item)
        return
    for event in [made] if isinstance(made, dict) else made:
        out.add(event, item)


# -- times ---------------------------------------------------------------------------


def received_ms(received_at: datetime) -> int:
    """The caller's arrival time in ms since the epoch; it must carry a time zone."""
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError("received_at must be an aware datetime")
    return (received_at - EPOCH) // timedelta(milliseconds=1)


def iso_ms(ms: int) -> str:
    """RFC 3339 in UTC with milliseconds for any time in the years 0001–9999, as the contract writes them."""
    when = EPOCH + timedelta(milliseconds=ms)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def in_calendar(ms: int, what: str) -> int:
    """``ms`` when UTC can write it (years 0001–9999), else a refusal naming ``what``."""
    if not FIRST_MS <= ms <= LAST_MS:
        raise Refused("bad_timestamp", f"{what} lies outside the years 0001–9999")
    return ms


def iso8601_ms(value: Any, name: str) -> int:
    """An ISO 8601 date-time string in ms since the epoch (no offset: UTC), else a refusal naming ``name``."""
    if not isinstance(value, str):
        raise Refused("bad_timestamp", f"{name}: expected an ISO 8601 date-time string, got {kind_of(value)}")
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Refused("bad_timestamp", f"{name}: {shown(value)} is not an ISO 8601 date-time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        ms = (when - EPOCH) // timedelta(milliseconds=1)
    except OverflowError:
        raise Refused("bad_timestamp", f"{name}: {shown(value)} lies outside the years 0001–9999") from None
    return in_calendar(ms, name)


def integer_of(value: Any, name: str) -> int:
    """A whole number given as a JSON integer or a string of digits (vendors send both), else a refusal."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return int(value.strip())
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    raise Refused("bad_timestamp", f"{name}: expected a whole number, got {shown_value(value)}")


def skew_corrected(received: int, device_sent: int, device_created: int) -> int:
    """When it happened by the receiver's clock: the arrival less how long the device held it.

    ``received - (device_sent - device_created)``: a device clock off by any
    amount gives the same result, as both device times are off alike.
    """
    return received - (device_sent - device_created)


# -- values --------------------------------------------------------------------------


def kind_of(value: Any) -> str:
    """The JSON kind of a value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def shown(text: str) -> str:
    """A string quoted for an error message, cut at 40 characters."""
    return repr(text if len(text) <= 40 else text[:40] + "…")


def shown_value(value: Any) -> str:
    """A value for an error message: strings quoted and cut, others by their kind."""
    return shown(value) if isinstance(value, str) else kind_of(value)


def an_object(value: Any, name: str) -> dict[str, Any]:
    """``value`` when it is a JSON object, else a ``bad_payload`` refusal naming ``name``."""
    if not isinstance(value, dict):
        raise Refused("bad_payload", f"{name}: expected an object, got {kind_of(value)}")
    return value


def optional_object(container: Mapping[str, Any], key: str, name: str) -> dict[str, Any]:
    """The object at ``container[key]`` ({} when absent or null), else a ``bad_payload`` refusal."""
    value = container.get(key)
    return {} if value is None else an_object(value, name)


def an_id(value: Any, name: str) -> str | None:
    """An identifier given as a non-empty string or an integer (as a string); None when absent or empty."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise Refused("bad_payload", f"{name}: expected a string, got {kind_of(value)}")


def a_name(value: Any, name: str) -> str:
    """A required, non-empty string (an event name, a type), else a refusal naming ``name``."""
    if value is None or value == "":
        raise Refused("missing_field", f"{name} is required")
    if not isinstance(value, str):
        raise Refused("bad_payload", f"{name}: expected a string, got {kind_of(value)}")
    return value


def dig(value: Any, path: str) -> Any:
    """The value at a dotted path (``items.0.item_id``: member, array index, member); None if absent."""
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def digest_id(prefix: str, *parts: Any) -> str:
    """A deterministic event id from the parts (JSON, keys sorted): the same parts give the same id."""
    try:
        text = orjson.dumps(list(parts), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:
        raise Refused("bad_payload", f"cannot derive an event id from the message: {exc}") from None
    return f"{prefix}-{hashlib.blake2b(text, digest_size=16).hexdigest()}"


def journey_ids(customer_id: str | None, anonymous_id: str | None, names: str) -> None:
    """Refuse an event with neither journey id; ``names`` says which vendor fields were looked at."""
    if customer_id is None and anonymous_id is None:
        raise Refused("missing_field", f"one of {names} is required")
