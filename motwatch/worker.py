"""``motwatch worker``: create the topics, then run the Faust worker with a bounded shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from pathlib import Path

import faust

from motwatch import transport
from motwatch.garbage import collect_less_often
from motwatch.settings import Settings

log = logging.getLogger("motwatch.worker")


class _Worker(faust.Worker):
    """Faust's worker, with a deadline on shutdown: a stuck flush must not keep it alive."""

    grace_s: float = 20.0

    def _schedule_shutdown(self, signal: object) -> None:  # type: ignore[override]
        if not self._signal_stop_time:
            timer = threading.Timer(self.grace_s, self._give_up)
            timer.daemon = True
            timer.start()
        super()._schedule_shutdown(signal)  # type: ignore[arg-type]

    def _give_up(self) -> None:
        print(
            f"motwatch worker: shutdown took over {self.grace_s:.0f}s; exiting", file=sys.stderr, flush=True
        )
        os._exit(1)


async def prepare_topics(settings: Settings) -> int:
    """The worker's topics must exist before Faust subscribes (it ignores missing ones).

    Returns the touchpoints topic's partition count (it may have been created
    before, with another count than the worker's own topics: then no
    touchpoint can skip the re-keying hop).
    """
    await transport.wait_for_broker(settings.broker)
    await transport.create_topics(
        settings.broker,
        [
            settings.touchpoints_topic,
            settings.by_journey_topic,
            settings.moments_topic,
            settings.deadletter_topic,
        ],
        settings.partitions,
        settings.replication_factor,
    )
    # The tables' changelogs too, compacted as Faust declares them. Left to Faust, they
    # appear after the consumer's first metadata, which then counts 0 partitions for
    # them until its next refresh, and a table write in between fails (PartitionsMismatch).
    from motwatch.streams.app import TABLES

    await transport.create_topics(
        settings.broker,
        [f"{settings.worker_app_id}-{table}-changelog" for table in TABLES],
        settings.partitions,
        settings.replication_factor,
        config={"cleanup.policy": "compact"},
    )
    found = len(await transport.partition_ids(settings.broker, settings.touchpoints_topic))
    if found != settings.partitions:
        log.warning(
            "%s has %d partitions, the worker %d: every touchpoint is re-keyed before it is applied",
            settings.touchpoints_topic,
            found,
            settings.partitions,
        )
    return found


def run_worker(settings: Settings, loglevel: str = "info") -> int:
    input_partitions = asyncio.run(prepare_topics(settings))
    from motwatch.streams.app import create_app

    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    mw = create_app(settings, input_partitions=input_partitions)
    collect_less_often()
    worker = _Worker(mw.app, loglevel=loglevel, quiet=True)
    worker.grace_s = settings.shutdown_grace_s
    worker.execute_from_commandline()
    return 0
