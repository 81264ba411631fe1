"""The worker's web server on ``web_bind:web_port``: ``/metrics``, ``/health`` and the routes it is given.

Faust's own web server stays off (``streams/app.py``): its pages read tables
(journeys: customer state), the cluster's routing, the sensors' statistics
and the service graph, none of which is for the network. This one serves the
Prometheus registry and a health answer, and the worker gives it
``/journeys/{key}`` (``streams/journey_view.py``: one journey's live state,
for local callers only). Its socket is bound before the app is built
(:func:`motwatch.listening.listen_socket`), so that ``web_port = 0`` takes a free port
and a taken port stops the start in one line; the worker then logs the URL
it serves and writes it to :func:`url_file`, where ``motwatch status`` finds
a worker whose settings say port 0.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics

from motwatch.listening import url_of
from motwatch.settings import Settings

log = logging.getLogger("motwatch.web")

# What /health says, by the worker's state; only "ok" answers 200.
HEALTHY = "ok"


def url_file(settings: Settings) -> Path:
    """Where a running worker keeps the URL of its metrics: ``<data_dir>/<worker app id>/web.url``."""
    return Path(settings.data_dir) / settings.worker_app_id / "web.url"


def wants_openmetrics(accept: str) -> bool:
    """Whether an HTTP Accept header lists ``application/openmetrics-text`` (not with ``q=0``)."""
    for item in accept.split(","):
        media_type, *params = (part.strip().lower() for part in item.split(";"))
        if media_type == "application/openmetrics-text" and _weight(params) > 0:
            return True
    return False


def _weight(params: list[str]) -> float:
    """The ``q`` of a media range's parameters (1 without one, 0 for one that is not a number)."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


class WebServer(Service):
    """``/metrics`` (the registry), ``/health`` (``health()``: 200 when it says "ok", else 503) and
    ``extra_routes``.

    Started with the worker, before the app: metrics are there while the tables recover.
    """

    def __init__(
        self,
        sock: socket.socket,
        registry: CollectorRegistry,
        health: Callable[[], str],
        url_path: Path,
        extra_routes: Iterable[web.RouteDef] = (),
        **kwargs: Any,
    ) -> None:
        self.sock = sock
        self.registry = registry
        self.health = health
        self.url_path = url_path
        self.url = url_of(sock)
        routes = web.Application()
        routes.router.add_get("/metrics", self.serve_metrics)
        routes.router.add_get("/health", self.serve_health)
        routes.add_routes(extra_routes)
        self.runner = web.AppRunner(routes, access_log=None)
        super().__init__(**kwargs)

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"

    async def serve_metrics(self, request: web.Request) -> web.Response:
        """OpenMetrics (with the moments' exemplars) when the Accept header lists it, as Prometheus's
        scrape does; the classic text format, which has no exemplars, otherwise."""
        if wants_openmetrics(request.headers.get("Accept", "")):
            body, content_type = openmetrics.generate_latest(self.registry), openmetrics.CONTENT_TYPE_LATEST
        else:
            body, content_type = generate_latest(self.registry), CONTENT_TYPE_LATEST
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def serve_health(self, request: web.Request) -> web.Response:
        state = self.health()
        return web.json_response({"status": state}, status=200 if state == HEALTHY else 503)

    async def on_start(self) -> None:
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()
        self.url_path.parent.mkdir(parents=True, exist_ok=True)
        written = self.url_path.with_name(f"{self.url_path.name}.tmp")
        written.write_text(self.metrics_url + "\n", encoding="utf-8")
        written.replace(self.url_path)  # whole or not at all, for a status reading it now
        log.info("serving %s (and /health)", self.metrics_url)

    async def on_stop(self) -> None:
        try:
            if self.url_path.read_text(encoding="utf-8").strip() == self.metrics_url:
                self.url_path.unlink()
        except OSError:
            pass
        await self.runner.cleanup()
