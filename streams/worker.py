"""Run the Faust app as a worker whose shutdown has a deadline: a stuck flush must not keep it alive."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import faust

from motwatch.garbage import collect_less_often
from motwatch.settings import Settings
from motwatch.streams.app import create_app
from motwatch.streams.faust_internals import shutdown_signalled
from motwatch.streams.web import HEALTHY, WebServer, listen_socket, url_file


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
            timer = threading.Timer(self.grace_s, self._give_up)
            timer.daemon = True
            timer.start()
        super()._schedule_shutdown(signal)  # type: ignore[arg-type]

    def _give_up(self) -> None:
        print(
            f"motwatch worker: shutdown took over {self.grace_s:.0f}s; exiting", file=sys.stderr, flush=True
        )
        os._exit(1)


def run_worker(settings: Settings, *, input_partitions: int, loglevel: str = "info") -> int:
    """Build the app and run it until the worker is stopped (its topics must exist already).

    The web server's socket is bound first: port 0 becomes a free port, which the app is told.
    """
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    sock = listen_socket(settings.web_bind, settings.web_port)
    mw = create_app(settings, input_partitions=input_partitions, web_port=sock.getsockname()[1])
    collect_less_often()
    web = WebServer(sock, mw.metrics.registry, lambda: worker.health(), url_file(settings))
    worker = BoundedWorker(mw.app, web, loglevel=loglevel, quiet=True)
    worker.grace_s = settings.shutdown_grace_s
    worker.execute_from_commandline()
    return 0
