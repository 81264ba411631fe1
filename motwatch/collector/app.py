"""The collector's aiohttp application: the vendor endpoints, the tracker, /health, /metrics, and CORS.

Every answer is counted by route name and status class, and carries the
CORS headers its origin is allowed (``cors_origins``); a preflight
(``OPTIONS`` with ``Access-Control-Request-Method``) to an endpoint is
answered 204 for an allowed origin, 403 for another. With the shop on, a
``GET`` of a path nobody serves is answered with the shop's 404 page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from motwatch.collector import endpoints
from motwatch.collector.state import Collector
from motwatch.collector.static import Static, tracker_dir

log = logging.getLogger("motwatch.collector")
COLLECTOR = web.AppKey("collector", Collector)
PREFLIGHT = "preflight"
Middleware = Callable[[web.Request, endpoints.Handler], Awaitable[web.StreamResponse]]
UNMATCHED = "unmatched"
SNOWPLOW_POST_PATH = "/com.snowplowanalytics.snowplow/tp2"
CLOUDEVENTS_PATH = "/cloudevents"
# Segment's paths: the message type each implies, and the route name metrics count it under.
SEGMENT_PATHS = {f"/v1/{name}": kind for name, kind in endpoints.SEGMENT_KINDS.items()}
SEGMENT_PATHS |= {"/v1/batch": None, "/v1/b": None}


def _segment_route(kind: str | None) -> str:
    return f"segment_{kind or 'batch'}"


def build_app(collector: Collector, *, shop: bool = False) -> web.Application:
    """The application serving ``collector``; ``shop``: also the demo shop under /shop/."""
    static = Static(tracker_dir(), shop=shop)
    post_paths = frozenset([*SEGMENT_PATHS, SNOWPLOW_POST_PATH, "/mp/collect", CLOUDEVENTS_PATH])
    app = web.Application(middlewares=[_answers(collector, static, post_paths)])
    app[COLLECTOR] = collector
    add = app.router.add_route
    for path, kind in SEGMENT_PATHS.items():
        route = _segment_route(kind)
        add("POST", path, endpoints.segment(collector, kind, route), name=f"{route}:{path.rsplit('/', 1)[1]}")
    add("POST", SNOWPLOW_POST_PATH, endpoints.snowplow_post(collector, "snowplow_tp2"), name="snowplow_tp2")
    add("GET", "/i", endpoints.snowplow_get(collector, "snowplow_i"), name="snowplow_i")
    add("POST", "/mp/collect", endpoints.ga4(collector, "ga4_collect"), name="ga4_collect")
    add("POST", CLOUDEVENTS_PATH, endpoints.cloudevents(collector, "cloudevents"), name="cloudevents")
    add("GET", "/motwatch.js", static.serve_script, name="tracker")
    add("GET", "/health", _health, name="health")
    add("GET", "/metrics", _metrics, name="metrics")
    if shop:
        add("GET", "/", static.to_shop, name="shop_root")
        add("GET", "/shop", static.to_shop, name="shop_redirect")
        add("GET", "/shop/", static.serve_page, name="shop")
        add("GET", "/shop/{name}", static.serve_page, name="shop_page")
    return app


def route_name(request: web.Request) -> str:
    """The route's name as metrics count it (``segment_track`` for /v1/track and /v1/t)."""
    name = request.match_info.route.name
    return name.split(":", 1)[0] if name else UNMATCHED


def _answers(collector: Collector, static: Static, post_paths: frozenset[str]) -> Middleware:
    @web.middleware
    async def answer(request: web.Request, handler: endpoints.Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response = _preflight(collector, request, origin, post_paths)
            collector.metrics.answered(PREFLIGHT, response.status)
            return response
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # the router's 404 and 405
            if exc.status == 404 and static.shop and request.method == "GET":
                response = static.not_found()
            else:
                response = web.Response(status=exc.status, text=exc.text, headers=exc.headers)
        except web.RequestPayloadError:  # a body that cannot be read: gzip that is not, cut short
            response = web.json_response({"error": "the request body cannot be read"}, status=400)
        except Exception:  # a bug: answered 500 and counted, with the traceback in the log
            log.exception("%s %s failed", request.method, route_name(request))
            response = web.json_response({"error": "internal error"}, status=500)
        response.headers.update(collector.cors.headers(origin))
        collector.metrics.answered(route_name(request), response.status)
        return response

    return answer


def _preflight(
    collector: Collector, request: web.Request, origin: str | None, post_paths: frozenset[str]
) -> web.Response:
    if request.path not in post_paths:
        return web.Response(status=404, text="not found")
    headers = collector.cors.preflight_headers(origin, request.headers.get("Access-Control-Request-Headers"))
    if headers is None:
        return web.Response(status=403, text="origin not allowed (cors_origins)")
    return web.Response(status=204, headers=headers)


async def _health(request: web.Request) -> web.Response:
    if await request.app[COLLECTOR].sink.healthy():
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "kafka unreachable"}, status=503)


async def _metrics(request: web.Request) -> web.Response:
    registry = request.app[COLLECTOR].metrics.registry
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
