"""Running the collector: listen, connect the producer, serve until SIGTERM or SIGINT, then drain and stop.

The socket is bound first, so that port 0 takes a free port and a port in
use fails at once, in one line. On SIGTERM the collector stops accepting
connections, lets the requests in progress finish (each answered only once
Kafka acknowledged it), flushes the producer and returns.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable

from aiohttp import web

from motwatch.collector.access import Cors, WriteKeys
from motwatch.collector.app import build_app
from motwatch.collector.sink import KafkaSink
from motwatch.collector.state import Collector
from motwatch.kafka.security import Target
from motwatch.listening import url_of
from motwatch.settings import Settings

log = logging.getLogger("motwatch.collector")
# How long the requests in progress may take to finish once a stop is asked for.
SHUTDOWN_GRACE_S = 30.0


async def serve(
    settings: Settings,
    target: Target,
    sock: socket.socket,
    keys: WriteKeys,
    *,
    shop: bool = False,
    ready: Callable[[str], None] = print,
) -> None:
    """Serve on ``sock`` until SIGTERM or SIGINT; ``ready(url)`` once requests are answered."""
    sink = KafkaSink(target)
    await sink.start()
    try:
        collector = Collector(settings, sink, keys, Cors(settings.cors_origins))
        runner = web.AppRunner(
            build_app(collector, shop=shop),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_GRACE_S,
        )
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            ready(url_of(sock))
            await stop.wait()
            log.info("stopping: finishing the requests in progress")
        finally:
            await runner.cleanup()
    finally:
        await sink.stop()
