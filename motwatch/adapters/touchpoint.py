"""A touchpoint dict (EVENTS.md §1) from a rule and a vendor event's ids, time and properties.

Properties are taken, for each property the rule's type has, from the
rule's fixed value, else the first of its vendor paths present, else the
vendor property of the same name, else the adapter's default (a page URL
from the vendor's context); anything else the vendor sent is left out.
Vendors write numbers as strings (Snowplow sends nothing else) and ids as
numbers: a value is brought to the JSON type the property has when that
is lossless, and otherwise left for the validator to reject, naming it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from motwatch.adapters.base import Refused, dig, iso_ms, kind_of
from motwatch.adapters.mapping import Rule
from motwatch.core.events import PROPERTIES_OF_TYPE

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", re.ASCII)


def _json_kind(schema: dict[str, Any]) -> str:
    for option in schema.get("anyOf", [schema]):
        if option.get("type") not in (None, "null"):
            return str(option["type"])
    return "string"


# Each type's properties and the JSON type of each ("string", "integer", "number", "boolean").
PROPERTY_KINDS: dict[str, dict[str, str]] = {
    type_: {name: _json_kind(s) for name, s in model.model_json_schema().get("properties", {}).items()}
    for type_, model in PROPERTIES_OF_TYPE.items()
}


def coerced(value: Any, kind: str) -> Any:
    """``value`` as the JSON type ``kind`` when that loses nothing (``"2"`` -> 2 for a number), else as is."""
    if isinstance(value, bool):
        return value
    if kind == "string" and isinstance(value, int):
        return str(value)
    if kind == "string" and isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    if kind in ("integer", "number") and isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value)
        if kind == "integer" and number.is_integer():
            return int(number)
        return number if math.isfinite(number) else value
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _first(source: Mapping[str, Any], paths: tuple[str, ...]) -> Any:
    for path in paths:
        value = dig(source, path)
        if value is not None:
            return value
    return None


def properties_of(
    r: Rule,
    source: Mapping[str, Any],
    own: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The touchpoint properties ``r`` reads from a vendor event.

    ``source``: what the rule's paths are read in; ``own``: where a property
    of the same name is looked for (default: ``source``); ``defaults``: the
    adapter's values for properties the event does not give.
    """
    own = source if own is None else own
    out: dict[str, Any] = {}
    for name, kind in PROPERTY_KINDS[r.type].items():
        if name in r.fixed:
            value = r.fixed[name]
        elif name in r.properties:
            value = _first(source, r.properties[name])
        else:
            value = own.get(name)
        if value is None and defaults:
            value = defaults.get(name)
        if value is None:
            continue
        if isinstance(value, dict | list):
            raise Refused("bad_property", f"properties.{name}: the vendor sent {kind_of(value)}")
        out[name] = coerced(value, kind)
    return out


def touchpoint(
    r: Rule,
    *,
    event_id: str,
    occurred_ms: int,
    customer_id: str | None,
    anonymous_id: str | None,
    properties: dict[str, Any],
    session_id: str | None = None,
    channel: str | None = None,
) -> dict[str, Any]:
    """The touchpoint dict of EVENTS.md §1, fields in the contract's order, absent ones left out."""
    event: dict[str, Any] = {"event_id": event_id, "occurred_at": iso_ms(occurred_ms)}
    if customer_id is not None:
        event["customer_id"] = customer_id
    if anonymous_id is not None:
        event["anonymous_id"] = anonymous_id
    if session_id is not None:
        event["session_id"] = session_id
    event["channel"] = channel or r.channel
    event["type"] = r.type
    event["properties"] = properties
    return event
