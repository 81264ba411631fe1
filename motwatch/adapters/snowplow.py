"""Snowplow tracker protocol events as touchpoints: a GET ``/i`` query, or a POST ``payload_data`` body.

``convert`` takes either the parsed query string of one event (a mapping of
parameter to string) or the parsed JSON of a POST (``{"schema":
"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
"data": [event, ...]}``), each event's parameters as the tracker protocol
names them. How each event kind maps is listed in
:data:`motwatch.adapters.mapping.FIXED` and the Snowplow table there.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from motwatch.adapters.base import (
    Converted,
    Refused,
    a_name,
    each_item,
    in_calendar,
    integer_of,
    journey_ids,
    kind_of,
    received_ms,
    shown,
    skew_corrected,
)
from motwatch.adapters.mapping import DEFAULT_MAPPINGS, Mappings, Rule, own_rule, rule
from motwatch.adapters.touchpoint import properties_of, touchpoint

PAGE_VIEW = rule("page_view", url="url", referrer="refr")
TRANSACTION = rule("order_completed", "checkout", order_id="tr_id", value="tr_tt", currency="tr_cu")
CLIENT_SESSION = "com.snowplowanalytics.snowplow/client_session"
# Event kinds that are well formed but carry no touchpoint, and why.
NO_TOUCHPOINT = {
    "pp": "a page ping (e=pp) only says the page is still open; one ping alone cannot tell a dwell time",
    "ti": "a transaction item (e=ti) belongs to its transaction (e=tr), which is the touchpoint",
}


def convert(payload: Any, received_at: datetime, mappings: Mappings = DEFAULT_MAPPINGS) -> Converted:
    """The touchpoints of one Snowplow request received at ``received_at``, and its rejections."""
    arrival = received_ms(received_at)
    out = Converted()
    if isinstance(payload, Mapping) and "schema" in payload and "e" not in payload:
        events = payload.get("data")
        if not isinstance(events, list):
            out.reject("bad_payload", f"data: expected an array of events, got {kind_of(events)}")
            return out
        for i, params in enumerate(events):
            each_item(out, f"data[{i}]", lambda p=params: _event(p, arrival, mappings))
    else:
        each_item(out, "", lambda: _event(payload, arrival, mappings))
    return out


class _Params:
    """One event's tracker parameters: strings (a number is taken as its text), absent or empty as None."""

    def __init__(self, raw: Any) -> None:
        if not isinstance(raw, Mapping):
            raise Refused("bad_payload", f"event: expected an object of parameters, got {kind_of(raw)}")
        self.raw = raw

    def get(self, name: str) -> str | None:
        value = self.raw.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise Refused("bad_payload", f"{name}: expected a string, got {kind_of(value)}")

    def as_dict(self, names: tuple[str, ...]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in names:
            value = self.get(name)
            if value is not None:
                out[name] = value
        return out


def self_describing(params: _Params, plain: str, encoded: str) -> Any:
    """The JSON of a parameter sent plain (``ue_pr``, ``co``) or as URL-safe base64 (``ue_px``, ``cx``)."""
    text = params.get(plain)
    name = plain
    if text is None:
        name = encoded
        packed = params.get(encoded)
        if packed is None:
            return None
        try:
            # Trackers send the URL-safe alphabet, mostly unpadded; some the standard one.
            packed = packed.strip().replace("+", "-").replace("/", "_").rstrip("=")
            data = base64.b64decode(packed + "=" * (-len(packed) % 4), altchars=b"-_", validate=True)
            text = data.decode("utf-8")
        except (binascii.Error, ValueError):
            raise Refused("bad_payload", f"{encoded}: not base64 of UTF-8 text") from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Refused("bad_payload", f"{name}: not valid JSON") from None


def schema_key(envelope: Any, name: str) -> tuple[str, dict[str, Any]]:
    """``("<vendor>/<name>", data)`` of a self-describing JSON ``{"schema": "iglu:…", "data": {…}}``."""
    if not isinstance(envelope, dict):
        raise Refused("bad_payload", f"{name}: expected a self-describing object, got {kind_of(envelope)}")
    schema, data = envelope.get("schema"), envelope.get("data")
    if not isinstance(schema, str) or not schema.startswith("iglu:") or schema.count("/") < 3:
        raise Refused("bad_payload", f"{name}.schema: expected an iglu: schema URI")
    if not isinstance(data, dict):
        raise Refused("bad_payload", f"{name}.data: expected an object, got {kind_of(data)}")
    vendor, event = schema.removeprefix("iglu:").split("/")[:2]
    return f"{vendor}/{event}", data


def client_session(params: _Params) -> dict[str, Any]:
    """The client_session context's data (mobile trackers' user and session ids), {} when not sent."""
    contexts = self_describing(params, "co", "cx")
    if contexts is None:
        return {}
    if not isinstance(contexts, dict) or not isinstance(contexts.get("data"), list):
        raise Refused("bad_payload", "cx: expected a contexts object with a data array")
    for i, entity in enumerate(contexts["data"]):
        key, data = schema_key(entity, f"cx.data[{i}]")
        if key == CLIENT_SESSION:
            return data
    return {}


def occurred_ms(params: _Params, arrival: int) -> int:
    """Snowplow's derived timestamp: ``ttm`` when the tracker set it, else the collector's time less
    how long the device held the event (``stm - dtm``), else the collector's (the arrival)."""
    times = {name: integer_of(params.get(name), name) for name in ("ttm", "dtm", "stm") if params.get(name)}
    if "ttm" in times:
        return in_calendar(times["ttm"], "ttm")
    if "dtm" in times and "stm" in times:
        return in_calendar(skew_corrected(arrival, times["stm"], times["dtm"]), "collector - (stm - dtm)")
    return arrival


def _event(raw: Any, arrival: int, mappings: Mappings) -> dict[str, Any]:
    params = _Params(raw)
    kind = a_name(params.get("e"), "e")
    event_id = params.get("eid")
    if event_id is None:
        raise Refused("missing_field", "eid is required")
    session = client_session(params)
    customer_id = params.get("uid")
    anonymous_id = params.get("duid") or _text(session.get("userId"))
    journey_ids(customer_id, anonymous_id, "uid, duid or the client_session context's userId")
    session_id = params.get("sid") or _text(session.get("sessionId"))
    occurred = occurred_ms(params, arrival)
    defaults = {"url": params.get("url"), "referrer": params.get("refr")}
    the_rule, source = _rule_and_source(kind, params, mappings)
    return touchpoint(
        the_rule,
        event_id=event_id,
        occurred_ms=occurred,
        customer_id=customer_id,
        anonymous_id=anonymous_id,
        session_id=session_id,
        properties=properties_of(the_rule, source, defaults=defaults),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _rule_and_source(kind: str, params: _Params, mappings: Mappings) -> tuple[Rule, dict[str, Any]]:
    if kind == "pv":
        return PAGE_VIEW, params.as_dict(("url", "refr"))
    if kind == "tr":
        return TRANSACTION, params.as_dict(("tr_id", "tr_tt", "tr_cu"))
    if kind in NO_TOUCHPOINT:
        raise Refused("no_touchpoint", NO_TOUCHPOINT[kind])
    if kind == "ue":
        envelope = self_describing(params, "ue_pr", "ue_px")
        if envelope is None:
            raise Refused("missing_field", "ue_pr or ue_px is required for e=ue")
        _, inner = schema_key(envelope, "ue")
        key, data = schema_key(inner, "ue.data")
        found = mappings.find("snowplow", key)
        if found is None:
            raise Refused("unmapped_event", f"self-describing event {shown(key)} has no mapping")
        return found, data
    if kind == "se":
        category, action = params.get("se_ca"), a_name(params.get("se_ac"), "se_ac")
        name = f"{category}/{action}"
        found = mappings.find("snowplow", name) or own_rule(action)
        if found is None:
            raise Refused("unmapped_event", f"structured event {shown(name)} has no mapping")
        fields = {"category": category, "action": action, "label": params.get("se_la")}
        fields |= {"property": params.get("se_pr"), "value": params.get("se_va")}
        return found, {k: v for k, v in fields.items() if v is not None}
    raise Refused("unmapped_event", f"Snowplow events of kind e={shown(kind)} are not mapped")
