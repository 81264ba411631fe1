"""Touchpoints as binary-mode CloudEvents on Kafka: attributes in ``ce_`` headers, the data as the body."""

from __future__ import annotations

from typing import Any

import orjson

SOURCE = "/shop"
TYPE_PREFIX = "com.example.touchpoint."


def as_cloudevent(event: dict[str, Any]) -> tuple[list[tuple[str, bytes]], bytes]:
    """A motwatch touchpoint as a service would emit it: id, type, time as attributes, the rest as data."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(event["event_id"]).encode()),
        ("ce_source", SOURCE.encode()),
        ("ce_type", f"{TYPE_PREFIX}{event['type']}".encode()),
        ("ce_time", str(event["occurred_at"]).encode()),
        ("content-type", b"application/json"),
    ]
    data = {
        k: event[k]
        for k in ("customer_id", "anonymous_id", "session_id", "channel", "properties")
        if k in event
    }
    return headers, orjson.dumps(data)
