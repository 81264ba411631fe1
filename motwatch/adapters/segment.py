"""Segment (and RudderStack) tracking API messages as touchpoints: track, page, identify, alias, batch.

``convert`` takes one message, or a batch (``{"batch": [...], "sentAt",
"context"}`` or a bare array), as parsed from the request body; ``kind``
is the message type the endpoint implies (``/v1/track`` -> ``"track"``)
for a message without a ``type``. How each message maps is listed in
:data:`motwatch.adapters.mapping.FIXED` and the Segment table there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from motwatch.adapters.base import (
    Converted,
    Refused,
    a_name,
    an_id,
    an_object,
    digest_id,
    each_item,
    in_calendar,
    iso8601_ms,
    journey_ids,
    kind_of,
    optional_object,
    received_ms,
    shown,
    skew_corrected,
)
from motwatch.adapters.mapping import DEFAULT_MAPPINGS, Mappings, Rule, own_rule, rule
from motwatch.adapters.touchpoint import properties_of, touchpoint

PAGE = rule("page_view")
IDENTIFY = rule("identify")
# Fields of a message that say how it travelled, not what happened: left out of a derived event id.
_TRANSPORT = frozenset({"sentAt", "receivedAt", "writeKey"})


def convert(
    payload: Any, received_at: datetime, mappings: Mappings = DEFAULT_MAPPINGS, *, kind: str | None = None
) -> Converted:
    """The touchpoints of one Segment message or batch received at ``received_at``, and its rejections."""
    arrival = received_ms(received_at)
    out = Converted()
    if isinstance(payload, dict) and "batch" in payload:
        try:
            batch, context = _batch_parts(payload)
        except Refused as refused:
            out.reject(refused.reason, refused.error)
            return out
        sent_at = payload.get("sentAt")
        for i, message in enumerate(batch):
            each_item(
                out, f"batch[{i}]", lambda m=message: _message(m, arrival, mappings, None, context, sent_at)
            )
    elif isinstance(payload, list):
        for i, message in enumerate(payload):
            each_item(out, f"[{i}]", lambda m=message: _message(m, arrival, mappings, kind, {}, None))
    else:
        each_item(out, "", lambda: _message(payload, arrival, mappings, kind, {}, None))
    return out


def _batch_parts(payload: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    batch = payload["batch"]
    if not isinstance(batch, list):
        raise Refused("bad_payload", f"batch: expected an array, got {kind_of(batch)}")
    return batch, optional_object(payload, "context", "context")


def merged_context(outer: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """A message's context over its batch's: the message's members win, objects merged one level down."""
    merged = {**outer, **own}
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(outer.get(key), dict):
            merged[key] = {**outer[key], **value}
    return merged


def occurred_ms(message: dict[str, Any], arrival: int, batch_sent_at: Any) -> int:
    """When the message's event happened, corrected for the device's clock as Segment does.

    ``receivedAt - (sentAt - originalTimestamp)`` when ``sentAt`` is given
    (``timestamp`` standing in for a missing ``originalTimestamp``): the
    device's clock error cancels out. Else ``timestamp`` (or
    ``originalTimestamp``) as given, else the arrival. ``receivedAt`` is the
    arrival unless the message carries one (a message relayed by Segment).
    """
    timestamp, original = message.get("timestamp"), message.get("originalTimestamp")
    sent = message.get("sentAt", batch_sent_at)
    relayed = message.get("receivedAt")
    received = arrival if relayed is None else iso8601_ms(relayed, "receivedAt")
    if timestamp is None and original is None:
        return received
    if sent is None:
        if timestamp is not None:
            return iso8601_ms(timestamp, "timestamp")
        return iso8601_ms(original, "originalTimestamp")
    device = (
        iso8601_ms(original, "originalTimestamp")
        if original is not None
        else iso8601_ms(timestamp, "timestamp")
    )
    corrected = skew_corrected(received, iso8601_ms(sent, "sentAt"), device)
    return in_calendar(corrected, "receivedAt - (sentAt - timestamp)")


def _message(
    raw: Any,
    arrival: int,
    mappings: Mappings,
    kind: str | None,
    batch_context: dict[str, Any],
    batch_sent_at: Any,
) -> dict[str, Any]:
    message = an_object(raw, "message")
    type_ = a_name(message.get("type", kind), "type")
    customer_id = an_id(message.get("userId"), "userId")
    anonymous_id = an_id(message.get("anonymousId"), "anonymousId")
    properties = optional_object(message, "properties", "properties")
    context = merged_context(batch_context, optional_object(message, "context", "context"))
    the_rule = _rule_of(type_, message, mappings, customer_id, anonymous_id)
    if type_ == "alias":
        anonymous_id = an_id(message.get("previousId"), "previousId")
        if anonymous_id is None or customer_id is None:
            raise Refused("missing_field", "alias needs previousId and userId")
    journey_ids(customer_id, anonymous_id, "userId or anonymousId")
    page = context.get("page") if isinstance(context.get("page"), dict) else {}
    defaults = {"url": page.get("url"), "referrer": page.get("referrer")}
    event_id = an_id(message.get("messageId"), "messageId")
    if event_id is None:
        given = {k: v for k, v in message.items() if k not in _TRANSPORT}
        event_id = digest_id("segment", type_, given)
    return touchpoint(
        the_rule,
        event_id=event_id,
        occurred_ms=occurred_ms(message, arrival, batch_sent_at),
        customer_id=customer_id,
        anonymous_id=anonymous_id,
        session_id=an_id(context.get("sessionId"), "context.sessionId"),
        properties=properties_of(the_rule, properties, defaults=defaults),
    )


def _rule_of(
    type_: str, message: dict[str, Any], mappings: Mappings, customer_id: str | None, anonymous_id: str | None
) -> Rule:
    if type_ == "track":
        event = a_name(message.get("event"), "event")
        found = mappings.find("segment", event) or own_rule(event)
        if found is None:
            raise Refused(
                "unmapped_event",
                f"track event {shown(event)} has no mapping (built in, [mapping.segment], "
                "or one of motwatch's type names)",
            )
        return found
    if type_ == "page":
        return PAGE
    if type_ == "alias":
        return IDENTIFY
    if type_ == "identify":
        if customer_id is None or anonymous_id is None:
            raise Refused(
                "no_touchpoint", "an identify with only one of userId and anonymousId joins no journeys"
            )
        return IDENTIFY
    if type_ == "group":
        raise Refused("no_touchpoint", "a group call ties a user to an account; it is no touchpoint")
    raise Refused("unmapped_event", f"Segment {shown(type_)} messages are not mapped")
