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


class BoundedWorker(faust.Worker):
    """Faust's worker, with a deadline on shutdown: a stuck flush must not keep it alive."""

    grace_s: float = 20.0

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
    """Build the app and run it until the worker is stopped (its topics must exist already)."""
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    mw = create_app(settings, input_partitions=input_partitions)
    collect_less_often()
    worker = BoundedWorker(mw.app, loglevel=loglevel, quiet=True)
    worker.grace_s = settings.shutdown_grace_s
    worker.execute_from_commandline()
    return 0
