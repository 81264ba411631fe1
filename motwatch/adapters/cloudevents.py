"""CloudEvents 1.0 as touchpoints: structured mode (one JSON event), batch mode (an array), binary mode.

An event's ``type`` names the touchpoint: through the CloudEvents table
(``[mapping.cloudevents]``; none built in), else as one of motwatch's own
type names, whole or as its last dot-separated part
(``com.example.touchpoint.checkout_started``). Its ``data`` (JSON) carries
the touchpoint's own fields: ``customer_id``, ``anonymous_id``,
``session_id``, ``channel`` and ``properties``. ``source`` and ``id`` make
the event id, ``time`` the event time. Binary mode is the Kafka binding's:
attributes in ``ce_`` headers (HTTP's ``ce-`` too), the data's media type in
``content-type``, the data in the message body.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson

from motwatch.adapters.base import (
    Converted,
    Refused,
    a_name,
    an_id,
    an_object,
    digest_id,
    each_item,
    iso8601_ms,
    journey_ids,
    kind_of,
    optional_object,
    received_ms,
    shown,
    shown_value,
)
from motwatch.adapters.mapping import DEFAULT_MAPPINGS, Mappings, Rule, own_rule
from motwatch.adapters.touchpoint import properties_of, touchpoint
from motwatch.core.events import RFC3339

Headers = Mapping[str, bytes | str | None] | Iterable[tuple[str, bytes | str | None]]
_PREFIXES = ("ce_", "ce-")


def convert(payload: Any, received_at: datetime, mappings: Mappings = DEFAULT_MAPPINGS) -> Converted:
    """The touchpoints of a structured CloudEvent (an object) or a batch (an array), and the rejections."""
    arrival = received_ms(received_at)
    out = Converted()
    if isinstance(payload, list):
        for i, event in enumerate(payload):
            each_item(out, f"[{i}]", lambda e=event: _structured(e, arrival, mappings))
    else:
        each_item(out, "", lambda: _structured(payload, arrival, mappings))
    return out


def is_binary(headers: Headers | None) -> bool:
    """Whether a message's headers carry a binary-mode CloudEvent (a ``ce_specversion`` header)."""
    return any(name.lower() in ("ce_specversion", "ce-specversion") for name, _ in _items(headers))


def convert_binary(
    headers: Headers, body: bytes, received_at: datetime, mappings: Mappings = DEFAULT_MAPPINGS
) -> Converted:
    """The touchpoint of a binary-mode CloudEvent: attributes from its headers, data from its body."""
    arrival = received_ms(received_at)
    out = Converted()
    each_item(out, "", lambda: _binary(headers, body, arrival, mappings))
    return out


def _items(headers: Headers | None) -> Iterable[tuple[str, Any]]:
    if headers is None:
        return ()
    return headers.items() if isinstance(headers, Mapping) else headers


def _binary(headers: Headers, body: bytes, arrival: int, mappings: Mappings) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for name, value in _items(headers):
        lowered = name.lower()
        if lowered.startswith(_PREFIXES):
            key = lowered[3:]
        elif lowered == "content-type":
            key = "datacontenttype"
        else:
            continue
        if value is None or key in attributes:
            continue
        try:
            attributes[key] = value.decode("utf-8") if isinstance(value, bytes) else value
        except UnicodeDecodeError:
            raise Refused("bad_payload", f"header {name}: not UTF-8") from None
    data = _data_of_bytes(body, attributes.get("datacontenttype"))
    return _event(attributes, data, arrival, mappings)


def is_json(content_type: Any) -> bool:
    """Whether a data content type is JSON (``application/json``, ``text/json``, ``…+json``); absent: JSON."""
    if content_type is None:
        return True
    media = str(content_type).split(";")[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def _data_of_bytes(raw: bytes, content_type: Any) -> Any:
    if not is_json(content_type):
        raise Refused("bad_payload", f"datacontenttype {shown_value(content_type)} is not JSON")
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Refused("bad_payload", "data: not valid JSON (or not UTF-8)") from None


def _structured(raw: Any, arrival: int, mappings: Mappings) -> dict[str, Any]:
    event = an_object(raw, "event")
    content_type = event.get("datacontenttype")
    if "data_base64" in event:
        packed = event["data_base64"]
        if not isinstance(packed, str):
            raise Refused("bad_payload", f"data_base64: expected a string, got {kind_of(packed)}")
        try:
            raw = base64.b64decode(packed, validate=True)
        except (binascii.Error, ValueError):
            raise Refused("bad_payload", "data_base64: not base64") from None
        data = _data_of_bytes(raw, content_type)
    else:
        data = event.get("data")
        if data is not None and not is_json(content_type):
            raise Refused("bad_payload", f"datacontenttype {shown_value(content_type)} is not JSON")
    return _event(event, data, arrival, mappings)


def _rule_of(type_: str, mappings: Mappings) -> Rule:
    found = mappings.find("cloudevents", type_) or own_rule(type_) or own_rule(type_.rsplit(".", 1)[-1])
    if found is None:
        raise Refused(
            "unmapped_event",
            f"type {shown(type_)} has no mapping ([mapping.cloudevents], or a motwatch type name)",
        )
    return found


def occurred_ms(attributes: Mapping[str, Any], data: Mapping[str, Any], arrival: int) -> int:
    """The event's ``time`` (RFC 3339), else its data's ``occurred_at``, else the arrival."""
    for name, value in (("time", attributes.get("time")), ("data.occurred_at", data.get("occurred_at"))):
        if value is None:
            continue
        if not isinstance(value, str) or not RFC3339.match(value):
            raise Refused("bad_timestamp", f"{name}: {shown_value(value)} is not an RFC 3339 timestamp")
        return iso8601_ms(value, name)
    return arrival


def _event(attributes: Mapping[str, Any], data: Any, arrival: int, mappings: Mappings) -> dict[str, Any]:
    version = a_name(attributes.get("specversion"), "specversion")
    if version != "1.0":
        raise Refused("bad_payload", f"specversion {shown(version)}: only 1.0 is supported")
    event_id = a_name(attributes.get("id"), "id")
    source = a_name(attributes.get("source"), "source")
    the_rule = _rule_of(a_name(attributes.get("type"), "type"), mappings)
    data = {} if data is None else an_object(data, "data")
    customer_id = an_id(data.get("customer_id"), "data.customer_id")
    anonymous_id = an_id(data.get("anonymous_id"), "data.anonymous_id")
    journey_ids(customer_id, anonymous_id, "data.customer_id or data.anonymous_id")
    channel = data.get("channel")
    if channel is not None and not isinstance(channel, str):
        raise Refused("bad_payload", f"data.channel: expected a string, got {kind_of(channel)}")
    unique = f"{source}|{event_id}"
    return touchpoint(
        the_rule,
        event_id=unique if len(unique) <= 128 else digest_id("ce", source, event_id),
        occurred_ms=occurred_ms(attributes, data, arrival),
        customer_id=customer_id,
        anonymous_id=anonymous_id,
        session_id=an_id(data.get("session_id"), "data.session_id"),
        channel=channel,
        properties=properties_of(the_rule, data, own=optional_object(data, "properties", "data.properties")),
    )
