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
from motwatch.settings import ConfigError, Settings

log = logging.getLogger("motwatch.collector")
# How long the requests in progress may take to finish once a stop is asked for.
SHUTDOWN_GRACE_S = 30.0


def listen_socket(bind: str, port: int) -> socket.socket:
    """A socket listening on ``bind:port`` (port 0: a free one); a one-line ConfigError if it cannot."""
    try:
        family, _, _, _, address = socket.getaddrinfo(
            bind or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        dualstack = family == socket.AF_INET6 and address[0] == "::" and socket.has_dualstack_ipv6()
        return socket.create_server((address[0], port), family=family, dualstack_ipv6=dualstack)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise ConfigError(
            f"collector_bind/collector_port: cannot listen on {bind or '*'}:{port}: {why}"
        ) from None


def url_of(sock: socket.socket) -> str:
    """The URL this machine reaches the socket at (a wildcard address on the loopback)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


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
