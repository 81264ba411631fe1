"""Run the Faust app as a worker whose shutdown has a deadline: a stuck flush must not keep it alive."""

from __future__ import annotations

import os
import socket
import sys
import threading
import uuid
from pathlib import Path

import faust

from motwatch.garbage import collect_less_often
from motwatch.listening import listen_socket
from motwatch.settings import Settings
from motwatch.streams.app import create_app
from motwatch.streams.faust_internals import leave_group_on_stop, shutdown_signalled
from motwatch.streams.journey_view import JourneyView
from motwatch.streams.web import HEALTHY, WebServer, url_file


class BoundedWorker(faust.Worker):
    """Faust's worker, with a deadline on shutdown (a stuck flush must not keep it alive), and
    its state for /health."""

    grace_s: float = 20.0
    # Set once the app has started: tables recovered, agents running.
    started_up: bool = False

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        self.started_up = True

    def health(self) -> str:
        """What /health says: "ok" while the app runs, "starting" before, "stopping" after."""
        if self.should_stop or self.app.should_stop:
            return "stopping"
        return HEALTHY if self.started_up else "starting"

    # Overrides a private method of mode's worker (streams/faust_internals.py: OVERRIDDEN).
    def _schedule_shutdown(self, signal: object) -> None:  # type: ignore[override]
        if not shutdown_signalled(self):
            # Asked to stop, it hands its partitions over at once (a static member would
            # keep them for the session timeout, waiting for a restart).
            leave_group_on_stop(self.app.consumer)
            timer = threading.Timer(self.grace_s, self._give_up)
            timer.daemon = True
            timer.start()
        super()._schedule_shutdown(signal)  # type: ignore[arg-type]

    def _give_up(self) -> None:
        print(
            f"motwatch worker: shutdown took over {self.grace_s:.0f}s; exiting", file=sys.stderr, flush=True
        )
        os._exit(1)


def instance_id_of(settings: Settings) -> str:
    """The worker's static name in its consumer group: ``instance_id``, else the one in its data dir.

    The first start under a data dir makes one (host name and a random
    suffix) and keeps it in ``<data_dir>/<app id>/instance-id``, so a worker
    restarted on the same data dir is the same member, and two workers with
    their own data dirs are two.
    """
    if settings.instance_id:
        return settings.instance_id
    path = Path(settings.data_dir) / settings.worker_app_id / "instance-id"
    try:
        kept = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        kept = ""
    if not kept:
        kept = f"{socket.gethostname()}-{uuid.uuid4().hex[:12]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(kept + "\n", encoding="utf-8")
    return kept


def run_worker(settings: Settings, *, input_partitions: int, loglevel: str = "info") -> int:
    """Build the app and run it until the worker is stopped (its topics must exist already).

    The web server's socket is bound first: port 0 becomes a free port, which the app is told.
    """
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    sock = listen_socket(settings.web_bind, settings.web_port)
    mw = create_app(
        settings,
        input_partitions=input_partitions,
        web_port=sock.getsockname()[1],
        instance_id=instance_id_of(settings),
    )
    collect_less_often()

    def health() -> str:
        return worker.health()

    assert mw.journey_engines is not None
    view = JourneyView(mw, mw.journey_engines, health)
    web = WebServer(sock, mw.metrics.registry, health, url_file(settings), extra_routes=view.routes())
    worker = BoundedWorker(mw.app, web, loglevel=loglevel, quiet=True)
    worker.grace_s = settings.shutdown_grace_s
    worker.execute_from_commandline()
    return 0
