"""Google Analytics 4 Measurement Protocol requests as touchpoints.

``convert`` takes the parsed JSON body of one request: ``{"client_id" (or
"app_instance_id"), "user_id"?, "timestamp_micros"?, "events": [{"name",
"params"}, ...]}``. GA4 events carry no id, so each touchpoint's
``event_id`` is derived from the request: the ids, the event's index, name,
params and its time. A resend of a request that gives ``timestamp_micros``
repeats the ids (the repeat is then dropped as a duplicate); without one,
the time is the arrival, so a resend counts as new events.
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
    integer_of,
    journey_ids,
    kind_of,
    optional_object,
    received_ms,
    shown,
)
from motwatch.adapters.mapping import DEFAULT_MAPPINGS, Mappings, own_rule
from motwatch.adapters.touchpoint import properties_of, touchpoint


def convert(body: Any, received_at: datetime, mappings: Mappings = DEFAULT_MAPPINGS) -> Converted:
    """The touchpoints of one Measurement Protocol request received at ``received_at``, and its rejections."""
    arrival = received_ms(received_at)
    out = Converted()
    try:
        request, events = _request(body, arrival)
    except Refused as refused:
        out.reject(refused.reason, refused.error)
        return out
    for i, event in enumerate(events):
        each_item(out, f"events[{i}]", lambda e=event, i=i: _event(e, i, request, mappings))
    return out


def _micros_ms(value: Any, name: str) -> int:
    return in_calendar(integer_of(value, name) // 1000, name)


def _request(body: Any, arrival: int) -> tuple[dict[str, Any], list[Any]]:
    """The request's ids and time, and its events; a refusal of the whole request when they are unusable."""
    body = an_object(body, "request")
    client_id = an_id(body.get("client_id"), "client_id") or an_id(
        body.get("app_instance_id"), "app_instance_id"
    )
    user_id = an_id(body.get("user_id"), "user_id")
    journey_ids(user_id, client_id, "client_id, app_instance_id or user_id")
    events = body.get("events")
    if events is None:
        raise Refused("missing_field", "events is required")
    if not isinstance(events, list):
        raise Refused("bad_payload", f"events: expected an array, got {kind_of(events)}")
    stamp = body.get("timestamp_micros")
    at = arrival if stamp is None else _micros_ms(stamp, "timestamp_micros")
    return {"client_id": client_id, "user_id": user_id, "ms": at}, events


def _event(raw: Any, index: int, request: dict[str, Any], mappings: Mappings) -> dict[str, Any]:
    event = an_object(raw, "event")
    name = a_name(event.get("name"), "name")
    params = optional_object(event, "params", "params")
    stamp = event.get("timestamp_micros", params.get("timestamp_micros"))
    occurred = request["ms"] if stamp is None else _micros_ms(stamp, "timestamp_micros")
    the_rule = mappings.find("ga4", name) or own_rule(name)
    if the_rule is None:
        raise Refused("unmapped_event", f"event {shown(name)} has no mapping")
    event_id = digest_id("ga4", request["client_id"], request["user_id"], index, occurred, name, params)
    return touchpoint(
        the_rule,
        event_id=event_id,
        occurred_ms=occurred,
        customer_id=request["user_id"],
        anonymous_id=request["client_id"],
        session_id=an_id(params.get("session_id"), "params.session_id"),
        properties=properties_of(the_rule, params),
    )
