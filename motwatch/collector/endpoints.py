"""The vendor endpoints: each reads its request, checks the key, converts, stores, answers as its vendor does.

A 2xx answer means every event of the request is stored: a touchpoint on
the touchpoints topic or a dead letter (see :mod:`motwatch.collector.records`).
A 4xx means nothing of the request was stored. A 503 means Kafka did not
acknowledge: the sender should retry (the worker drops repeated event ids).
An unknown or missing write key is 401 everywhere. Bodies are JSON
whatever their content type (analytics.js and the tracker send text/plain),
gzip or deflate when the request says so.

* Segment: ``POST /v1/{track,page,identify,alias,group,batch}`` and the
  short ``/v1/{t,p,i,a,g,b}``. Key: basic-auth user, or ``writeKey`` in the
  body. 200 ``{"success": true}``, bad messages dead-lettered; 400 with a
  JSON error for a body over 32 KB (a batch: 500 KB, and 32 KB per message
  in it) or not JSON.
* Snowplow: ``POST /com.snowplowanalytics.snowplow/tp2`` (``{"schema",
  "data": [...]}``) and ``GET /i`` (the query string). Key: basic-auth
  user, or the app id ``aid`` of every event. 200 (``ok``, or a 1x1 GIF for
  ``/i``), bad events and a body not JSON dead-lettered; 413 over 1000 KB.
* GA4 Measurement Protocol: ``POST /mp/collect?measurement_id=…&api_secret=…``.
  Key: ``api_secret``. 204, bad events and a body not JSON dead-lettered;
  413 over 130 KB.
* CloudEvents 1.0: ``POST /cloudevents``, structured
  (``application/cloudevents+json``), batch
  (``application/cloudevents-batch+json``) or binary mode (``ce-*``
  headers, percent-decoded). Key: basic-auth user, or a bearer token. 202,
  bad events dead-lettered; 400 for a body not JSON or in none of the three
  modes; 413 over 1000 KB.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from motwatch.adapters import Checked, check_message, check_payload
from motwatch.collector.access import credentials
from motwatch.collector.records import raw_finder
from motwatch.collector.sink import NotStored
from motwatch.collector.state import Collector

KB = 1024
SEGMENT_MESSAGE_BYTES = 32 * KB
SEGMENT_BATCH_BYTES = 500 * KB
SNOWPLOW_BODY_BYTES = 1000 * KB
GA4_BODY_BYTES = 130 * KB
CLOUDEVENTS_BODY_BYTES = 1000 * KB
# Snowplow's answer to a GET: a transparent 1x1 GIF.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_NOT_JSON = object()


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The request's body (decompressed), or None when it holds more than ``limit`` bytes."""
    length = request.content_length
    if length is not None and length > limit and "Content-Encoding" not in request.headers:
        return None
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * KB):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def parsed(body: bytes) -> Any:
    """The body's JSON, or ``_NOT_JSON``."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _NOT_JSON


def _checked(c: Collector, vendor: str, payload: Any, body: bytes, *, kind: str | None = None) -> Checked:
    options: dict[str, Any] = {"limits": c.settings.limits, "max_future_skew_s": c.settings.max_future_skew_s}
    if payload is _NOT_JSON:
        return check_message(vendor, body, c.clock(), c.mappings, **options)
    return check_payload(vendor, payload, c.clock(), c.mappings, kind=kind, **options)


# -- Segment -------------------------------------------------------------------------

SEGMENT_KINDS = {
    "track": "track",
    "t": "track",
    "page": "page",
    "p": "page",
    "identify": "identify",
    "i": "identify",
    "alias": "alias",
    "a": "alias",
    "group": "group",
    "g": "group",
}


def segment_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"success": False, "code": code, "message": message}, status=status)


def _segment_messages(payload: Any) -> list[Any]:
    if isinstance(payload, dict) and isinstance(payload.get("batch"), list):
        return payload["batch"]
    return payload if isinstance(payload, list) else [payload]


def segment(c: Collector, kind: str | None, route: str) -> Handler:
    """A Segment endpoint: ``kind`` is the message type its path implies (None: a batch)."""
    limit = SEGMENT_BATCH_BYTES if kind is None else SEGMENT_MESSAGE_BYTES

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await read_body(request, limit)
        if body is None:
            c.metrics.rejects("segment", "too_large")
            return segment_error(400, "too_large", f"the request body is over {limit // KB} KB")
        key = credentials(request.headers)
        if key is not None and not c.keys.allows(key):
            return segment_error(401, "unauthorized", "unknown write key")
        payload = parsed(body)
        if payload is _NOT_JSON:
            c.metrics.rejects("segment", "invalid_json")
            return segment_error(400, "invalid_json", "the request body is not valid JSON")
        if key is None and isinstance(payload, dict) and isinstance(payload.get("writeKey"), str):
            key = payload["writeKey"]
        if not c.keys.allows(key):
            return segment_error(401, "unauthorized", "unknown or missing write key")
        if kind is None:
            for i, message in enumerate(_segment_messages(payload)):
                if len(orjson.dumps(message)) > SEGMENT_MESSAGE_BYTES:
                    c.metrics.rejects("segment", "too_large")
                    return segment_error(
                        400, "too_large", f"message {i} of the batch is over {SEGMENT_MESSAGE_BYTES // KB} KB"
                    )
        shown = payload
        if isinstance(payload, dict) and "writeKey" in payload:
            shown = {name: value for name, value in payload.items() if name != "writeKey"}
        checked = _checked(c, "segment", payload, body, kind=kind)
        try:
            await c.store(checked, route=route, vendor="segment", raw_of=raw_finder(shown, body))
        except NotStored as exc:
            return segment_error(503, "unavailable", f"not stored: {exc}")
        return web.json_response({"success": True})

    return handle


# -- Snowplow ------------------------------------------------------------------------


def _app_ids(payload: Any) -> list[Any] | None:
    """Every event's ``aid`` of a parsed Snowplow request; None when it holds no events to tell."""
    if isinstance(payload, dict) and "schema" in payload and "e" not in payload:
        events = payload.get("data")
        if not isinstance(events, list) or not events:
            return None
        return [event.get("aid") if isinstance(event, dict) else None for event in events]
    return [payload.get("aid")] if isinstance(payload, dict) else None


def _snowplow_allowed(c: Collector, request: web.Request, payload: Any) -> bool:
    key = credentials(request.headers)
    if key is not None or c.keys.open:
        return c.keys.allows(key)
    app_ids = _app_ids(payload)
    return bool(app_ids) and all(isinstance(a, str) and c.keys.allows(a) for a in app_ids or ())


def snowplow_post(c: Collector, route: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await read_body(request, SNOWPLOW_BODY_BYTES)
        if body is None:
            c.metrics.rejects("snowplow", "too_large")
            return web.Response(status=413, text="request body over 1000 KB")
        payload = parsed(body)
        if not _snowplow_allowed(c, request, payload):
            return web.Response(status=401, text="unknown or missing write key (basic auth, or aid)")
        checked = _checked(c, "snowplow", payload, body)
        raw_of = raw_finder(None if payload is _NOT_JSON else payload, body)
        try:
            await c.store(checked, route=route, vendor="snowplow", raw_of=raw_of)
        except NotStored as exc:
            return web.Response(status=503, text=f"not stored: {exc}")
        return web.Response(text="ok")

    return handle


def snowplow_get(c: Collector, route: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        params = {name: request.query.getone(name) for name in request.query}
        if not _snowplow_allowed(c, request, params):
            return web.Response(status=401, text="unknown or missing write key (basic auth, or aid)")
        checked = _checked(c, "snowplow", params, b"")
        raw = request.query_string.encode()
        try:
            await c.store(checked, route=route, vendor="snowplow", raw_of=lambda _: raw)
        except NotStored as exc:
            return web.Response(status=503, text=f"not stored: {exc}")
        return web.Response(
            body=PIXEL, content_type="image/gif", headers={"Cache-Control": "no-cache, no-store"}
        )

    return handle


# -- GA4 Measurement Protocol -------------------------------------------------------


def ga4(c: Collector, route: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        if not c.keys.allows(request.query.get("api_secret")):
            return web.json_response({"error": "unknown or missing api_secret"}, status=401)
        body = await read_body(request, GA4_BODY_BYTES)
        if body is None:
            c.metrics.rejects("ga4", "too_large")
            return web.json_response({"error": "request body over 130 KB"}, status=413)
        payload = parsed(body)
        checked = _checked(c, "ga4", payload, body)
        raw_of = raw_finder(None if payload is _NOT_JSON else payload, body)
        try:
            await c.store(checked, route=route, vendor="ga4", raw_of=raw_of)
        except NotStored as exc:
            return web.json_response({"error": f"not stored: {exc}"}, status=503)
        return web.Response(status=204)

    return handle


# -- CloudEvents ---------------------------------------------------------------------


def _ce_error(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def cloudevents(c: Collector, route: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        if not c.keys.allows(credentials(request.headers)):
            return web.json_response({"error": "unknown or missing write key"}, status=401)
        body = await read_body(request, CLOUDEVENTS_BODY_BYTES)
        if body is None:
            c.metrics.rejects("cloudevents", "too_large")
            return web.json_response({"error": "request body over 1000 KB"}, status=413)
        extra: dict[str, Any] | None = None
        if "ce-specversion" in request.headers:
            # Binary mode: the attributes in ce-* headers, percent-encoded as the HTTP binding says.
            attributes = {
                name.lower(): unquote(value)
                for name, value in request.headers.items()
                if name.lower().startswith("ce-")
            }
            headers = [*attributes.items()]
            if "Content-Type" in request.headers:
                headers.append(("content-type", request.headers["Content-Type"]))
            extra = {"headers": attributes}
            checked = check_message(
                "cloudevents",
                body,
                c.clock(),
                c.mappings,
                headers=headers,
                limits=c.settings.limits,
                max_future_skew_s=c.settings.max_future_skew_s,
            )
            raw_of = raw_finder(None, body)
        else:
            media = request.content_type
            if media not in (STRUCTURED, BATCH):
                return _ce_error(
                    f"not a CloudEvent: send {STRUCTURED}, {BATCH}, or binary mode (ce-specversion header)"
                )
            payload = parsed(body)
            if payload is _NOT_JSON:
                c.metrics.rejects("cloudevents", "invalid_json")
                return _ce_error("the request body is not valid JSON")
            if media == STRUCTURED and not isinstance(payload, dict):
                c.metrics.rejects("cloudevents", "bad_payload")
                return _ce_error(f"{STRUCTURED} holds one event, a JSON object")
            if media == BATCH and not isinstance(payload, list):
                c.metrics.rejects("cloudevents", "bad_payload")
                return _ce_error(f"{BATCH} holds a JSON array of events")
            checked = _checked(c, "cloudevents", payload, body)
            raw_of = raw_finder(payload, body)
        try:
            await c.store(checked, route=route, vendor="cloudevents", raw_of=raw_of, source_extra=extra)
        except NotStored as exc:
            return web.json_response({"error": f"not stored: {exc}"}, status=503)
        return web.Response(status=202)

    return handle
